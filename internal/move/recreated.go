package move

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// ReasonRecreated marks the warning logged when something recreated a
// held home: a misconfigured delivery agent or login that makes missing
// homes (Dovecot does, where the user can write the folder above).
const ReasonRecreated = "home-recreated"

// ReasonLate marks the warning logged when mail reached a held home that
// stayed in place after its copy was verified, and was carried over.
const ReasonLate = "written-late"

// A home that reappears while its user is held by renaming holds mail
// that must not be lost. rescue moves such a home out of the way, to
// TRASH.recreated-N beside the move's trash, and carries every message in
// it into the user's real home; once carried, it becomes TRASH.carried-N,
// which done purges with the trash. Each stage is a rename or a copy that
// can be taken again, so a crash anywhere is finished by the next call.

func recreatedPath(p Plan, n int) string { return fmt.Sprintf("%s.recreated-%d", p.Trash, n) }
func carriedPath(p Plan, n int) string   { return fmt.Sprintf("%s.carried-%d", p.Trash, n) }

// setAside renames a recreated home at p.OldHome on src to the next free
// TRASH.recreated-N. It does nothing if there is none.
func (e *Engine) setAside(ctx context.Context, src host.Host, p Plan) (bool, error) {
	if _, err := src.Lstat(ctx, p.OldHome); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err := src.MkdirAll(ctx, path.Dir(p.Trash), 0o700, 0, 0); err != nil {
		return false, err
	}
	for n := 1; ; n++ {
		_, e1 := src.Lstat(ctx, recreatedPath(p, n))
		_, e2 := src.Lstat(ctx, carriedPath(p, n))
		if errors.Is(e1, fs.ErrNotExist) && errors.Is(e2, fs.ErrNotExist) {
			if err := src.Rename(ctx, p.OldHome, recreatedPath(p, n)); err != nil {
				return false, fmt.Errorf("set aside the recreated home %s: %w", p.OldHome, err)
			}
			e.emit(Result{User: p.User, From: p.From, To: p.To}, RecNote, "warning", ReasonRecreated,
				fmt.Errorf("%s was recreated on %s while %s was held (a delivery agent or login made it: make the folder above the homes root-owned, 0711); moved to %s, its mail is carried to the user's home", p.OldHome, p.From, p.User, recreatedPath(p, n)))
			return true, nil
		}
	}
}

// carryAll carries every set-aside recreated home of the move into home on
// to. It returns how many messages it carried.
func (e *Engine) carryAll(ctx context.Context, src host.Host, p Plan, to host.Host, home string) (int, error) {
	total := 0
	for n := 1; ; n++ {
		rp := recreatedPath(p, n)
		if _, err := src.Lstat(ctx, rp); errors.Is(err, fs.ErrNotExist) {
			if _, err := src.Lstat(ctx, carriedPath(p, n)); err == nil {
				continue
			}
			return total, nil
		} else if err != nil {
			return total, err
		}
		root := path.Dir(path.Dir(p.Staging)) // the destination's root
		if h, ok := e.Cluster.Host(to.Name()); ok {
			root = h.Root
		}
		tmp := path.Join(root, stagingDir, fmt.Sprintf("%s.%s.carry-%d", p.User, p.ID, n))
		k, err := e.carry(ctx, src, rp, to, home, tmp, p, nil)
		total += k
		if err != nil {
			return total, err
		}
		if err := src.Rename(ctx, rp, carriedPath(p, n)); err != nil {
			return total, err
		}
		if k > 0 {
			e.emit(Result{User: p.User, From: p.From, To: p.To}, RecNote, "warning", ReasonRecreated,
				fmt.Errorf("carried %d message(s) written to the recreated %s into %s on %s", k, p.OldHome, home, to.Name()))
		}
	}
}

// carry copies the tree at from on src to tmp on to, then renames each
// Maildir message (a file in a cur/ or new/ folder) that home does
// not have yet into home, at the same place. Messages are matched by
// folder and unique name (the part before ":2,"), so a message that home
// has with other flags is not carried twice.
//
// With only, just the messages whose folder and unique name (joined by a
// NUL) it holds are carried.
func (e *Engine) carry(ctx context.Context, src host.Host, from string, to host.Host, home, tmp string, p Plan, only map[string]bool) (int, error) {
	if _, err := to.MkdirAll(ctx, path.Dir(tmp), 0o700, 0, 0); err != nil {
		return 0, err
	}
	if _, err := e.Copier.Copy(ctx, src, from, to, tmp, host.CopyLive); err != nil {
		return 0, fmt.Errorf("carry %s: %w", from, err)
	}
	got, err := to.Scan(ctx, tmp, false)
	if err != nil {
		return 0, err
	}
	have, err := to.Scan(ctx, home, false)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, en := range have.Entries {
		if f, u, ok := messageKey(en); ok {
			known[f+"\x00"+u] = true
		}
	}
	n := 0
	for _, en := range got.Entries {
		f, u, ok := messageKey(en)
		if !ok || known[f+"\x00"+u] || only != nil && !only[f+"\x00"+u] {
			continue
		}
		dir := path.Join(home, path.Dir(en.Path))
		if _, err := to.MkdirAll(ctx, dir, 0o700, p.UID, p.GID); err != nil {
			return n, err
		}
		err := to.Rename(ctx, path.Join(tmp, en.Path), path.Join(home, en.Path))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		known[f+"\x00"+u] = true
		n++
	}
	return n, to.RemoveAll(ctx, tmp)
}

// messageKey names a Maildir message by its folder and unique name.
func messageKey(en tree.Entry) (folder, unique string, ok bool) {
	if en.Kind != tree.File {
		return "", "", false
	}
	dir, name := path.Split(en.Path)
	dir = strings.TrimSuffix(dir, "/")
	sub := path.Base(dir)
	if sub != "cur" && sub != "new" {
		// tmp/ holds deliveries under way; one left there was never
		// acknowledged, and its sender tries again.
		return "", "", false
	}
	if i := strings.Index(name, ":2,"); i >= 0 {
		name = name[:i]
	}
	if i := strings.Index(name, "!2,"); i >= 0 {
		name = name[:i]
	}
	return path.Dir(dir), name, true
}

// rescueAfterSwitch sets aside a home recreated on the old host and
// carries its mail into the user's home. It is called at release and again
// by done, for deliveries that looked the old home up just before the
// switch. The user's home is whatever the directory says now: by the time
// done runs the user may have moved on, or back to the old home, which
// then is no stray copy at all but the live home, and is left alone.
//
// A hold that leaves the tree where it is (postfix, command) can only see
// a recreated home once the release has moved the tree to the trash:
// before that the home in place is the held tree itself. afterRelease
// says which side of the release the caller is on.
func (e *Engine) rescueAfterSwitch(ctx context.Context, j *Journal, src host.Host, afterRelease bool) error {
	p := j.Plan
	if p.Held == p.OldHome && !afterRelease {
		return nil
	}
	cur, err := e.Directory.Lookup(ctx, p.User)
	if err != nil {
		return fmt.Errorf("look for a recreated home of %s: %w", p.User, err)
	}
	if cur.Home == p.OldHome {
		return nil
	}
	h, ok := e.Cluster.HostOf(cur.Home)
	if !ok {
		return fmt.Errorf("%s's home %s is under no host's root", p.User, cur.Home)
	}
	if _, err := e.setAside(ctx, src, p); err != nil {
		return err
	}
	to, err := e.Host(h.Name)
	if err != nil {
		return err
	}
	_, err = e.carryAll(ctx, src, p, to, cur.Home)
	return err
}

// saveVerified keeps the manifest of the held tree as verified, for
// carryLate. It is written whole or not at all (renamed into place), but
// not fsynced: it only matters to a release in this process or after a
// crash of it, and a release that finds no readable manifest carries
// nothing late (and says so).
func saveVerified(file string, m *tree.Manifest) error {
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("keep the verified manifest: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = m.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keep the verified manifest: %w", err)
	}
	return nil
}

// carryLate carries into the user's home the messages written to a held
// tree that stayed in place (hold postfix or command) after it was
// verified: mail that went around the hold (a transport map consulted
// before maildist's, an address the hold does not name, a second MX,
// LMTP or doveadm save straight into the home). The release has moved
// the tree to the trash, so it no longer changes. A message is late if
// its folder and unique name were not in the verified tree; messages the
// verified tree had are never brought back, whatever the user has done
// with them since.
func (e *Engine) carryLate(ctx context.Context, j *Journal, src host.Host) error {
	p := j.Plan
	r := Result{User: p.User, From: p.From, To: p.To}
	f, err := os.Open(verifiedPath(j))
	if err != nil {
		e.emit(r, RecNote, "warning", ReasonRecreated, fmt.Errorf("cannot tell what was written to %s after its copy was verified (%v): not looked for", p.OldHome, err))
		return nil
	}
	verified, err := tree.ReadManifest(bufio.NewReaderSize(f, 1<<20))
	f.Close()
	if err != nil {
		e.emit(r, RecNote, "warning", ReasonRecreated, fmt.Errorf("cannot tell what was written to %s after its copy was verified (%v): not looked for", p.OldHome, err))
		return nil
	}
	had := map[string]bool{}
	for _, en := range verified.Entries {
		if fo, u, ok := messageKey(en); ok {
			had[fo+"\x00"+u] = true
		}
	}
	now, err := src.Scan(ctx, p.Trash, false)
	if err != nil {
		return fmt.Errorf("look for mail written to %s after its copy was verified: %w", p.OldHome, err)
	}
	late := map[string]bool{}
	for _, en := range now.Entries {
		if fo, u, ok := messageKey(en); ok && !had[fo+"\x00"+u] {
			late[fo+"\x00"+u] = true
		}
	}
	if len(late) == 0 {
		return nil
	}
	cur, err := e.Directory.Lookup(ctx, p.User)
	if err != nil {
		return fmt.Errorf("carry mail written to %s after its copy was verified: %w", p.OldHome, err)
	}
	h, ok := e.Cluster.HostOf(cur.Home)
	if !ok {
		return fmt.Errorf("%s's home %s is under no host's root", p.User, cur.Home)
	}
	to, err := e.Host(h.Name)
	if err != nil {
		return err
	}
	tmp := path.Join(h.Root, stagingDir, fmt.Sprintf("%s.%s.late", p.User, p.ID))
	n, err := e.carry(ctx, src, p.Trash, to, cur.Home, tmp, p, late)
	if err != nil {
		return err
	}
	e.emit(r, RecNote, "warning", ReasonLate, fmt.Errorf(
		"%d message(s) were written to %s on %s after its copy was verified, past the hold (a transport map before maildist's, an address the hold does not name, another MX, or LMTP straight to Dovecot?): carried %d into %s on %s",
		len(late), p.OldHome, p.From, n, cur.Home, h.Name))
	return nil
}
