package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/host"
)

// Postfix holds a user's mail in Postfix's own queue with a per-recipient
// entry in a transport map that maildist owns:
//
//	alice@example.edu retry:4.7.1 mailbox being moved
//
// Postfix then defers every message for the recipient, new or already
// queued, with that reason, and keeps it queued here; a flush
// (`postqueue -f`, `sendmail -q`) does not deliver it. Releasing removes
// the entry, rebuilds the table, reloads and flushes: the mail is
// delivered at once, to the home the directory names by then.
//
// What loses or strands mail, and so is never done: defer_transports (any
// flush overrides it), a "hold:" entry without a next hop (Postfix looks
// the domain up in DNS and bounces), acting on queue ids (Postfix reuses
// them). After every postmap, Postfix is reloaded: its daemons keep the old
// table otherwise.
//
// Postfix runs on the machine maildist runs on, with its config in
// ConfigDir; every command is given -c ConfigDir.
type Postfix struct {
	ConfigDir    string
	TransportMap string // the map's source file; default ConfigDir/maildist-hold
	MapType      string // hash (default), btree, lmdb, cdb, …
	Domain       string // a user without @ gets mail as user@Domain
	// HostAddresses are hosts whose user@HOST.Domain addresses are held
	// too: where `maildist forward` writes them, the aliases rewrite mail
	// to those addresses before the transport map sees it.
	HostAddresses []string
	Reason        string // told to the queue; default "mailbox being moved"
	// Quiet bounds how long Start waits for deliveries to the user that
	// were under way when the hold began (default 30s).
	Quiet time.Duration
	// ReleaseDelay is how long End waits before it releases: the
	// directory has just been switched, and the delivery agent must read
	// the new home before the held mail reaches it, or it delivers to the
	// old one (Dovecot re-reads a passwd-file at most once a second).
	ReleaseDelay time.Duration
	Run          activity.Runner

	checkOnce sync.Once
	checkErr  error
}

// NewPostfix returns a Postfix hold.
func NewPostfix(d config.Delivery, run activity.Runner) *Postfix {
	return &Postfix{ConfigDir: d.PostfixConfigDir, TransportMap: d.TransportMap, MapType: d.TransportMapType,
		Domain: d.Domain, Quiet: d.Settle, ReleaseDelay: d.ReleaseDelay, Run: run}
}

// HoldReason is the text Postfix keeps with held mail ("delay_reason").
const HoldReason = "mailbox being moved"

// Kind is "postfix".
func (*Postfix) Kind() string { return "postfix" }

// HeldPath is the home: the tree stays where it is. Logins must be
// refused meanwhile (the directory's hold marker): config requires it.
func (*Postfix) HeldPath(home string) string { return home }

func (p *Postfix) mapPath() string {
	if p.TransportMap != "" {
		return p.TransportMap
	}
	return filepath.Join(p.ConfigDir, "maildist-hold")
}

func (p *Postfix) mapType() string {
	if p.MapType != "" {
		return p.MapType
	}
	return "hash"
}

func (p *Postfix) reason() string {
	if p.Reason != "" {
		return p.Reason
	}
	return HoldReason
}

// table is the map as Postfix names it: hash:/etc/postfix/maildist-hold.
func (p *Postfix) table() string { return p.mapType() + ":" + p.mapPath() }

// Address is the recipient address Postfix sees for user.
func (p *Postfix) Address(user string) (string, error) {
	addr := user
	if !strings.Contains(user, "@") {
		if p.Domain == "" {
			return "", fmt.Errorf("hold = \"postfix\": %s has no domain and the config sets none", user)
		}
		addr = user + "@" + p.Domain
	}
	if addr == "" || strings.HasPrefix(addr, "#") || strings.HasPrefix(addr, "@") ||
		strings.ContainsAny(addr, " \t\r\n\"\\<>,;") || strings.Count(addr, "@") != 1 {
		return "", fmt.Errorf("hold = \"postfix\": %q cannot be a key of a transport map", addr)
	}
	return strings.ToLower(addr), nil
}

// addresses are every recipient address held for user: Address, and
// user@HOST.Domain for each of HostAddresses.
func (p *Postfix) addresses(user string) ([]string, error) {
	addr, err := p.Address(user)
	if err != nil {
		return nil, err
	}
	addrs := []string{addr}
	if !strings.Contains(user, "@") {
		for _, h := range p.HostAddresses {
			a, err := p.Address(user + "@" + h + "." + p.Domain)
			if err != nil {
				return nil, err
			}
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// cmd is argv for a Postfix command with -c ConfigDir. Postfix's
// commands live in /usr/sbin, which a $PATH may lack.
func (p *Postfix) cmd(name string, args ...string) []string {
	bin := name
	if _, err := exec.LookPath(name); err != nil {
		if fi, err := os.Stat("/usr/sbin/" + name); err == nil && !fi.IsDir() {
			bin = "/usr/sbin/" + name
		}
	}
	return append([]string{bin, "-c", p.ConfigDir}, args...)
}

// Check refuses a user whose mail this Postfix could not hold: a name
// that is no map key, or a Postfix that does not consult our map, refuses
// held recipients at RCPT time (so that their mail would stay with the
// sender for hours) or lacks the retry transport.
func (p *Postfix) Check(ctx context.Context, h host.Host, user, home string, uid, gid int) error {
	if _, err := p.Address(user); err != nil {
		return fmt.Errorf("check hold of %s: %w: %w", user, err, ErrUnsafeHold)
	}
	p.checkOnce.Do(func() { p.checkErr = p.checkPostfix(ctx) })
	if p.checkErr != nil {
		return fmt.Errorf("check hold of %s: %w", user, p.checkErr)
	}
	return nil
}

// restrictionLists are the smtpd parameters that may name a restriction
// that refuses a held recipient.
var restrictionLists = []string{
	"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
	"smtpd_end_of_data_restrictions",
}

// checkPostfix reads Postfix's config once.
func (p *Postfix) checkPostfix(ctx context.Context) error {
	unsafe := func(format string, args ...any) error {
		return fmt.Errorf("hold = \"postfix\" cannot hold mail with the Postfix in %s: %s: %w", p.ConfigDir, fmt.Sprintf(format, args...), ErrUnsafeHold)
	}
	names := append([]string{"transport_maps", "smtpd_reject_unlisted_recipient"}, restrictionLists...)
	out, err := p.Run(ctx, p.cmd("postconf", append([]string{"-x", "-h"}, names...)...))
	if err != nil {
		return fmt.Errorf("read the Postfix config: %w", err)
	}
	vals := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(vals) != len(names) {
		return fmt.Errorf("read the Postfix config: postconf gave %d values for %d names", len(vals), len(names))
	}
	switch first, listed := firstTable(vals[0], p.table()); {
	case !listed:
		return unsafe("transport_maps (%q) does not list %s", vals[0], p.table())
	case first != "":
		return unsafe("transport_maps lists %s after %s: Postfix takes the first table that knows a recipient, so an entry there (a user's own route, a catch-all) would send a held user's mail around the hold; list %s first", p.table(), first, p.table())
	}
	if strings.TrimSpace(vals[1]) != "no" {
		return unsafe("smtpd_reject_unlisted_recipient = %s refuses a held recipient at RCPT time (450), leaving the mail with the sender; set it to no on this Postfix (let the MX in front check recipients)", strings.TrimSpace(vals[1]))
	}
	for i, name := range restrictionLists {
		if r := refusesHeld(vals[2+i]); r != "" {
			return unsafe("%s has %s, which refuses a held recipient at RCPT time", name, r)
		}
	}
	// master.cf may override any of these for one smtpd service.
	out, err = p.Run(ctx, p.cmd("postconf", "-P"))
	if err != nil {
		return fmt.Errorf("read the Postfix service overrides: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			continue
		}
		param := k[strings.LastIndexByte(k, '/')+1:]
		switch {
		case param == "smtpd_reject_unlisted_recipient" && strings.TrimSpace(v) != "no":
			return unsafe("master.cf sets %s = %s", k, v)
		case slices.Contains(restrictionLists, param) && refusesHeld(v) != "":
			return unsafe("master.cf sets %s with %s", k, refusesHeld(v))
		}
	}
	out, err = p.Run(ctx, p.cmd("postconf", "-M", "retry/unix"))
	if err != nil {
		return fmt.Errorf("read the Postfix services: %w", err)
	}
	if f := strings.Fields(string(out)); len(f) < 8 || f[7] != "error" {
		return unsafe("master.cf has no \"retry unix … error\" service, which holding uses")
	}
	if fi, err := os.Stat(filepath.Dir(p.mapPath())); err != nil || !fi.IsDir() {
		return fmt.Errorf("hold = \"postfix\": the folder of %s: %v", p.mapPath(), err)
	}
	if ext, ok := indexSuffix[p.mapType()]; ok {
		if _, err := os.Stat(p.mapPath() + ext); errors.Is(err, fs.ErrNotExist) {
			return unsafe("%s has not been built (no %s): until it is, Postfix defers every recipient; make it with: touch %s && postmap %s", p.table(), p.mapPath()+ext, p.mapPath(), p.table())
		}
	}
	return nil
}

// indexSuffix is the file postmap builds for a map type that is indexed.
var indexSuffix = map[string]string{"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".dir", "sdbm": ".dir"}

// firstTable reports whether a transport_maps value names table (also
// through proxy:), and the table listed before it, if any.
func firstTable(val, table string) (before string, listed bool) {
	for _, f := range strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if strings.TrimPrefix(f, "proxy:") == table {
			return before, true
		}
		if before == "" {
			before = f
		}
	}
	return "", false
}

// refusesHeld names the restriction in a list that would refuse a held
// recipient, or "".
func refusesHeld(list string) string {
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		switch f {
		case "reject_unlisted_recipient", "reject_unverified_recipient":
			return f
		}
	}
	return ""
}

// Start adds the user's entry, then waits until no delivery to the user
// that began before the hold is still under way, so that nothing lands
// in the home after it has been copied.
func (p *Postfix) Start(ctx context.Context, h host.Host, user, home string) (string, error) {
	addrs, err := p.addresses(user)
	if err != nil {
		return "", fmt.Errorf("hold %s: %w", user, err)
	}
	if err := p.edit(ctx, addrs, true); err != nil {
		return "", fmt.Errorf("hold %s: %w", user, err)
	}
	if err := p.quiet(ctx, addrs); err != nil {
		return "", fmt.Errorf("hold %s: %w", user, err)
	}
	return home, nil
}

// Undo removes the entry and delivers what was held, to the home.
func (p *Postfix) Undo(ctx context.Context, h host.Host, user, home string) error {
	return p.release(ctx, user)
}

// End removes the entry and delivers what was held, to the new home the
// directory names now, once the delivery agent has had ReleaseDelay to
// read it.
func (p *Postfix) End(ctx context.Context, h host.Host, user, home string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("release %s: %w", user, ctx.Err())
	case <-time.After(p.ReleaseDelay):
	}
	return p.release(ctx, user)
}

func (p *Postfix) release(ctx context.Context, user string) error {
	addrs, err := p.addresses(user)
	if err != nil {
		return fmt.Errorf("release %s: %w", user, err)
	}
	if err := p.edit(ctx, addrs, false); err != nil {
		return fmt.Errorf("release %s: %w", user, err)
	}
	// Deliver the held mail now rather than at the next queue run. A
	// failure here only delays it: `done` flushes again and waits.
	p.Run(ctx, p.cmd("postqueue", "-f"))
	return nil
}

// Held lists the addresses the map holds now.
func (p *Postfix) Held() ([]string, error) {
	b, err := os.ReadFile(p.mapPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if k, ok := holdKey(l); ok {
			out = append(out, k)
		}
	}
	return out, nil
}

const mapHeader = "# Held recipients, written by maildist (hold = \"postfix\"): one\n" +
	"# \"address retry:4.7.1 reason\" a line while the address's mailbox is moved.\n" +
	"# Edit only with maildist stopped; run postmap and postfix reload after.\n"

// holdKey returns the address of a hold entry line.
func holdKey(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || strings.HasPrefix(f[0], "#") || !strings.HasPrefix(f[1], "retry:") {
		return "", false
	}
	return strings.ToLower(f[0]), true
}

// edit adds or removes addr's entry under a lock, atomically, then
// rebuilds the table and reloads Postfix. It rebuilds and reloads even
// when the text already says what is wanted: a crash may have come
// between the write and the reload.
func (p *Postfix) edit(ctx context.Context, addrs []string, add bool) error {
	path := p.mapPath()
	lk, err := fsutil.LockWait(path + ".lock")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var keep []string
	found := map[string]bool{}
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if l == "" || strings.HasPrefix(l, "# ") && strings.Contains(mapHeader, l) {
			continue
		}
		if k, ok := holdKey(l); ok && slices.Contains(addrs, k) {
			if add && !found[k] {
				keep = append(keep, l)
			}
			found[k] = true
			continue
		}
		keep = append(keep, l)
	}
	for _, addr := range addrs {
		if add && !found[addr] {
			keep = append(keep, fmt.Sprintf("%s retry:4.7.1 %s", addr, p.reason()))
			found[addr] = true
		}
	}
	text := mapHeader
	if len(keep) > 0 {
		text += strings.Join(keep, "\n") + "\n"
	}
	if text != string(old) {
		if err := fsutil.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	if _, err := p.Run(ctx, p.cmd("postmap", p.table())); err != nil {
		return fmt.Errorf("rebuild %s: %w", p.table(), err)
	}
	if _, err := p.Run(ctx, p.cmd("postfix", "reload")); err != nil {
		// A Postfix that is not running reads the new table when it
		// starts: the hold holds all the same.
		if _, serr := p.Run(ctx, p.cmd("postfix", "status")); serr != nil {
			return nil
		}
		return fmt.Errorf("reload Postfix after changing %s: %w", path, err)
	}
	return nil
}

// quiet waits until the queue shows no message for addr that is being
// delivered: none in the incoming or active queue that the hold has not
// deferred yet. Such a message was picked for delivery before the reload
// took effect; it must land before the home is copied. The wait must see
// the queue quiet twice, a second apart: Postfix's daemons leave after a
// reload only when they are between requests, and a login server may take
// a second to read the directory's hold marker (Dovecot's passwd-file).
func (p *Postfix) quiet(ctx context.Context, addrs []string) error {
	limit := p.Quiet
	if limit <= 0 {
		limit = 30 * time.Second
	}
	const apart = time.Second
	deadline := time.Now().Add(limit)
	var quietSince time.Time
	wait := 20 * time.Millisecond
	for {
		out, err := p.Run(ctx, p.cmd("postqueue", "-j"))
		if err != nil {
			return fmt.Errorf("read the queue: %w", err)
		}
		busy := inFlight(out, addrs, p.reason())
		now := time.Now()
		switch {
		case busy != "":
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = now
		case now.Sub(quietSince) >= apart:
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("mail for %s was still being delivered %v after the hold began (message %s)", addrs[0], limit, busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

// inFlight returns the queue id of a message for addr in `postqueue -j`
// output that may be under delivery, or "". The id is only shown to
// people; nothing acts on it.
func inFlight(out []byte, addrs []string, reason string) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m struct {
			Queue      string `json:"queue_name"`
			ID         string `json:"queue_id"`
			Recipients []struct {
				Address string `json:"address"`
				Reason  string `json:"delay_reason"`
			} `json:"recipients"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m.Queue != "active" && m.Queue != "incoming" {
			continue
		}
		for _, r := range m.Recipients {
			for _, addr := range addrs {
				if strings.EqualFold(r.Address, addr) && r.Reason != reason {
					return m.ID
				}
			}
		}
	}
	return ""
}
