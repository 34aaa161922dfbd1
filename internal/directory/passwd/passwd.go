package passwd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/fsutil"
)

// File is a passwd-file directory.
type File struct {
	path       string
	holdMarker bool
}

// Options for Open.
type Options struct {
	// HoldMarker lets SetHold/ClearHold add and remove Dovecot's
	// "nologin reason=…" extra fields. Off for a system /etc/passwd, which
	// has no eighth field.
	HoldMarker bool
}

// Open opens a passwd-file directory. The file must exist.
func Open(path string, opt Options) (*File, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("passwd directory: %w", err)
	}
	return &File{path: path, holdMarker: opt.HoldMarker}, nil
}

var _ directory.Directory = (*File)(nil)
var _ directory.Marker = (*File)(nil)

// line is one line of the file, split into fields when it is an entry.
type line struct {
	raw    string   // as read, without the newline
	fields []string // nil for comments, blank lines and bad lines
	num    int
}

// parsed is the whole file.
type parsed struct {
	lines   []line
	trailNL bool // the file ended with a newline
	bad     []error
	stat    os.FileInfo
}

const (
	fUser  = 0
	fUID   = 2
	fGID   = 3
	fHome  = 5
	fExtra = 7
)

func (f *File) read() (*parsed, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.path, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(fh); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.path, err)
	}
	return parse(f.path, buf.Bytes(), st), nil
}

func parse(name string, data []byte, st os.FileInfo) *parsed {
	p := &parsed{stat: st}
	text := string(data)
	p.trailNL = strings.HasSuffix(text, "\n")
	text = strings.TrimSuffix(text, "\n")
	if text == "" && !p.trailNL {
		return p
	}
	for i, raw := range strings.Split(text, "\n") {
		l := line{raw: raw, num: i + 1}
		if msg := check(raw, &l); msg != "" {
			p.bad = append(p.bad, &directory.LineError{File: name, Line: l.num, Msg: msg})
		}
		p.lines = append(p.lines, l)
	}
	return p
}

// check splits an entry line into l.fields and says what is wrong with it,
// if anything. Comments and blank lines are fine and have no fields.
func check(raw string, l *line) string {
	t := strings.TrimSpace(raw)
	if t == "" || strings.HasPrefix(t, "#") {
		return ""
	}
	fields := strings.SplitN(raw, ":", fExtra+1)
	if len(fields) <= fHome {
		return fmt.Sprintf("%d fields, want at least 6 (user:password:uid:gid:gecos:home)", len(fields))
	}
	if fields[fUser] == "" {
		return "empty user name"
	}
	for _, i := range []int{fUID, fGID} {
		if fields[i] == "" {
			continue
		}
		if _, err := strconv.Atoi(fields[i]); err != nil {
			return fmt.Sprintf("user %q: uid/gid %q is not a number", fields[fUser], fields[i])
		}
	}
	if !strings.HasPrefix(fields[fHome], "/") {
		return fmt.Sprintf("user %q: home %q is not an absolute path", fields[fUser], fields[fHome])
	}
	l.fields = fields
	return ""
}

func entryOf(l *line) directory.Entry {
	e := directory.Entry{User: l.fields[fUser], Home: l.fields[fHome], UID: -1, GID: -1}
	if n, err := strconv.Atoi(l.fields[fUID]); err == nil {
		e.UID = n
	}
	if n, err := strconv.Atoi(l.fields[fGID]); err == nil {
		e.GID = n
	}
	if len(l.fields) > fExtra {
		e.Held = hasOurMarker(l.fields[fExtra])
	}
	return e
}

// List returns every good entry; bad lines are joined in err.
func (f *File) List(ctx context.Context) ([]directory.Entry, error) {
	p, err := f.read()
	if err != nil {
		return nil, err
	}
	out := make([]directory.Entry, 0, len(p.lines))
	for i := range p.lines {
		if p.lines[i].fields != nil {
			out = append(out, entryOf(&p.lines[i]))
		}
	}
	return out, errors.Join(p.bad...)
}

// find returns the index of user's one line.
func (f *File) find(p *parsed, user string) (int, error) {
	idx := -1
	for i := range p.lines {
		if p.lines[i].fields != nil && p.lines[i].fields[fUser] == user {
			if idx >= 0 {
				return -1, fmt.Errorf("%s: user %q on lines %d and %d: %w", f.path, user, p.lines[idx].num, p.lines[i].num, directory.ErrDuplicate)
			}
			idx = i
		}
	}
	if idx < 0 {
		// A malformed line for this user must not look like "no such user".
		for _, b := range p.bad {
			var le *directory.LineError
			if errors.As(b, &le) && strings.HasPrefix(p.lines[le.Line-1].raw, user+":") {
				return -1, fmt.Errorf("user %q: %w", user, b)
			}
		}
		return -1, fmt.Errorf("%s: user %q: %w", f.path, user, directory.ErrNotFound)
	}
	return idx, nil
}

// Lookup returns one user's entry.
func (f *File) Lookup(ctx context.Context, user string) (directory.Entry, error) {
	p, err := f.read()
	if err != nil {
		return directory.Entry{}, err
	}
	i, err := f.find(p, user)
	if err != nil {
		return directory.Entry{}, err
	}
	return entryOf(&p.lines[i]), nil
}

// Switch changes user's home from oldHome to newHome (compare and swap).
func (f *File) Switch(ctx context.Context, user, oldHome, newHome string) error {
	if strings.ContainsAny(newHome, ":\n") || !strings.HasPrefix(newHome, "/") {
		return fmt.Errorf("switch %s: home %q cannot be written to a passwd file", user, newHome)
	}
	return f.edit(ctx, user, func(fields []string) ([]string, error) {
		if fields[fHome] != oldHome {
			return nil, fmt.Errorf("switch %s: home is %s, not %s: %w", user, fields[fHome], oldHome, directory.ErrChanged)
		}
		fields[fHome] = newHome
		return fields, nil
	})
}

// SetHold adds Dovecot's "nologin reason=…" to the user's extra fields.
func (f *File) SetHold(ctx context.Context, user, reason string) error {
	if !f.holdMarker {
		return nil
	}
	if reason == "" || strings.ContainsAny(reason, " \t:\n") {
		return fmt.Errorf("hold %s: reason %q must be one word", user, reason)
	}
	return f.edit(ctx, user, func(fields []string) ([]string, error) {
		for len(fields) <= fExtra {
			fields = append(fields, "")
		}
		toks := strings.Fields(fields[fExtra])
		for _, t := range toks {
			if t == "nologin" {
				return fields, nil // refused already: by us or by the site
			}
		}
		toks = append(toks, "nologin", "reason="+reason)
		fields[fExtra] = strings.Join(toks, " ")
		return fields, nil
	})
}

// ClearHold removes the marker SetHold added, and only that.
func (f *File) ClearHold(ctx context.Context, user string) error {
	if !f.holdMarker {
		return nil
	}
	return f.edit(ctx, user, func(fields []string) ([]string, error) {
		if len(fields) <= fExtra || !hasOurMarker(fields[fExtra]) {
			return fields, nil
		}
		var keep []string
		for _, t := range strings.Fields(fields[fExtra]) {
			if t != "nologin" && t != "reason="+directory.HoldReason {
				keep = append(keep, t)
			}
		}
		fields[fExtra] = strings.Join(keep, " ")
		// SetHold had to add an eighth field to a line like
		// "bob:x:1:1::/h/bob:/bin/sh"; take it away again. Dovecot lines
		// ("…:/h/alice::") keep their empty eighth field.
		if fields[fExtra] == "" && fields[fExtra-1] != "" {
			fields = fields[:fExtra]
		}
		return fields, nil
	})
}

func hasOurMarker(extra string) bool {
	for _, t := range strings.Fields(extra) {
		if t == "reason="+directory.HoldReason {
			return true
		}
	}
	return false
}

// edit rewrites one user's line under the lock.
func (f *File) edit(ctx context.Context, user string, change func([]string) ([]string, error)) error {
	lk, err := fsutil.LockWait(f.path + ".lock")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := f.read()
		if err != nil {
			return err
		}
		i, err := f.find(p, user)
		if err != nil {
			return err
		}
		l := &p.lines[i]
		old := append([]string(nil), l.fields...)
		nf, err := change(append([]string(nil), l.fields...))
		if err != nil {
			return err
		}
		if strings.Join(nf, ":") == strings.Join(old, ":") {
			return nil
		}
		l.raw = strings.Join(nf, ":")
		// Someone who does not take our lock (an editor, useradd) may have
		// changed the file since we read it; then read again.
		if changed, err := f.changedSince(p.stat); err != nil {
			return err
		} else if changed {
			if attempt > 5 {
				return fmt.Errorf("%s keeps changing under us; try again", f.path)
			}
			continue
		}
		return f.write(p)
	}
}

func (f *File) changedSince(st os.FileInfo) (bool, error) {
	now, err := os.Stat(f.path)
	if err != nil {
		return false, err
	}
	a, b := st.Sys().(*syscall.Stat_t), now.Sys().(*syscall.Stat_t)
	return a.Ino != b.Ino || a.Size != b.Size || !now.ModTime().Equal(st.ModTime()), nil
}

func (f *File) write(p *parsed) error {
	var b strings.Builder
	for i, l := range p.lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.raw)
	}
	if p.trailNL {
		b.WriteByte('\n')
	}
	prev, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(f.path+".bak", prev, p.stat.Mode().Perm()); err != nil {
		return fmt.Errorf("back up %s: %w", f.path, err)
	}
	if err := fsutil.WriteFile(f.path, []byte(b.String()), p.stat.Mode().Perm()); err != nil {
		return err
	}
	return f.stamp(p.stat.ModTime())
}

// stamp dates the file just written a whole second after the one it
// replaced (later still if the clock says so). Dovecot re-reads a
// passwd-file only when its mtime in seconds or its size changed, so a
// switch between homes of the same length, written within the second of
// the last write, would go unseen: Dovecot would go on delivering to the
// old home. The file may be dated a few seconds ahead after a burst of
// writes; that is harmless.
func (f *File) stamp(prev time.Time) error {
	t := time.Now()
	if t.Unix() <= prev.Unix() {
		t = time.Unix(prev.Unix()+1, 0)
	}
	if err := os.Chtimes(f.path, time.Time{}, t); err != nil {
		return fmt.Errorf("date %s: %w", f.path, err)
	}
	return nil
}

// Close does nothing: the file is opened for each call.
func (f *File) Close() error { return nil }
