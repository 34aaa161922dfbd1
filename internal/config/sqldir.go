package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/directory/sql/sqlquery"
)

// maxSwitchDelay is as far ahead as Dovecot takes a delay_until: further,
// and the login fails.
const maxSwitchDelay = 5 * time.Minute

// sqlDirectory checks the keys of an sql directory and fills in what
// follows from them.
func (v *validator) sqlDirectory(d *Directory, holdMarker *bool, switchDelay string) {
	switch d.Driver {
	case "postgres", "pgx", "sqlite":
	case "":
		v.key("directory", "directory.driver is required for an sql directory (postgres or sqlite)")
	default:
		v.key("directory.driver", "directory.driver %q: want postgres or sqlite", d.Driver)
	}
	if d.Driver == "sqlite" && d.DSN != "" && d.DSN != ":memory:" && !strings.HasPrefix(d.DSN, "file:") {
		d.DSN = v.rel(d.DSN) // a file name, relative to the config
	}
	switch {
	case d.DSN == "" && d.DSNFile == "":
		v.key("directory", "directory.dsn or directory.dsn_file is required for an sql directory")
	case d.DSN != "" && d.DSNFile != "":
		v.key("directory.dsn_file", "give directory.dsn or directory.dsn_file, not both")
	case d.DSNFile != "":
		if msg := CheckSecretFile(d.DSNFile); msg != "" {
			v.key("directory.dsn_file", "directory.dsn_file %s", msg)
		}
	}
	d.SwitchDelay = v.duration("directory.switch_delay", switchDelay, 0)
	if d.SwitchDelay > maxSwitchDelay {
		v.key("directory.switch_delay", "directory.switch_delay %s is too long: Dovecot fails a login whose delay_until is more than %s ahead", d.SwitchDelay, maxSwitchDelay)
	}

	// Queries: none (the default schema), or at least list, lookup and
	// switch; hold and unhold go together.
	var names []string
	for k := range d.Queries {
		names = append(names, k)
	}
	sort.Strings(names)
	parsed := map[string]*sqlquery.Query{}
	for _, k := range names {
		key := "directory.queries." + k
		q, err := sqlquery.Parse(k, d.Queries[k])
		if err != nil {
			msg := err.Error()
			var qe *sqlquery.Error
			if errors.As(err, &qe) {
				msg = qe.Msg
			}
			v.key(key, "%s: %s", key, msg)
			continue
		}
		parsed[k] = q
	}
	hasHold := len(d.Queries) == 0
	if len(d.Queries) > 0 {
		for _, k := range []string{"list", "lookup", "switch"} {
			if _, ok := d.Queries[k]; !ok {
				v.key("directory.queries", "directory.queries.%s is missing: give list, lookup and switch, or no queries for the default schema", k)
			}
		}
		_, hold := d.Queries["hold"]
		_, unhold := d.Queries["unhold"]
		if hold != unhold {
			v.key("directory.queries", "directory.queries: give both hold and unhold, or neither")
		}
		hasHold = hold && unhold
	}
	if d.SwitchDelay > 0 {
		if q := parsed["switch"]; len(d.Queries) == 0 || q != nil && !q.Uses(sqlquery.DelayUntil) {
			v.key("directory.switch_delay", "directory.switch_delay is set, but the switch query does not use :delay_until")
		}
	}
	switch {
	case holdMarker == nil:
		d.HoldMarker = hasHold
	case *holdMarker && !hasHold:
		v.key("directory.hold_marker", "directory.hold_marker = true needs directory.queries.hold and unhold")
	}
}

// CheckSecretFile says what is wrong with a file that holds a secret (a
// DSN with a password): it must exist and be readable and writable by its
// owner only. "" when it is fine.
func CheckSecretFile(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return path + ": no such file"
		}
		if os.IsPermission(err) {
			return "" // whoever opens the directory will see
		}
		return err.Error()
	}
	if !fi.Mode().IsRegular() {
		return path + " is not a regular file"
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("%s can be %s (mode %04o): it holds the database password; chmod 600 it", path, openTo(perm), perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("%s belongs to uid %d: it holds the database password and must belong to root", path, st.Uid)
	}
	return ""
}

// openTo says who besides the owner may use a file of mode perm, and how:
// "read by its group", "read by everyone and written by its group".
func openTo(perm os.FileMode) string {
	world, group := perm&0o007, perm>>3&0o007
	var parts []string
	if a := access(world); a != "" {
		parts = append(parts, a+" by everyone")
	}
	if a := access(group &^ world); a != "" {
		parts = append(parts, a+" by its group")
	}
	return strings.Join(parts, " and ")
}

// access names the permission bits rwx of one class.
func access(bits os.FileMode) string {
	switch {
	case bits&0o6 == 0o6:
		return "read and written"
	case bits&0o4 != 0:
		return "read"
	case bits&0o2 != 0:
		return "written"
	case bits&0o1 != 0:
		return "run"
	}
	return ""
}
