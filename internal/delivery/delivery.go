package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
)

// Hold defers delivery to one user while the user's home is moved.
// Every method is idempotent: recovery may call it again after a crash.
type Hold interface {
	Kind() string

	// Check says whether this hold can really hold user's mail at home on
	// h (uid and gid from the directory), before anything is changed.
	Check(ctx context.Context, h host.Host, user, home string, uid, gid int) error

	// Start defers delivery and returns where the home's tree is while
	// held (HeldPath(home)).
	Start(ctx context.Context, h host.Host, user, home string) (string, error)

	// HeldPath is where the tree of home is while held.
	HeldPath(home string) string

	// Undo ends a hold that did not lead to a switch: the tree is back
	// at home and mail flows to it again.
	Undo(ctx context.Context, h host.Host, user, home string) error

	// End ends the hold after the switch: mail now flows to the new home.
	// The held tree has been moved away by then.
	End(ctx context.Context, h host.Host, user, home string) error
}

var (
	// ErrUnsafeHold: the hold would not hold (the delivery agent could
	// recreate the home).
	ErrUnsafeHold = errors.New("hold would not hold mail")
	// ErrRecreated: something made a new home while the old one was held.
	ErrRecreated = errors.New("home was recreated while held")
)

// New returns the hold a config names.
func New(d config.Delivery, run activity.Runner) (Hold, error) {
	switch d.Hold {
	case "rename", "":
		return &Rename{}, nil
	case "command":
		return &Command{HoldCmd: d.HoldCmd, ReleaseCmd: d.Release, Run: run}, nil
	case "postfix":
		return NewPostfix(d, run), nil
	}
	return nil, fmt.Errorf("delivery.hold %q: want rename, postfix or command", d.Hold)
}

// Rename holds by renaming the home to HOME.moving.
type Rename struct {
	// AllowUnsafe skips Check's refusal (the operator was told).
	AllowUnsafe bool
}

// Kind is "rename".
func (*Rename) Kind() string { return "rename" }

// HeldPath is HOME.moving.
func (*Rename) HeldPath(home string) string { return home + ".moving" }

// Check refuses when the user could recreate the home: the folder above
// it is owned by the user, or writable by the user's group or by anyone.
func (r *Rename) Check(ctx context.Context, h host.Host, user, home string, uid, gid int) error {
	if r.AllowUnsafe {
		return nil
	}
	parent := home[:strings.LastIndexByte(home, '/')]
	if parent == "" {
		parent = "/"
	}
	fi, err := h.Lstat(ctx, parent)
	if err != nil {
		return fmt.Errorf("check hold of %s: %w", user, err)
	}
	perm := fi.Mode.Perm()
	why := ""
	switch {
	case uid >= 0 && fi.UID == uid && perm&0o200 != 0:
		why = fmt.Sprintf("%s belongs to the user (uid %d)", parent, uid)
	case gid >= 0 && fi.GID == gid && perm&0o020 != 0:
		why = fmt.Sprintf("%s is writable by the user's group (gid %d)", parent, gid)
	case perm&0o002 != 0:
		why = fmt.Sprintf("%s is writable by everyone", parent)
	}
	if why != "" {
		return fmt.Errorf("hold = \"rename\" cannot hold %s's mail: %s, so a delivery agent or a login (Dovecot does this) would recreate an empty home while it is renamed; make the folder root-owned and not writable by users (chmod 0711), or use hold = \"postfix\": %w",
			user, why, ErrUnsafeHold)
	}
	return nil
}

// Start renames home to HOME.moving. If that was done already (a retry
// after a crash), it is not done twice.
func (r *Rename) Start(ctx context.Context, h host.Host, user, home string) (string, error) {
	held := r.HeldPath(home)
	err := h.Rename(ctx, home, held)
	if err == nil {
		return held, nil
	}
	if _, herr := h.Lstat(ctx, home); errors.Is(herr, fs.ErrNotExist) {
		if _, serr := h.Lstat(ctx, held); serr == nil {
			return held, nil
		}
	}
	return "", fmt.Errorf("hold %s: %w", user, err)
}

// Undo renames HOME.moving back to home.
func (r *Rename) Undo(ctx context.Context, h host.Host, user, home string) error {
	held := r.HeldPath(home)
	_, herr := h.Lstat(ctx, held)
	_, oerr := h.Lstat(ctx, home)
	switch {
	case errors.Is(herr, fs.ErrNotExist) && oerr == nil:
		return nil // not held, or undone already
	case herr == nil && errors.Is(oerr, fs.ErrNotExist):
		if err := h.Rename(ctx, held, home); err != nil {
			return fmt.Errorf("release %s: %w", user, err)
		}
		return nil
	case herr == nil && oerr == nil:
		return fmt.Errorf("release %s: both %s and %s exist: %w", user, home, held, ErrRecreated)
	case herr != nil && !errors.Is(herr, fs.ErrNotExist):
		return fmt.Errorf("release %s: %w", user, herr)
	case oerr != nil && !errors.Is(oerr, fs.ErrNotExist):
		return fmt.Errorf("release %s: %w", user, oerr)
	}
	return fmt.Errorf("release %s: neither %s nor %s exists", user, home, held)
}

// End does nothing: the home path stays absent on the old host (the stub,
// if any, is at the new home's path), and the directory points elsewhere.
func (r *Rename) End(ctx context.Context, h host.Host, user, home string) error { return nil }

// Command holds with a site's programs, each run with USER HOME appended.
type Command struct {
	HoldCmd, ReleaseCmd []string
	Run                 activity.Runner
}

// Kind is "command".
func (*Command) Kind() string { return "command" }

// HeldPath is the home itself: the tree stays where it is.
func (*Command) HeldPath(home string) string { return home }

// Check trusts the site's program.
func (*Command) Check(context.Context, host.Host, string, string, int, int) error { return nil }

// Start runs the hold command.
func (c *Command) Start(ctx context.Context, h host.Host, user, home string) (string, error) {
	if _, err := c.Run(ctx, append(append([]string(nil), c.HoldCmd...), user, home)); err != nil {
		return "", fmt.Errorf("hold %s: %w", user, err)
	}
	return home, nil
}

// Undo runs the release command.
func (c *Command) Undo(ctx context.Context, h host.Host, user, home string) error {
	if _, err := c.Run(ctx, append(append([]string(nil), c.ReleaseCmd...), user, home)); err != nil {
		return fmt.Errorf("release %s: %w", user, err)
	}
	return nil
}

// End runs the release command.
func (c *Command) End(ctx context.Context, h host.Host, user, home string) error {
	return c.Undo(ctx, h, user, home)
}

// Queued reads a queue listing and tells which of users still have mail
// in it. It understands `postqueue -j` (one JSON object per message, with
// recipients[].address) and plain text, where a user counts as queued if
// any word of any line is the user, user@domain or <user@domain>.
//
// An address with an extension (alice+news@domain) or at a host of the
// domain (alice@bp01.domain, as `maildist forward` writes them) is also
// the user's: counting a user queued who is not only makes done wait.
func Queued(out []byte, users []string, domain string) map[string]bool {
	found := map[string]bool{}
	match := func(word string) {
		word = strings.Trim(word, "<>,;\"'()")
		for _, w := range recipientForms(word, domain) {
			for _, u := range users {
				if activity.SameUser(w, u, domain) {
					found[u] = true
				}
			}
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "{") {
			var msg struct {
				Recipients []struct {
					Address string `json:"address"`
				} `json:"recipients"`
			}
			if json.Unmarshal([]byte(line), &msg) == nil {
				for _, r := range msg.Recipients {
					match(r.Address)
				}
				continue
			}
		}
		for _, w := range strings.Fields(line) {
			match(w)
		}
	}
	return found
}

// recipientForms are the ways an address may name a user: as it is,
// without a +extension, and at the domain rather than at a host of it.
func recipientForms(addr, domain string) []string {
	forms := []string{addr}
	local, dom, ok := strings.Cut(addr, "@")
	if !ok {
		return forms
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if domain != "" && strings.HasSuffix(strings.ToLower(dom), "."+strings.ToLower(domain)) {
		dom = domain
	}
	if f := local + "@" + dom; f != addr {
		forms = append(forms, f)
	}
	return forms
}
