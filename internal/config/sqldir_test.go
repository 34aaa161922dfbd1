package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withDirectory is the good config with its [directory] table replaced.
func withDirectory(dir string) string {
	start := strings.Index(good, "[directory]")
	end := strings.Index(good, "[activity]")
	return good[:start] + dir + "\n" + good[end:]
}

func TestSQLDirectory(t *testing.T) {
	c, err := Parse("/etc/maildist/maildist.toml", []byte(withDirectory(`[directory]
type = "sql"
driver = "postgres"
dsn = "postgres://maildist@db/mail"
switch_delay = "5s"

[directory.queries]
list   = "SELECT username, home, uid, gid FROM users"
lookup = "SELECT username, home, uid, gid FROM users WHERE username = :user"
switch = "UPDATE users SET home = :new_home, delay_until = :delay_until WHERE username = :user AND home = :old_home"
hold   = "UPDATE users SET nologin = 'Y' WHERE username = $1"
unhold = "UPDATE users SET nologin = NULL WHERE username = $1"
`)))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Directory
	if d.Type != "sql" || d.Driver != "postgres" || d.DSN != "postgres://maildist@db/mail" || len(d.Queries) != 5 {
		t.Errorf("directory = %+v", d)
	}
	if !d.HoldMarker || d.SwitchDelay != 5*time.Second {
		t.Errorf("hold marker %v, switch delay %v", d.HoldMarker, d.SwitchDelay)
	}
}

func TestSQLDirectoryDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		marker      bool
	}{
		{"default queries hold", "", true},
		{"unless told not to", "hold_marker = false", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("/etc/maildist/maildist.toml", []byte(withDirectory("[directory]\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"users.db\"\n"+tc.extra)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Directory.HoldMarker != tc.marker {
				t.Errorf("hold marker = %v", c.Directory.HoldMarker)
			}
			if c.Directory.DSN != "/etc/maildist/users.db" {
				t.Errorf("sqlite file %q not resolved against the config's folder", c.Directory.DSN)
			}
		})
	}
}

func TestSQLDirectoryProblems(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(secret, []byte("postgres://u:pw@db/mail\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		want      []string
	}{
		{"no driver, no dsn", "[directory]\ntype = \"sql\"", []string{
			":6: directory.driver is required", ":6: directory.dsn or directory.dsn_file is required"}},
		{"bad driver", "[directory]\ntype = \"sql\"\ndriver = \"oracle\"\ndsn = \"x\"", []string{`:8: directory.driver "oracle"`}},
		{"both dsn and file", "[directory]\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"x\"\ndsn_file = \"" + secret + "\"", []string{":10: give directory.dsn or directory.dsn_file, not both"}},
		{"readable dsn file", "[directory]\ntype = \"sql\"\ndriver = \"postgres\"\ndsn_file = \"" + secret + "\"", []string{
			":9: directory.dsn_file " + secret + " can be read by everyone (mode 0644): it holds the database password; chmod 600 it"}},
		{"missing dsn file", "[directory]\ntype = \"sql\"\ndriver = \"postgres\"\ndsn_file = \"nope\"", []string{":9: directory.dsn_file /etc/maildist/nope: no such file"}},
		{"queries", `[directory]
type = "sql"
driver = "sqlite"
dsn = "x"
switch_delay = "10m"
hold_marker = true
[directory.queries]
list = "SELECT username, home FROM users WHERE x = :user"
switch = "UPDATE users SET home = :new_home WHERE username = :user"
hold = "UPDATE users SET nologin = 'Y' WHERE username = :user"
typo = "SELECT 1"`, []string{
			":10: directory.switch_delay 10m0s is too long",
			":11: directory.hold_marker = true needs directory.queries.hold and unhold",
			":12: directory.queries.lookup is missing",
			":12: directory.queries: give both hold and unhold, or neither",
			":13: directory.queries.list: :user is not a placeholder it can use; it may use :reason",
			":14: directory.queries.switch: does not use :old_home; it must change only the row that still holds the old home (compare and swap)",
			":16: directory.queries.typo: no such query; want one of hold, list, lookup, switch, unhold",
		}},
		{"delay without :delay_until", "[directory]\ntype = \"sql\"\ndriver = \"sqlite\"\ndsn = \"x\"\nswitch_delay = \"5s\"", []string{
			":10: directory.switch_delay is set, but the switch query does not use :delay_until"}},
		{"sql keys on a passwd directory", "[directory]\ntype = \"passwd\"\npath = \"p\"\ndriver = \"sqlite\"\n[directory.queries]\nlist = \"SELECT 1\"", []string{
			":9: directory.driver is for an sql directory", ":10: directory.queries is for an sql directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/etc/maildist/maildist.toml", []byte(withDirectory(tc.dir)))
			if err == nil {
				t.Fatal("no problems found")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, err)
				}
			}
		})
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string
	}{
		{0o640, "can be read by its group (mode 0640)"},
		{0o660, "can be read and written by its group (mode 0660)"},
		{0o604, "can be read by everyone (mode 0604)"},
		{0o666, "can be read and written by everyone (mode 0666)"},
		{0o664, "can be read by everyone and written by its group (mode 0664)"},
		{0o620, "can be written by its group (mode 0620)"},
		{0o700, ""}, // the owner only: fine
	} {
		if err := os.Chmod(secret, tc.mode); err != nil {
			t.Fatal(err)
		}
		msg := CheckSecretFile(secret)
		if tc.mode&0o077 == 0 {
			if msg != "" {
				t.Errorf("mode %04o: %s", tc.mode, msg)
			}
			continue
		}
		if !strings.Contains(msg, secret+" "+tc.want+": it holds the database password") || strings.Contains(msg, "others") {
			t.Errorf("mode %04o: %q, want %q", tc.mode, msg, tc.want)
		}
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg := CheckSecretFile(secret); msg != "" {
		t.Errorf("mode 600: %s", msg)
	}
}
