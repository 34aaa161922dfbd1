package tree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
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
//
// Mail is brought up to date the cheap way where that gives the same
// result (see maildir.go): a Maildir message whose name changed (flags,
// or new/ to cur/) is renamed in the copy, after its size and contents
// were found equal on both sides; an mbox file that only grew gets only
// its new end, after the old length's head was found equal on both sides.
// Otherwise they are copied whole, like every other changed file.
//
// With Options.Cache (and without Options.Hash), the copy's manifest is
// taken from what the last Copy or Sync into dst left, if the copy is
// unchanged since, instead of from a scan of dst.
//
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
	sopt := ScanOptions{Hash: opt.Hash || opt.HashSource, Workers: opt.Workers, Cache: opt.Cache, hook: opt.hook}
	wg.Go(func() { sm, serr = scanFD(ctx, srcfd, sopt) })
	wg.Go(func() {
		if opt.Cache != nil && !opt.Hash {
			if dm = opt.Cache.copyOf(dstfd); dm != nil {
				return
			}
		}
		dm, derr = scanFD(ctx, dstfd, ScanOptions{Hash: opt.Hash, Workers: opt.Workers, Cache: opt.Cache})
	})
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
	if opt.Cache != nil {
		// Whatever happens now, the copy is no longer as recorded.
		opt.Cache.forget(dstfd)
		if !opt.Hash {
			c.led = newLedger()
		}
	}
	p := planSync(sm, dm, c.owners)
	if os.Geteuid() != 0 {
		if err := c.makeWritable(p.touched, dm); err != nil {
			return c.result(err)
		}
	}
	for _, rel := range p.remove {
		if err := c.removeName(rel); err != nil {
			return c.result(err)
		}
	}
	c.stats.Removed += p.removed
	if err := c.mkdirs(p.mkdirs); err != nil {
		return c.result(err)
	}
	for _, e := range p.fix {
		if err := c.fixMeta(e); err != nil {
			return c.result(err)
		}
	}
	again, err := c.renames(ctx, p.rename, sm.Hashed && dm.Hashed)
	if err != nil {
		return c.result(err)
	}
	more, err := c.grows(ctx, p.grow)
	if err != nil {
		return c.result(err)
	}
	if err := c.copyFiles(ctx, append(append(p.copy, again...), more...)); err != nil {
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
	c.stats.Quiet = quiet(srcfd, sm)
	c.remember(dm)
	if opt.HashSource {
		c.stats.Source = sm
	}
	return c.result(nil)
}

// removeName removes a name (a folder with all below it) from the copy.
func (c *copier) removeName(rel string) error {
	dir, name := splitPath(rel)
	fd, err := openDir(c.dst, dir)
	if err == nil {
		err = removeAllAt(fd, name)
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("sync %s: remove: %w", quote(rel), err)
	}
	c.led.removed(rel)
	return nil
}

// syncPlan is what Sync does, decided from the two manifests alone.
type syncPlan struct {
	remove  []string        // names to remove from the copy (folders with all below)
	removed int             // how many
	mkdirs  []Entry         // folders to create, in manifest order
	copy    []Entry         // files and symlinks to copy (any old name already in remove)
	fix     []Entry         // names whose metadata alone differ
	rename  []renameOp      // messages to rename in the copy
	grow    []growOp        // mbox files to extend
	members []Entry         // further names of a file: linked at run time if need be
	touched map[string]bool // folders whose names change
	dirMeta map[string]bool // folders whose metadata alone differ
}

// renameOp renames a message of the copy from its old name (from, as the
// copy's manifest has it) to its new one (to, as the source's has it).
type renameOp struct{ from, to Entry }

// growOp extends a file of the copy (old) to the source's (src).
type growOp struct{ src, old Entry }

// planSync compares the source manifest s with the copy's d.
//
// Hard links: a name that is the first (or only) name of its file in the
// source must have an inode of its own in the copy; if the copy has it as
// a further name of another file, it is copied anew. Further names are
// checked when Sync runs (same inode as their first name, or linked
// again), which also covers a first name that was copied anew. Files with
// several names are never renamed or extended, only copied.
func planSync(s, d *Manifest, owners bool) syncPlan {
	p := syncPlan{touched: make(map[string]bool), dirMeta: make(map[string]bool)}
	// Both manifests are sorted by path: one pass pairs their entries.
	toD, toS := pairs(s.Entries, d.Entries)
	sLinked, dLinked := linkedNames(s), linkedNames(d)
	hashed := s.Hashed && d.Hashed
	gone := make(map[string]bool) // names removed from the copy
	grown := make(map[string]bool)
	orphans := make(map[string][]*Entry) // by message key: names of the copy gone from the source

	dropped := func(rel string) bool {
		if len(gone) == 0 {
			return false
		}
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
	single := func(e *Entry, linked map[string]bool) bool {
		return e.Kind == File && e.Link == "" && !linked[e.Path]
	}

	for i := range d.Entries {
		de := &d.Entries[i]
		if de.Path == "." || dropped(de.Path) {
			continue
		}
		var se *Entry
		if k := toS[i]; k >= 0 {
			se = &s.Entries[k]
		}
		switch {
		case se == nil && single(de, dLinked):
			if k, ok := messageKey(de.Path); ok {
				orphans[k] = append(orphans[k], de)
				continue
			}
			drop(de.Path)
		case se == nil || se.Kind != de.Kind:
			drop(de.Path)
		case se.Kind == Dir:
		case se.Link != "":
			// Checked at run time against its first name.
		case de.Link == "" && single(se, sLinked) && single(de, dLinked) &&
			de.Size > 0 && se.Size > de.Size && mboxCandidate(se.Path):
			p.grow = append(p.grow, growOp{src: *se, old: *de})
			grown[se.Path] = true
		case de.Link != "" || contentDiffers(se, de, hashed):
			drop(de.Path)
			p.removed-- // replaced, not removed
		}
	}

	// A message of the source at a name the copy lacks, whose key matches
	// exactly one name of the copy gone from the source (and no other
	// name of the source), of the same size and, if both were hashed, the
	// same contents, is that name renamed.
	var keys map[string]int
	if len(orphans) > 0 {
		keys = make(map[string]int)
		for k := range orphans {
			keys[k] = countKey(s.Entries, k)
		}
	}
	renamedFrom := func(se *Entry) *Entry {
		if len(orphans) == 0 || !single(se, sLinked) {
			return nil
		}
		k, ok := messageKey(se.Path)
		if !ok || keys[k] != 1 || len(orphans[k]) != 1 {
			return nil
		}
		de := orphans[k][0]
		if de.Size != se.Size || hashed && de.Hash != se.Hash {
			return nil
		}
		delete(orphans, k)
		return de
	}

	for i := range s.Entries {
		se := &s.Entries[i]
		dir := func() string { d, _ := splitPath(se.Path); return d }
		var de *Entry
		if k := toD[i]; k >= 0 {
			de = &d.Entries[k]
		}
		if de != nil && dropped(se.Path) {
			de = nil
		}
		switch {
		case se.Kind == Dir && de == nil:
			p.mkdirs = append(p.mkdirs, *se)
			p.touched[dir()] = true
			p.touched[se.Path] = true
		case se.Kind == Dir:
			if metaDiffers(se, de, owners) {
				p.dirMeta[se.Path] = true
			}
		case se.Link != "":
			p.members = append(p.members, *se)
		case de == nil:
			if old := renamedFrom(se); old != nil {
				p.rename = append(p.rename, renameOp{from: *old, to: *se})
				odir, _ := splitPath(old.Path)
				p.touched[odir] = true
			} else {
				p.copy = append(p.copy, *se)
			}
			p.touched[dir()] = true
		case grown[se.Path]:
			p.touched[dir()] = true // in case it must be copied whole after all
		case metaDiffers(se, de, owners):
			p.fix = append(p.fix, *se)
		}
	}
	// Names gone from the source that no new name took over.
	var left []string
	for _, es := range orphans {
		for _, de := range es {
			left = append(left, de.Path)
		}
	}
	sort.Strings(left)
	for _, rel := range left {
		drop(rel)
	}
	return p
}

// countKey counts the message files of es (sorted by path) whose key
// (messageKey) is k. Their names begin with the key's base name, in the
// key's folder's cur/ or new/: two runs of es, found by bisection, so the
// rest of a big folder is not looked at.
func countKey(es []Entry, k string) int {
	folder, base, _ := strings.Cut(k, "\x00")
	n := 0
	for _, sub := range []string{"cur", "new"} {
		prefix := joinPath(folder, sub) + "/" + base
		i, _ := slices.BinarySearchFunc(es, prefix, func(e Entry, p string) int { return strings.Compare(e.Path, p) })
		for ; i < len(es) && strings.HasPrefix(es[i].Path, prefix); i++ {
			if es[i].Kind != File {
				continue
			}
			if got, ok := messageKey(es[i].Path); ok && got == k {
				n++
			}
		}
	}
	return n
}

// linkedNames returns the first names of files that have further names.
func linkedNames(m *Manifest) map[string]bool {
	l := make(map[string]bool)
	for i := range m.Entries {
		if m.Entries[i].Link != "" {
			l[m.Entries[i].Link] = true
		}
	}
	return l
}

// pairs matches the entries of a and b, both sorted by path: for each
// entry of a the index in b of the entry at the same path, or -1, and the
// same for each entry of b.
func pairs(a, b []Entry) (ab, ba []int) {
	ab, ba = make([]int, len(a)), make([]int, len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case j == len(b):
			c = -1
		case i == len(a):
			c = 1
		default:
			c = strings.Compare(a[i].Path, b[j].Path)
		}
		switch {
		case c < 0:
			ab[i] = -1
			i++
		case c > 0:
			ba[j] = -1
			j++
		default:
			ab[i], ba[j] = j, i
			i++
			j++
		}
	}
	return ab, ba
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
		c.led.wroteAt(fd, name, e.Path)
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
	c.led.wroteAt(fd, name, e.Path)
	c.mu.Lock()
	c.stats.Fixed++
	c.mu.Unlock()
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
		if err := c.unlink(e.Path); err != nil {
			return nil, err
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

// unlink removes a file or symlink from the copy; a missing one is fine.
func (c *copier) unlink(rel string) error {
	dir, name := splitPath(rel)
	fd, err := openDir(c.dst, dir)
	if err == nil {
		err = unix.Unlinkat(fd, name, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("sync %s: remove: %w", quote(rel), err)
	}
	c.led.removed(rel)
	return nil
}

// renames renames messages in the copy. Unless both manifests were
// hashed, it first reads both files to be sure they hold the same
// message: a name is only a name. Where they differ, the old name is
// removed and the new one is returned to be copied whole; where the
// source's name has vanished meanwhile, the old name is removed and the
// vanished name recorded.
func (c *copier) renames(ctx context.Context, ops []renameOp, hashed bool) ([]Entry, error) {
	var mu sync.Mutex
	var again []Entry
	j := newJobs(ctx, true)
	for len(ops) > 0 {
		n := min(chunk, len(ops))
		part := ops[:n:n]
		ops = ops[n:]
		j.add(func() error {
			for _, op := range part {
				if err := ctx.Err(); err != nil {
					return err
				}
				if j.stopped() {
					return nil
				}
				c.hook("rename", op.to.Path)
				ok, err := c.rename(op, hashed)
				if err != nil {
					return err
				}
				if !ok {
					mu.Lock()
					again = append(again, op.to)
					mu.Unlock()
				}
			}
			return nil
		})
	}
	err := j.run(c.opt.workers())
	return again, err
}

// rename carries out one renameOp; false means the new name is to be
// copied whole (the old one is gone from the copy by then).
func (c *copier) rename(op renameOp, hashed bool) (bool, error) {
	if !hashed {
		same, err := c.sameMessage(op)
		if errors.Is(err, ErrVanished) {
			if err := c.vanish(op.to.Path); err != nil {
				return false, err
			}
			c.mu.Lock()
			c.stats.Removed++
			c.mu.Unlock()
			return true, c.unlink(op.from.Path)
		}
		if err != nil {
			return false, err
		}
		if !same {
			c.mu.Lock()
			c.stats.Removed++
			c.mu.Unlock()
			return false, c.unlink(op.from.Path)
		}
	}
	fdir, fname := splitPath(op.from.Path)
	tdir, tname := splitPath(op.to.Path)
	ffd, err := openDir(c.dst, fdir)
	if err != nil {
		return false, fmt.Errorf("sync %s: open folder: %w", quote(op.from.Path), err)
	}
	defer unix.Close(ffd)
	tfd, err := openDir(c.dst, tdir)
	if err != nil {
		return false, fmt.Errorf("sync %s: open folder: %w", quote(op.to.Path), err)
	}
	defer unix.Close(tfd)
	if err := unix.Renameat2(ffd, fname, tfd, tname, unix.RENAME_NOREPLACE); err != nil {
		return false, fmt.Errorf("sync %s: rename to %s: %w", quote(op.from.Path), quote(op.to.Path), err)
	}
	c.led.removed(op.from.Path)
	c.mu.Lock()
	c.stats.Renamed++
	c.mu.Unlock()
	if metaDiffers(&op.to, &op.from, c.owners) {
		return true, c.fixMeta(op.to)
	}
	c.led.wroteAt(tfd, tname, op.to.Path)
	return true, nil
}

// sameMessage reads the source's file at the new name and the copy's at
// the old one, and tells whether they hold the same bytes.
func (c *copier) sameMessage(op renameOp) (bool, error) {
	sh, sst, err := hashAt(c.src, op.to.Path)
	if err != nil {
		if errors.Is(err, ErrVanished) {
			return false, err
		}
		return false, fmt.Errorf("sync %s: %w", quote(op.to.Path), err)
	}
	if sst.Size != op.from.Size {
		return false, nil
	}
	dh, _, err := hashAt(c.dst, op.from.Path)
	if err != nil {
		if errors.Is(err, ErrVanished) {
			return false, nil // not as the manifest said: copy
		}
		return false, fmt.Errorf("sync %s: in the copy: %w", quote(op.from.Path), err)
	}
	return sh == dh, nil
}

// hashAt hashes the regular file rel below root.
func hashAt(root int, rel string) (Hash, unix.Stat_t, error) {
	dir, name := splitPath(rel)
	dfd, err := openDir(root, dir)
	if err != nil {
		if gone(err) {
			return Hash{}, unix.Stat_t{}, ErrVanished
		}
		return Hash{}, unix.Stat_t{}, fmt.Errorf("open folder: %w", err)
	}
	fd, err := openRead(dfd, name)
	unix.Close(dfd)
	if err != nil {
		if gone(err) {
			return Hash{}, unix.Stat_t{}, ErrVanished
		}
		return Hash{}, unix.Stat_t{}, fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	st, err := fstat(fd)
	if err != nil {
		return Hash{}, st, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Hash{}, st, ErrVanished
	}
	h, err := hashFD(fd, st.Size)
	return h, st, err
}

// grows extends mbox files in the copy; it returns those to be copied
// whole instead (their old copy is gone by then).
func (c *copier) grows(ctx context.Context, ops []growOp) ([]Entry, error) {
	var mu sync.Mutex
	var again []Entry
	j := newJobs(ctx, true)
	for _, op := range ops {
		j.add(func() error {
			if j.stopped() {
				return nil
			}
			c.hook("grow", op.src.Path)
			ok, err := c.grow(op)
			if err != nil {
				return err
			}
			if !ok {
				if err := c.unlink(op.old.Path); err != nil {
					return err
				}
				mu.Lock()
				again = append(again, op.src)
				mu.Unlock()
			}
			return nil
		})
	}
	err := j.run(c.opt.workers())
	return again, err
}

// grow copies to the copy of an mbox file what was appended to it since,
// after checking that it is an mbox, that the copy has no other name, and
// that the head as long as the copy is the same on both sides. false: it
// must be copied whole.
func (c *copier) grow(op growOp) (bool, error) {
	rel := op.src.Path
	dir, name := splitPath(rel)
	sdir, err := openDir(c.src, dir)
	if err != nil {
		if gone(err) {
			return false, nil // copyFiles finds it vanished
		}
		return false, fmt.Errorf("sync %s: open folder: %w", quote(dir), err)
	}
	defer unix.Close(sdir)
	sfd, err := openRead(sdir, name)
	if err != nil {
		if gone(err) {
			return false, nil
		}
		return false, fmt.Errorf("sync %s: open: %w", quote(rel), err)
	}
	defer unix.Close(sfd)
	st, err := fstat(sfd)
	if err != nil {
		return false, fmt.Errorf("sync %s: stat: %w", quote(rel), err)
	}
	old := op.old.Size
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < old {
		return false, nil
	}
	magic := make([]byte, len(mboxMagic))
	if n, err := unix.Pread(sfd, magic, 0); err != nil || !isMboxStart(magic[:n]) {
		return false, nil
	}
	ddir, err := openDir(c.dst, dir)
	if err != nil {
		return false, fmt.Errorf("sync %s: open folder of the copy: %w", quote(dir), err)
	}
	defer unix.Close(ddir)
	dfd, err := openat(ddir, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil
	}
	defer unix.Close(dfd)
	dst, err := fstat(dfd)
	if err != nil || dst.Mode&unix.S_IFMT != unix.S_IFREG || dst.Size != old || dst.Nlink != 1 {
		return false, nil
	}
	sh, err := hashFD(sfd, old)
	if err != nil {
		return false, fmt.Errorf("sync %s: %w", quote(rel), err)
	}
	dh, err := hashFD(dfd, old)
	if err != nil {
		return false, fmt.Errorf("sync %s: in the copy: %w", quote(rel), err)
	}
	if sh != dh {
		return false, nil
	}
	// Both offsets are at old now: the rest of the source goes after it.
	n, err := copyContent(dfd, sfd, -1, c.cfr, c.progress)
	if err != nil {
		return false, fmt.Errorf("sync %s: append: %w", quote(rel), err)
	}
	if err := c.setMeta(dfd, &st); err != nil {
		return false, fmt.Errorf("sync %s: %w", quote(rel), err)
	}
	if err := fsync(dfd); err != nil {
		return false, fmt.Errorf("sync %s: fsync: %w", quote(rel), err)
	}
	c.record(dfd, rel)
	c.mu.Lock()
	c.stats.Appended++
	c.stats.Bytes += n
	c.mu.Unlock()
	return true, nil
}
