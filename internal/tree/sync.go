package tree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Sync makes dst equal to src when dst already holds an earlier copy,
// whole or partial (a Copy that failed, or an earlier pass while the user
// was live): it removes what src no longer has, copies what is new or
// changed, sets metadata that differ, and restores hard links. If dst does
// not exist, Sync is Copy.
//
// Whether a file changed is judged from the scans of both sides: size and
// mtime, and with Options.Hash the contents too (a file rewritten with the
// same size and its mtime put back is caught only then). Names that
// vanish from src meanwhile are left out and listed in Stats.Vanished.
// The result must be verified like a Copy's. Sync never writes to src.
func Sync(ctx context.Context, src, dst string, opt Options) (Stats, error) {
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	srcfd, err := openat(unix.AT_FDCWD, src, dirFlags, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("sync: open source %s: %w", src, err)
	}
	defer unix.Close(srcfd)
	dstfd, err := openat(unix.AT_FDCWD, dst, dirFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return Copy(ctx, src, dst, opt)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("sync: open %s: %w", dst, err)
	}
	defer unix.Close(dstfd)

	var sm, dm *Manifest
	var serr, derr error
	var wg sync.WaitGroup
	sopt := ScanOptions{Hash: opt.Hash, Workers: opt.Workers, hook: opt.hook}
	wg.Go(func() { sm, serr = scanFD(ctx, srcfd, sopt) })
	wg.Go(func() { dm, derr = scanFD(ctx, dstfd, ScanOptions{Hash: opt.Hash, Workers: opt.Workers}) })
	wg.Wait()
	if serr != nil {
		return Stats{}, fmt.Errorf("sync: %w", serr)
	}
	if derr != nil {
		return Stats{}, fmt.Errorf("sync: scan of the copy: %w", derr)
	}

	c := newCopier(srcfd, dstfd, opt)
	c.skip = true
	c.stats.Vanished = sm.Vanished
	p := planSync(sm, dm, c.owners)
	if os.Geteuid() != 0 {
		if err := c.makeWritable(p.touched, dm); err != nil {
			return c.result(err)
		}
	}
	for _, rel := range p.remove {
		dir, name := splitPath(rel)
		fd, err := openDir(dstfd, dir)
		if err == nil {
			err = removeAllAt(fd, name)
			unix.Close(fd)
		}
		if err != nil {
			return c.result(fmt.Errorf("sync %s: remove: %w", quote(rel), err))
		}
	}
	c.stats.Removed = p.removed
	if err := c.mkdirs(p.mkdirs); err != nil {
		return c.result(err)
	}
	for _, e := range p.fix {
		if err := c.fixMeta(e); err != nil {
			return c.result(err)
		}
	}
	if err := c.copyFiles(ctx, p.copy); err != nil {
		return c.result(err)
	}
	linked, err := c.relink(p.members)
	if err != nil {
		return c.result(err)
	}
	for _, rel := range linked {
		dir, _ := splitPath(rel)
		p.touched[dir] = true
	}
	var dirs []Entry
	for _, e := range sm.Entries {
		if e.Kind == Dir && (p.touched[e.Path] || p.dirMeta[e.Path]) {
			dirs = append(dirs, e)
		}
	}
	if err := c.finishDirs(ctx, dirs); err != nil {
		return c.result(err)
	}
	if c.syncfs {
		if err := unix.Syncfs(dstfd); err != nil {
			return c.result(fmt.Errorf("sync: syncfs %s: %w", dst, err))
		}
	}
	return c.result(nil)
}

// syncPlan is what Sync does, decided from the two manifests alone.
type syncPlan struct {
	remove  []string        // names to remove from the copy (folders with all below)
	removed int             // how many
	mkdirs  []Entry         // folders to create, in manifest order
	copy    []Entry         // files and symlinks to copy (any old name already in remove)
	fix     []Entry         // names whose metadata alone differ
	members []Entry         // further names of a file: linked at run time if need be
	touched map[string]bool // folders whose names change
	dirMeta map[string]bool // folders whose metadata alone differ
}

// planSync compares the source manifest s with the copy's d.
//
// Hard links: a name that is the first (or only) name of its file in the
// source must have an inode of its own in the copy; if the copy has it as
// a further name of another file, it is copied anew. Further names are
// checked when Sync runs (same inode as their first name, or linked
// again), which also covers a first name that was copied anew.
func planSync(s, d *Manifest, owners bool) syncPlan {
	p := syncPlan{touched: make(map[string]bool), dirMeta: make(map[string]bool)}
	src := index(s)
	dst := index(d)
	hashed := s.Hashed && d.Hashed
	gone := make(map[string]bool) // names removed from the copy

	dropped := func(rel string) bool {
		for r := rel; r != "."; r, _ = splitPath(r) {
			if gone[r] {
				return true
			}
		}
		return false
	}
	drop := func(rel string) {
		p.remove = append(p.remove, rel)
		p.removed++
		gone[rel] = true
		dir, _ := splitPath(rel)
		p.touched[dir] = true
	}

	for i := range d.Entries {
		de := &d.Entries[i]
		if de.Path == "." || dropped(de.Path) {
			continue
		}
		se := src[de.Path]
		switch {
		case se == nil || se.Kind != de.Kind:
			drop(de.Path)
		case se.Kind == Dir:
		case se.Link != "":
			// Checked at run time against its first name.
		case de.Link != "" || contentDiffers(se, de, hashed):
			drop(de.Path)
			p.removed-- // replaced, not removed
		}
	}

	for i := range s.Entries {
		se := &s.Entries[i]
		dir, _ := splitPath(se.Path)
		de := dst[se.Path]
		if de != nil && dropped(se.Path) {
			de = nil
		}
		switch {
		case se.Kind == Dir && de == nil:
			p.mkdirs = append(p.mkdirs, *se)
			p.touched[dir] = true
			p.touched[se.Path] = true
		case se.Kind == Dir:
			if metaDiffers(se, de, owners) {
				p.dirMeta[se.Path] = true
			}
		case se.Link != "":
			p.members = append(p.members, *se)
		case de == nil:
			p.copy = append(p.copy, *se)
			p.touched[dir] = true
		case metaDiffers(se, de, owners):
			p.fix = append(p.fix, *se)
		}
	}
	return p
}

func index(m *Manifest) map[string]*Entry {
	idx := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		idx[m.Entries[i].Path] = &m.Entries[i]
	}
	return idx
}

func contentDiffers(s, d *Entry, hashed bool) bool {
	switch s.Kind {
	case File:
		if s.Size != d.Size {
			return true
		}
		if hashed {
			return s.Hash != d.Hash
		}
		return s.MTime != d.MTime
	case Symlink:
		return s.Target != d.Target
	}
	return false
}

func metaDiffers(s, d *Entry, owners bool) bool {
	if s.Kind != Symlink && s.Mode != d.Mode {
		return true
	}
	if owners && (s.UID != d.UID || s.GID != d.GID) {
		return true
	}
	return s.MTime != d.MTime
}

// fixMeta sets the metadata of a name in the copy whose contents are right.
func (c *copier) fixMeta(e Entry) error {
	dir, name := splitPath(e.Path)
	fd, err := openDir(c.dst, dir)
	if err != nil {
		return fmt.Errorf("sync %s: open folder: %w", quote(e.Path), err)
	}
	defer unix.Close(fd)
	if e.Kind == Symlink {
		if err := c.symlinkMeta(fd, name, e.Path, e.UID, e.GID, e.ATime, e.MTime); err != nil {
			return err
		}
		c.stats.Fixed++
		return nil
	}
	if c.owners {
		if err := unix.Fchownat(fd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("sync %s: chown: %w", quote(e.Path), err)
		}
	}
	// The copy belongs to us and was just scanned as a file: fchmodat,
	// which follows a symlink, meets none here.
	if err := unix.Fchmodat(fd, name, e.Mode, 0); err != nil {
		return fmt.Errorf("sync %s: chmod: %w", quote(e.Path), err)
	}
	if err := lutimesat(fd, name, e.ATime, e.MTime); err != nil {
		return fmt.Errorf("sync %s: set times: %w", quote(e.Path), err)
	}
	ffd, err := openRead(fd, name)
	if err != nil {
		// A mode-000 file cannot be opened without root to be fsynced.
		c.syncfs = true
	} else {
		err = fsync(ffd)
		unix.Close(ffd)
		if err != nil {
			return fmt.Errorf("sync %s: fsync: %w", quote(e.Path), err)
		}
	}
	c.stats.Fixed++
	return nil
}

// relink checks that every further name of a file shares the inode of its
// first name in the copy, and links it again where not.
func (c *copier) relink(members []Entry) ([]string, error) {
	var redo []Entry
	for _, e := range members {
		same, err := c.sameInode(e.Link, e.Path)
		if err != nil {
			return nil, err
		}
		if same {
			continue
		}
		dir, name := splitPath(e.Path)
		fd, err := openDir(c.dst, dir)
		if err == nil {
			err = unix.Unlinkat(fd, name, 0)
			unix.Close(fd)
			if errors.Is(err, unix.ENOENT) {
				err = nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sync %s: remove: %w", quote(e.Path), err)
		}
		redo = append(redo, e)
	}
	// A first name missing from the copy vanished from the source.
	for _, e := range redo {
		if _, err := c.lstat(e.Link); errors.Is(err, unix.ENOENT) {
			c.vanished[e.Link] = true
		}
	}
	return c.links(redo)
}

func (c *copier) lstat(rel string) (unix.Stat_t, error) {
	dir, name := splitPath(rel)
	fd, err := openDir(c.dst, dir)
	if err != nil {
		return unix.Stat_t{}, err
	}
	defer unix.Close(fd)
	return lstatat(fd, name)
}

func (c *copier) sameInode(a, b string) (bool, error) {
	sa, err := c.lstat(a)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("sync %s: stat: %w", quote(a), err)
	}
	sb, err := c.lstat(b)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("sync %s: stat: %w", quote(b), err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// makeWritable gives the folders Sync will change u+rwx, which a copy made
// without root needs to change them; finishDirs puts their modes back.
func (c *copier) makeWritable(dirs map[string]bool, d *Manifest) error {
	for rel := range dirs {
		e := d.Find(rel)
		if e == nil || e.Kind != Dir || e.Mode&0o700 == 0o700 {
			continue
		}
		fd, err := openDir(c.dst, rel)
		if err == nil {
			err = unix.Fchmod(fd, e.Mode|0o700)
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("sync %s: chmod: %w", quote(rel), err)
		}
	}
	return nil
}
