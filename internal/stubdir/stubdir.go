package stubdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/runstate"
)

// Outcomes of one user.
const (
	Created     = "created"
	WouldCreate = "would-create" // a dry run
	Skipped     = "skipped"      // nothing to do, nothing wrong
	Failed      = "failed"       // could not be made; the reason says why
)

// Reasons a user is skipped or failed.
const (
	ReasonExists         = "exists"           // skipped: the home is there now
	ReasonMoving         = "moving"           // skipped: a move of the user is under way
	ReasonNotInDirectory = "not-in-directory" // skipped: the user is gone from the directory
	ReasonBadName        = "bad-name"
	ReasonNoHost         = "no-host"   // the home is under no host's root
	ReasonNoOwner        = "no-owner"  // the directory gives no uid or gid
	ReasonNoRoot         = "no-root"   // the host's root is missing on the host
	ReasonNotLocal       = "not-local" // the host cannot be reached
	ReasonError          = "error"
)

// Mode of a home made, and of a folder made above it.
const (
	HomeMode   fs.FileMode = 0o700
	ParentMode fs.FileMode = 0o711
)

// Result is what happened to one user.
type Result struct {
	User    string   `json:"user"`
	Host    string   `json:"host,omitempty"`
	Home    string   `json:"home,omitempty"`
	UID     int      `json:"uid"`
	GID     int      `json:"gid"`
	Outcome string   `json:"outcome"`
	Reason  string   `json:"reason,omitempty"`
	Detail  string   `json:"detail,omitempty"`
	Made    []string `json:"made,omitempty"` // folders made (or to be made), outermost first
}

// Lookup is the part of a directory Make uses.
type Lookup interface {
	Lookup(ctx context.Context, user string) (directory.Entry, error)
}

// Options say where homes are made.
type Options struct {
	Cluster   *cluster.Cluster
	Directory Lookup
	Host      func(name string) (host.Host, error)
	// Lock, if set, takes the user's move lock for the time a home is
	// made; an error means the user is being moved.
	Lock func(user string) (unlock func(), err error)
	// DryRun looks and reports, and makes nothing.
	DryRun bool
}

// Make makes an empty home for each user, in order. users are rows of a
// survey; only their names and the homes the survey saw are used.
func Make(ctx context.Context, opt Options, users []cluster.User) []Result {
	rs := make([]Result, 0, len(users))
	for _, u := range users {
		if ctx.Err() != nil {
			rs = append(rs, Result{User: u.Name, Home: u.Home, UID: -1, GID: -1, Outcome: Failed, Reason: ReasonError, Detail: ctx.Err().Error()})
			continue
		}
		rs = append(rs, makeOne(ctx, opt, u))
	}
	return rs
}

func makeOne(ctx context.Context, opt Options, u cluster.User) Result {
	r := Result{User: u.Name, Home: u.Home, UID: -1, GID: -1}
	fail := func(reason, format string, args ...any) Result {
		r.Outcome, r.Reason, r.Detail = Failed, reason, fmt.Sprintf(format, args...)
		return r
	}
	skip := func(reason, format string, args ...any) Result {
		r.Outcome, r.Reason, r.Detail = Skipped, reason, fmt.Sprintf(format, args...)
		return r
	}
	if err := cluster.CheckUser(u.Name); err != nil {
		return fail(ReasonBadName, "%v", err)
	}
	e, err := opt.Directory.Lookup(ctx, u.Name)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return skip(ReasonNotInDirectory, "no longer in the directory")
	case err != nil:
		return fail(ReasonError, "directory: %v", err)
	}
	if e.Home != u.Home && u.Home != "" {
		r.Detail = fmt.Sprintf("the survey saw %s; the directory now says %s", u.Home, e.Home)
	}
	r.Home, r.UID, r.GID = e.Home, e.UID, e.GID
	ch, ok := opt.Cluster.HostOf(e.Home)
	if !ok {
		return fail(ReasonNoHost, "home %s is under no host's root", e.Home)
	}
	r.Host = ch.Name
	if e.UID < 0 || e.GID < 0 {
		return fail(ReasonNoOwner, "the directory gives no uid or gid for %s: the home could not be owned right", u.Name)
	}
	h, err := opt.Host(ch.Name)
	if err != nil {
		return fail(ReasonNotLocal, "%v", err)
	}
	if opt.Lock != nil {
		unlock, err := opt.Lock(u.Name)
		if err != nil {
			return skip(ReasonMoving, "%v", err)
		}
		defer unlock()
	}

	// Look again now: the survey may be old.
	if info, err := h.Lstat(ctx, e.Home); err == nil {
		what := "a folder"
		if !info.IsDir() {
			what = "not a folder (" + info.Mode.Type().String() + ")"
		}
		return skip(ReasonExists, "%s exists on %s: %s", e.Home, ch.Name, what)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(ReasonError, "look at %s on %s: %v", e.Home, ch.Name, err)
	}
	if _, err := h.Lstat(ctx, e.Home+".moving"); err == nil {
		return skip(ReasonMoving, "%s.moving exists on %s: the user is held for a move", e.Home, ch.Name)
	}
	root := path.Clean(ch.Root)
	if info, err := h.Lstat(ctx, root); err != nil || !info.IsDir() {
		return fail(ReasonNoRoot, "host %s has no folder at its root %s (not mounted?): not making homes there", ch.Name, root)
	}
	parents, err := missingParents(ctx, h, root, e.Home)
	if err != nil {
		return fail(ReasonError, "%v", err)
	}
	if opt.DryRun {
		r.Outcome, r.Made = WouldCreate, append(parents, e.Home)
		return r
	}
	if len(parents) > 0 {
		made, err := h.MkdirAll(ctx, path.Dir(e.Home), ParentMode, 0, 0)
		r.Made = made
		if err != nil {
			return fail(ReasonError, "make %s on %s: %v", path.Dir(e.Home), ch.Name, err)
		}
	}
	made, err := h.MkdirAll(ctx, e.Home, HomeMode, e.UID, e.GID)
	if err != nil {
		return fail(ReasonError, "make %s on %s: %v", e.Home, ch.Name, err)
	}
	if len(made) == 0 {
		return skip(ReasonExists, "%s appeared on %s while it was being made", e.Home, ch.Name)
	}
	r.Made = append(r.Made, made...)
	r.Outcome = Created
	return r
}

// missingParents lists the folders between root and home (both excluded)
// that do not exist, outermost first.
func missingParents(ctx context.Context, h host.Host, root, home string) ([]string, error) {
	var missing []string
	for p := path.Dir(home); p != root && cluster.Under(root, p); p = path.Dir(p) {
		info, err := h.Lstat(ctx, p)
		if err == nil {
			if !info.IsDir() {
				return nil, fmt.Errorf("%s on %s is not a folder", p, h.Name())
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{p}, missing...)
	}
	return missing, nil
}

// FileName is the record of homes made, in the run folder.
const FileName = "stubdirs.tsv"

// Columns of stubdirs.tsv.
var Columns = []string{"user", "host", "home"}

// Record adds the homes created in rs to the record at p (made if
// missing), keeping the rows already there; a row is listed once.
func Record(p string, rs []Result) error {
	rows, err := runstate.ReadTSV(p, Columns)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", p, err)
	}
	seen := map[[3]string]bool{}
	var out [][]string
	add := func(f []string) {
		k := [3]string{f[0], f[1], f[2]}
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	for _, r := range rows {
		add(r.Fields)
	}
	var fresh [][]string
	for _, r := range rs {
		if r.Outcome == Created {
			fresh = append(fresh, []string{r.User, r.Host, r.Home})
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i][0] < fresh[j][0] })
	for _, f := range fresh {
		add(f)
	}
	return runstate.WriteTSV(p, Columns, out)
}
