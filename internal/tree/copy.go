package tree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// OwnerPolicy says whether a copy sets the owners of what it creates.
type OwnerPolicy uint8

const (
	// OwnersAuto sets owners when running as root (the zero value, so
	// that a copy made by root never quietly loses them).
	OwnersAuto OwnerPolicy = iota
	// OwnersOn always sets them; without root that fails for any owner
	// but oneself.
	OwnersOn
	// OwnersOff never sets them: what is created belongs to the caller.
	OwnersOff
)

// Options says how to copy.
type Options struct {
	// Workers is how many files are copied at once; 0 picks a default.
	Workers int
	Owners  OwnerPolicy
	// Progress, if set, is called with the number of content bytes just
	// copied; calls never overlap.
	Progress func(bytes int64)
	// Hash makes Sync compare contents by hash, not by size and mtime
	// alone, so that a change that kept both is caught.
	Hash bool
	// SkipVanished makes Copy leave out a name that vanishes (see
	// ErrVanished) and list it in Stats.Vanished instead of failing.
	// Sync always does so.
	SkipVanished bool
	// Cache, if set, keeps what Copy and Sync learn of the copy (and,
	// with Hash, of the files' contents), so that the next Sync into the
	// same copy need not scan it (see Cache). Share one Cache between all
	// the copies and scans of a move.
	Cache *Cache
	// HashSource makes Sync hash the source's files as it scans them
	// (through the Cache, reading only those changed since it last read
	// them) and hand its manifest back in Stats.Source, for a verify to
	// compare the copy with: the source as this Sync copied it. Unlike
	// Hash, the copy is not hashed.
	HashSource bool
	// ReadBack makes Copy and Sync, given a Cache, read back each file
	// they copy, from the source and from the copy, while both are still
	// in memory, and keep the two hashes in the Cache (Stats.ReadBack):
	// a hashing scan of either tree after it (a verify) then reads
	// neither, only stats them. The copy's hash is of what it holds, read
	// back from it, never of what was written to it.
	ReadBack bool
	// Last says that no Sync into the copy is expected after this one
	// (the pass under the hold, after which a verify scans the copy
	// afresh): the copy's manifest for the Cache is then made only if a
	// later Sync asks for it, not while the user waits.
	Last bool

	hook            func(event, rel string) // for tests
	noCopyFileRange bool                    // for tests: read and write only
	fsyncEach       bool                    // for tests: fsync every file at once, unbatched
	noSyncfs        bool                    // for tests: fsync in batches even where syncfs would do
}

// Stats counts what a Copy or Sync did.
type Stats struct {
	// Names created: files, folders, symlinks, and further names of a
	// file (hard links).
	Files, Dirs, Symlinks, HardLinks int
	// Bytes is the content copied.
	Bytes int64
	// Removed counts the names Sync removed from the copy (a removed
	// folder counts once); Fixed the names whose contents were right and
	// only metadata (mode, owner, times) were set.
	Removed, Fixed int
	// Renamed counts the Maildir messages that Sync renamed in the copy
	// (new flags, or from new/ to cur/) instead of copying them again;
	// Appended the mbox files to which it copied only what had been
	// appended. Their bytes are in Bytes.
	Renamed, Appended int
	// Vanished lists the source names that were gone, or replaced, when
	// they were to be copied. The copy does not have them.
	Vanished []string
	// ReadBack is set when every file copied was read back and its
	// hashes kept (Options.ReadBack).
	ReadBack bool
	// Quiet is set when no name of the source was made, removed or
	// renamed while it was copied: when the copy ended, every folder of
	// the source still had the inode, mtime and ctime its scan saw, and
	// nothing had vanished. What another pass could then still find is
	// a file changed in place.
	Quiet bool
	// Source is the manifest of the source that a Sync with
	// Options.HashSource worked from, hashed; nil otherwise. It is shared:
	// do not change it.
	Source *Manifest
}

// copyWorkers is the default for a copy: each file ends in an fsync, which
// waits on the disk, not the CPU, and a journaling file system commits
// the fsyncs that wait together in one go, so more of them at once pay
// (BenchmarkCopy).
const copyWorkers = 16

func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return copyWorkers
}

func (o *Options) setOwners() bool {
	switch o.Owners {
	case OwnersOn:
		return true
	case OwnersOff:
		return false
	}
	return os.Geteuid() == 0
}

// Copy copies the tree at src to dst, which must not exist; its parent
// must. It scans src first, and refuses (ErrSpecial) before it writes
// anything if the tree holds a FIFO, socket or device. It never writes
// to src.
//
// Once Copy returns nil the copy survives a crash: every file and folder
// of it, and the parent of dst, is on disk. Where the kernel reports
// write-back errors through syncfs (Linux 5.8 and later), that is one
// syncfs of dst's file system after everything is written, instead of an
// fsync of each file: the journal then commits once for the whole tree,
// not once for every few dozen files, which takes a third off the copy
// of a large Maildir (BenchmarkCopy). Otherwise each file and folder is
// fsynced. After an error dst may hold a partial copy, which the caller
// removes (or completes with Sync).
func Copy(ctx context.Context, src, dst string, opt Options) (Stats, error) {
	// Clean drops a trailing slash, which would make O_NOFOLLOW follow.
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	srcfd, err := openat(unix.AT_FDCWD, src, dirFlags, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("copy: open source %s: %w", src, err)
	}
	defer unix.Close(srcfd)
	plan, err := scanFD(ctx, srcfd, ScanOptions{Workers: opt.Workers, hook: opt.hook})
	if err != nil {
		return Stats{}, err
	}
	if len(plan.Vanished) > 0 && !opt.SkipVanished {
		return Stats{}, vanishedError("copy", plan.Vanished)
	}

	parent, base := filepath.Dir(dst), filepath.Base(dst)
	pfd, err := openat(unix.AT_FDCWD, parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("copy: open %s: %w", parent, err)
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
		return Stats{}, fmt.Errorf("copy: create %s: %w", dst, err)
	}
	dstfd, err := openat(pfd, base, dirFlags, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("copy: open %s: %w", dst, err)
	}
	defer unix.Close(dstfd)

	c := newCopier(srcfd, dstfd, opt)
	c.stats.Dirs++
	c.stats.Vanished = plan.Vanished
	// dstfd was opened before anything of the copy was written: the
	// syncfs through it reports every write-back error since.
	c.syncAtEnd = !opt.fsyncEach && !opt.noSyncfs && syncfsReportsErrors()
	if opt.Cache != nil {
		c.led = newLedger()
		if st, err := fstat(dstfd); err == nil {
			c.led.wrote(".", &st, "")
		} else {
			c.led.fail()
		}
	}
	var dirs, files, members []Entry
	for _, e := range plan.Entries {
		switch {
		case e.Kind == Dir:
			dirs = append(dirs, e)
		case e.Link != "":
			members = append(members, e)
		default:
			files = append(files, e)
		}
	}
	if err := c.mkdirs(dirs[1:]); err != nil {
		return c.result(err)
	}
	if err := c.copyFiles(ctx, files); err != nil {
		return c.result(err)
	}
	if _, err := c.links(members); err != nil {
		return c.result(err)
	}
	if err := c.finishDirs(ctx, dirs); err != nil {
		return c.result(err)
	}
	if c.syncAtEnd {
		if err := ignoringEINTR(func() error { return unix.Syncfs(dstfd) }); err != nil {
			return c.result(fmt.Errorf("copy: syncfs %s: %w", dst, err))
		}
	}
	if err := fsync(pfd); err != nil {
		return c.result(fmt.Errorf("copy: fsync %s: %w", parent, err))
	}
	c.stats.Quiet = quiet(srcfd, plan)
	c.remember(nil)
	return c.result(nil)
}

// remember keeps the manifest of the copy in Options.Cache, made from
// base and the ledger, after a Copy or Sync that succeeded.
func (c *copier) remember(base *Manifest) {
	if c.opt.Cache == nil {
		return
	}
	if build := c.led.manifest(c.dst, base); build != nil {
		c.opt.Cache.putCopy(c.dst, build, c.opt.Last)
	} else {
		c.opt.Cache.forget(c.dst)
	}
}

// quiet says whether the tree at fd still has every folder of m as m has
// it, and m saw nothing vanish (Stats.Quiet).
func quiet(fd int, m *Manifest) bool {
	if len(m.Vanished) > 0 {
		return false
	}
	st, err := fstat(fd)
	return err == nil && unchangedDirs(fd, &st, m)
}

func vanishedError(op string, names []string) error {
	more := ""
	if len(names) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(names)-1)
	}
	return fmt.Errorf("%s %s%s: %w", op, quote(names[0]), more, ErrVanished)
}

// copier holds what the steps of a Copy or Sync share: the two roots,
// always reached through descriptors.
type copier struct {
	src, dst int
	opt      Options
	owners   bool
	cfr      bool
	skip     bool // go on without vanished names

	progressMu sync.Mutex
	mu         sync.Mutex
	stats      Stats
	vanished   map[string]bool
	syncfs     bool    // some metadata could only be made durable by syncfs
	syncAtEnd  bool    // no fsyncs: Copy ends with one syncfs instead
	led        *ledger // what was written, for Options.Cache; nil: not kept
	readBack   bool    // Options.ReadBack with a Cache
	began      time.Time
}

func newCopier(src, dst int, opt Options) *copier {
	return &copier{
		src: src, dst: dst, opt: opt,
		owners:   opt.setOwners(),
		cfr:      !opt.noCopyFileRange,
		skip:     opt.SkipVanished,
		vanished: make(map[string]bool),
		readBack: opt.ReadBack && opt.Cache != nil,
		began:    time.Now(),
	}
}

func (c *copier) result(err error) (Stats, error) {
	sort.Strings(c.stats.Vanished)
	c.stats.ReadBack = c.readBack && err == nil
	return c.stats, err
}

func (c *copier) hook(event, rel string) {
	if c.opt.hook != nil {
		c.opt.hook(event, rel)
	}
}

func (c *copier) progress(n int64) {
	if c.opt.Progress != nil {
		c.progressMu.Lock()
		c.opt.Progress(n)
		c.progressMu.Unlock()
	}
}

// vanish records a source name that has gone; without skip it is an error.
func (c *copier) vanish(rel string) error {
	if !c.skip {
		return vanishedError("copy", []string{rel})
	}
	c.mu.Lock()
	c.stats.Vanished = append(c.stats.Vanished, rel)
	c.vanished[rel] = true
	c.mu.Unlock()
	return nil
}

// mkdirs creates folders, parents before children (manifest order), with
// mode 0700 so that they can be filled; finishDirs sets their metadata.
func (c *copier) mkdirs(dirs []Entry) error {
	for _, e := range dirs {
		dir, name := splitPath(e.Path)
		fd, err := openDir(c.dst, dir)
		if err != nil {
			return fmt.Errorf("copy %s: open folder: %w", quote(e.Path), err)
		}
		err = unix.Mkdirat(fd, name, 0o700)
		if err == nil {
			c.led.wroteAt(fd, name, e.Path)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("copy %s: mkdir: %w", quote(e.Path), err)
		}
		c.stats.Dirs++
	}
	return nil
}

// byFolder groups entries by their folder, in the order the folders first
// appear, in chunks that one job handles.
func byFolder(entries []Entry) [][]Entry {
	idx := make(map[string]int)
	var groups [][]Entry
	for _, e := range entries {
		dir, _ := splitPath(e.Path)
		i, ok := idx[dir]
		if !ok || len(groups[i]) == chunk {
			i = len(groups)
			idx[dir] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}

// copyFiles copies files and symlinks in parallel, one job a folder chunk.
func (c *copier) copyFiles(ctx context.Context, entries []Entry) error {
	j := newJobs(ctx, true)
	for _, g := range byFolder(entries) {
		j.add(func() error {
			if j.stopped() {
				return nil
			}
			return c.copyGroup(ctx, g)
		})
	}
	return j.run(c.opt.workers())
}

func (c *copier) copyGroup(ctx context.Context, g []Entry) error {
	dir, _ := splitPath(g[0].Path)
	c.hook("copy-dir", dir)
	sfd, err := openDir(c.src, dir)
	if err != nil {
		if gone(err) {
			for _, e := range g {
				if err := c.vanish(e.Path); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("copy %s: open: %w", quote(dir), err)
	}
	defer unix.Close(sfd)
	dfd, err := openDir(c.dst, dir)
	if err != nil {
		return fmt.Errorf("copy %s: open copy: %w", quote(dir), err)
	}
	defer unix.Close(dfd)
	var st Stats
	var b syncBatch
	defer b.close()
	for _, e := range g {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, name := splitPath(e.Path)
		c.hook("copy", e.Path)
		var err error
		switch e.Kind {
		case File:
			var n int64
			n, err = c.copyFile(sfd, dfd, name, e.Path, &b)
			st.Files++
			st.Bytes += n
			if err == nil && len(b) == syncBatchSize {
				err = c.flush(&b)
			}
		case Symlink:
			err = c.copySymlink(sfd, dfd, name, e.Path)
			st.Symlinks++
		}
		if errors.Is(err, ErrVanished) {
			if err = c.vanish(e.Path); err == nil {
				if e.Kind == File {
					st.Files--
				} else {
					st.Symlinks--
				}
				continue
			}
		}
		if err != nil {
			c.add(st)
			return err
		}
	}
	c.add(st)
	return c.flush(&b)
}

// syncBatch holds files of the copy that are written but not yet fsynced,
// open, with their writeback started. A journaling file system commits
// the metadata of all of them (and their blocks, allocated as writeback
// began) in the transaction that the first fsync commits, so the others'
// fsyncs find nothing left to wait for: one commit for a batch instead of
// one for each file, and each file is still fsynced through its own
// descriptor, which reports any writeback error of that file.
type syncBatch []pendingSync

type pendingSync struct {
	fd  int
	rel string
}

// syncBatchSize bounds the descriptors a worker holds open (BenchmarkCopy).
const syncBatchSize = 64

func (c *copier) flush(b *syncBatch) error {
	var err error
	for i, p := range *b {
		if err == nil {
			if err = fsync(p.fd); err != nil {
				err = fmt.Errorf("copy %s: fsync: %w", quote(p.rel), err)
			} else {
				c.record(p.fd, p.rel)
			}
		}
		unix.Close(p.fd)
		(*b)[i].fd = -1
	}
	*b = (*b)[:0]
	return err
}

// close closes what a failed copy left in the batch.
func (b *syncBatch) close() {
	for _, p := range *b {
		if p.fd >= 0 {
			unix.Close(p.fd)
		}
	}
	*b = nil
}

func (c *copier) add(st Stats) {
	c.mu.Lock()
	c.stats.Files += st.Files
	c.stats.Symlinks += st.Symlinks
	c.stats.Bytes += st.Bytes
	c.mu.Unlock()
}

// copyFile copies one file. Its metadata come from the open source, taken
// before the contents are read: if the file changes while it is copied,
// its mtime will differ from the copy's and a verify sees it. The copy is
// left open in b, its writeback started, for the caller to fsync (flush).
func (c *copier) copyFile(sdir, ddir int, name, rel string, b *syncBatch) (int64, error) {
	sfd, err := openRead(sdir, name)
	if err != nil {
		if gone(err) {
			return 0, ErrVanished
		}
		return 0, fmt.Errorf("copy %s: open: %w", quote(rel), err)
	}
	defer unix.Close(sfd)
	st, err := fstat(sfd)
	if err != nil {
		return 0, fmt.Errorf("copy %s: stat: %w", quote(rel), err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return 0, ErrVanished // replaced by a folder since the scan
	default:
		return 0, specialError("copy", rel, st.Mode)
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if c.readBack {
		// Read back without touching its atime, set to the source's
		// below. The file is this process's own while it is created,
		// so O_NOATIME is allowed.
		flags = unix.O_RDWR | unix.O_NOATIME | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	dfd, err := openat(ddir, name, flags, 0o600)
	if err != nil {
		return 0, fmt.Errorf("copy %s: create: %w", quote(rel), err)
	}
	*b = append(*b, pendingSync{fd: dfd, rel: rel})
	n, err := copyContent(dfd, sfd, st.Size, c.cfr, c.progress)
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", quote(rel), err)
	}
	if err := c.setMeta(dfd, &st); err != nil {
		return n, fmt.Errorf("copy %s: %w", quote(rel), err)
	}
	var now *unix.Stat_t // the copy as it is, if known
	if c.readBack {
		dst, err := c.readBackFile(sfd, dfd, &st, rel)
		if err != nil {
			return n, err
		}
		now = &dst
	}
	if c.syncAtEnd {
		// Left to the syncfs at the end; starting the write-back of each
		// file here only makes more, smaller journal commits.
		if now != nil {
			c.recordStat(rel, now)
		} else {
			c.record(dfd, rel)
		}
		*b = (*b)[:len(*b)-1]
		return n, closeChecked(dfd, rel)
	}
	if c.opt.fsyncEach {
		return n, c.flush(b)
	}
	// Start writing it out now; flush waits for it. An error here would
	// come back from the fsync too.
	unix.SyncFileRange(dfd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	return n, nil
}

// readBackFile hashes a file just copied, on both sides (Options.ReadBack):
// the source as it was stat'ed (st) before it was copied, the copy as it
// is now, each read from its start. The source's hash is kept as a
// hashing scan's would be (Cache.putHash); the copy's as one of a copy
// this process wrote (Cache.putOwn). It returns the copy's stat.
func (c *copier) readBackFile(sfd, dfd int, st *unix.Stat_t, rel string) (unix.Stat_t, error) {
	sh, err := hashFrom(sfd, 0, st.Size)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("copy %s: read back: %w", quote(rel), err)
	}
	dst, err := fstat(dfd)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("copy %s: stat the copy: %w", quote(rel), err)
	}
	dh, err := hashFrom(dfd, 0, dst.Size)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("copy %s: read back the copy: %w", quote(rel), err)
	}
	c.opt.Cache.putHash(st, sh, c.began)
	c.opt.Cache.putOwn(&dst, dh)
	return dst, nil
}

// record notes in the ledger a file of the copy, open as fd, as it is now.
func (c *copier) record(fd int, rel string) {
	if c.led == nil {
		return
	}
	st, err := fstat(fd)
	if err != nil {
		c.led.fail()
		return
	}
	c.recordStat(rel, &st)
}

// recordStat is record for a file whose stat is known.
func (c *copier) recordStat(rel string, st *unix.Stat_t) {
	if c.led != nil {
		c.led.wrote(rel, st, "")
	}
}

// setMeta sets owner, then mode (a chown clears setuid and setgid), then
// times of an open file or folder.
func (c *copier) setMeta(fd int, st *unix.Stat_t) error {
	return c.setMetaOf(fd, st.Uid, st.Gid, st.Mode&0o7777, st.Atim.Nano(), st.Mtim.Nano())
}

func (c *copier) setMetaOf(fd int, uid, gid, mode uint32, atime, mtime int64) error {
	if c.owners {
		if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := futimens(fd, atime, mtime); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// copySymlink copies a symlink as a symlink; its target is never looked at.
func (c *copier) copySymlink(sdir, ddir int, name, rel string) error {
	target, err := readlinkat(sdir, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			return ErrVanished
		}
		return fmt.Errorf("copy %s: readlink: %w", quote(rel), err)
	}
	st, err := lstatat(sdir, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return ErrVanished
		}
		return fmt.Errorf("copy %s: stat: %w", quote(rel), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return ErrVanished
	}
	if err := unix.Symlinkat(target, ddir, name); err != nil {
		return fmt.Errorf("copy %s: symlink: %w", quote(rel), err)
	}
	if err := c.symlinkMeta(ddir, name, rel, st.Uid, st.Gid, st.Atim.Nano(), st.Mtim.Nano()); err != nil {
		return err
	}
	c.led.wroteAt(ddir, name, rel)
	return nil
}

func (c *copier) symlinkMeta(ddir int, name, rel string, uid, gid uint32, atime, mtime int64) error {
	if c.owners {
		if err := unix.Fchownat(ddir, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("copy %s: chown: %w", quote(rel), err)
		}
	}
	if err := lutimesat(ddir, name, atime, mtime); err != nil {
		return fmt.Errorf("copy %s: set times: %w", quote(rel), err)
	}
	return nil
}

// links gives every further name of a file its link to the first name.
// If the first name vanished from the source, the next name is copied
// in its place. It returns the names it linked.
func (c *copier) links(members []Entry) ([]string, error) {
	var done []string
	firsts := make(map[string]string) // first name in the source → in the copy
	for _, e := range members {
		to, ok := firsts[e.Link]
		if !ok {
			to = e.Link
			if c.vanished[to] {
				to = ""
			}
		}
		if to == "" {
			if err := c.copyAlone(e); err != nil {
				return done, err
			}
			if !c.vanished[e.Path] {
				firsts[e.Link] = e.Path
			}
			continue
		}
		if err := c.link(to, e.Path); err != nil {
			return done, err
		}
		done = append(done, e.Path)
	}
	return done, nil
}

func (c *copier) copyAlone(e Entry) error {
	e.Link = ""
	return c.copyGroup(context.Background(), []Entry{e})
}

func (c *copier) link(from, to string) error {
	fdir, fname := splitPath(from)
	tdir, tname := splitPath(to)
	ffd, err := openDir(c.dst, fdir)
	if err != nil {
		return fmt.Errorf("copy %s: link: open %s: %w", quote(to), quote(fdir), err)
	}
	defer unix.Close(ffd)
	tfd, err := openDir(c.dst, tdir)
	if err != nil {
		return fmt.Errorf("copy %s: link: open %s: %w", quote(to), quote(tdir), err)
	}
	defer unix.Close(tfd)
	if err := unix.Linkat(ffd, fname, tfd, tname, 0); err != nil {
		return fmt.Errorf("copy %s: link to %s: %w", quote(to), quote(from), err)
	}
	// Both names: the first one's link count changed too.
	c.led.wroteAt(ffd, fname, from)
	c.led.wroteAt(tfd, tname, to)
	c.stats.HardLinks++
	return nil
}

// finishDirs sets the metadata of folders, now that nothing more is
// created in them, and fsyncs them. Deeper folders go first, so that a
// parent that loses its write or search bit does so last.
func (c *copier) finishDirs(ctx context.Context, dirs []Entry) error {
	byDepth := make(map[int][]Entry)
	maxDepth := 0
	for _, e := range dirs {
		d := 0
		if e.Path != "." {
			d = strings.Count(e.Path, "/") + 1
		}
		byDepth[d] = append(byDepth[d], e)
		maxDepth = max(maxDepth, d)
	}
	for d := maxDepth; d >= 0; d-- {
		j := newJobs(ctx, true)
		for _, e := range byDepth[d] {
			j.add(func() error { return c.finishDir(e) })
		}
		if err := j.run(c.opt.workers()); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) finishDir(e Entry) error {
	// Take the folder's metadata as they are now rather than at the scan:
	// names removed or added meanwhile changed its mtime, and the copy
	// should match the source as it is. A name added and not copied is
	// still missing from the copy, which a verify sees.
	if sfd, err := openDir(c.src, e.Path); err == nil {
		st, err := fstat(sfd)
		unix.Close(sfd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			e.UID, e.GID, e.Mode = st.Uid, st.Gid, st.Mode&0o7777
			e.ATime, e.MTime = st.Atim.Nano(), st.Mtim.Nano()
		}
	}
	fd, err := openDir(c.dst, e.Path)
	if err != nil {
		return fmt.Errorf("copy %s: open folder: %w", quote(e.Path), err)
	}
	defer unix.Close(fd)
	if err := c.setMetaOf(fd, e.UID, e.GID, e.Mode, e.ATime, e.MTime); err != nil {
		return fmt.Errorf("copy %s: %w", quote(e.Path), err)
	}
	if c.syncAtEnd {
		return nil
	}
	if err := fsync(fd); err != nil {
		return fmt.Errorf("copy %s: fsync: %w", quote(e.Path), err)
	}
	return nil
}
