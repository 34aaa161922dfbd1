package tree

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
)

// ScanOptions says how to scan.
type ScanOptions struct {
	// Hash reads every file and fills in Entry.Hash.
	Hash bool
	// Workers is how many names are looked at (and files hashed) at once;
	// 0 picks a default.
	Workers int
	// Cache, if set, gives the hashes of files unchanged since an earlier
	// scan read them, and keeps those this scan reads (see Cache).
	Cache *Cache

	hook func(event, rel string) // for tests: called before each step
}

// chunk is how many names of one folder one job looks at: a Maildir's cur
// folder may hold tens of thousands.
const chunk = 128

// Scan walks the tree at root and returns what it holds. It never follows
// a symlink and never leaves root, even if a folder is replaced by a
// symlink while it walks. Names that vanish while it walks are listed in
// Manifest.Vanished. Errors (a special file, a name that cannot be read)
// name the path; the walk goes on and returns them all at the end, joined,
// with a nil manifest.
func Scan(ctx context.Context, root string, opt ScanOptions) (*Manifest, error) {
	fd, err := openat(unix.AT_FDCWD, filepath.Clean(root), dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("scan %s: open root: %w", root, err)
	}
	defer unix.Close(fd)
	m, err := scanFD(ctx, fd, opt)
	if err != nil {
		return nil, err
	}
	return m, nil
}

type scanner struct {
	root  int
	opt   ScanOptions
	jobs  *jobs
	began time.Time // for Cache: hashes of files changed since are not kept

	mu       sync.Mutex
	parts    [][]Entry // what each job found
	vanished []string
}

func scanFD(ctx context.Context, root int, opt ScanOptions) (*Manifest, error) {
	st, err := fstat(root)
	if err != nil {
		return nil, fmt.Errorf("scan .: %w", err)
	}
	s := &scanner{root: root, opt: opt, jobs: newJobs(ctx, false), began: time.Now()}
	s.parts = append(s.parts, []Entry{entryOf(".", &st)})
	s.jobs.add(func() error { return s.list(".", st.Dev, st.Ino) })
	workers := opt.Workers
	if workers <= 0 {
		workers = defaultWorkers()
	}
	if err := s.jobs.run(workers); err != nil {
		return nil, err
	}
	m := &Manifest{Entries: sortParts(s.parts), Hashed: opt.Hash, Vanished: s.vanished}
	m.finish()
	return m, nil
}

func (s *scanner) hook(event, rel string) {
	if s.opt.hook != nil {
		s.opt.hook(event, rel)
	}
}

func (s *scanner) vanish(rel string) {
	s.mu.Lock()
	s.vanished = append(s.vanished, rel)
	s.mu.Unlock()
}

// openSame opens the folder rel and checks that it is still the one that
// was listed (dev, ino); ok is false if it has gone or been replaced.
func (s *scanner) openSame(rel string, dev, ino uint64) (fd int, ok bool, err error) {
	s.hook("open-dir", rel)
	fd, err = openDir(s.root, rel)
	if err != nil {
		if gone(err) {
			return -1, false, nil
		}
		return -1, false, fmt.Errorf("scan %s: open: %w", quote(rel), err)
	}
	st, err := fstat(fd)
	if err != nil {
		unix.Close(fd)
		return -1, false, fmt.Errorf("scan %s: %w", quote(rel), err)
	}
	if st.Dev != dev || st.Ino != ino {
		unix.Close(fd)
		return -1, false, nil
	}
	return fd, true, nil
}

// list reads the names of a folder and queues jobs to look at them.
func (s *scanner) list(rel string, dev, ino uint64) error {
	fd, ok, err := s.openSame(rel, dev, ino)
	if err != nil || !ok {
		if err == nil && rel != "." {
			s.vanish(rel)
		}
		return err
	}
	s.hook("read-dir", rel)
	// The names are looked at as they are read: a Maildir folder may
	// hold tens of thousands.
	err = readDirents(fd, func(names []dirent) {
		for len(names) > 0 {
			n := min(chunk, len(names))
			part := names[:n:n]
			names = names[n:]
			s.jobs.add(func() error { return s.look(rel, dev, ino, part) })
		}
	})
	unix.Close(fd)
	if errors.Is(err, unix.ENOENT) && rel != "." {
		// Removed after it was opened: reading an unlinked folder fails.
		s.vanish(rel)
		return nil
	}
	if err != nil {
		return fmt.Errorf("scan %s: read folder: %w", quote(rel), err)
	}
	return nil
}

// look stats (and hashes) some names of one folder.
func (s *scanner) look(dir string, dev, ino uint64, names []dirent) error {
	fd, ok, err := s.openSame(dir, dev, ino)
	if err != nil {
		return err
	}
	if !ok {
		for _, n := range names {
			s.vanish(joinPath(dir, n.name))
		}
		return nil
	}
	defer unix.Close(fd)
	out := make([]Entry, 0, len(names))
	var lost []string
	for _, n := range names {
		if err := s.jobs.ctx.Err(); err != nil {
			return err
		}
		rel := joinPath(dir, n.name)
		var e Entry
		var err error
		if n.typ == unix.DT_REG && s.opt.Hash && s.opt.Cache == nil {
			e, err = s.hashListed(fd, n.name, rel)
		} else {
			e, err = s.lookOne(fd, n.name, rel)
		}
		switch {
		case errors.Is(err, ErrVanished):
			lost = append(lost, rel)
		case err != nil:
			s.jobs.fail(err)
		default:
			out = append(out, e)
			if e.Kind == Dir {
				// Not e itself: a closure that held it would move every
				// entry of the loop to the heap.
				dev, ino := e.dev, e.ino
				s.jobs.add(func() error { return s.list(rel, dev, ino) })
			}
		}
	}
	s.mu.Lock()
	s.parts = append(s.parts, out)
	s.vanished = append(s.vanished, lost...)
	s.mu.Unlock()
	return nil
}

func (s *scanner) lookOne(dirfd int, name, rel string) (Entry, error) {
	s.hook("stat", rel)
	st, err := lstatat(dirfd, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Entry{}, ErrVanished
		}
		return Entry{}, fmt.Errorf("scan %s: stat: %w", quote(rel), err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return entryOf(rel, &st), nil
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, name)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
				return Entry{}, ErrVanished // gone, or no longer a symlink
			}
			return Entry{}, fmt.Errorf("scan %s: readlink: %w", quote(rel), err)
		}
		e := entryOf(rel, &st)
		e.Target = target
		e.Size = int64(len(target))
		return e, nil
	case unix.S_IFREG:
		if !s.opt.Hash {
			return entryOf(rel, &st), nil
		}
		if h, ok := s.opt.Cache.hash(&st); ok {
			e := entryOf(rel, &st)
			e.Hash = h
			return e, nil
		}
		return s.hashOne(dirfd, name, rel, &st)
	default:
		return Entry{}, specialError("scan", rel, st.Mode)
	}
}

// hashOne reads a file and returns its entry, its metadata taken from the
// open file so that they belong to the contents that were hashed.
func (s *scanner) hashOne(dirfd int, name, rel string, lst *unix.Stat_t) (Entry, error) {
	s.hook("open", rel)
	fd, err := openRead(dirfd, name)
	if err != nil {
		if gone(err) {
			return Entry{}, ErrVanished
		}
		return Entry{}, fmt.Errorf("scan %s: open: %w", quote(rel), err)
	}
	defer unix.Close(fd)
	st, err := fstat(fd)
	if err != nil {
		return Entry{}, fmt.Errorf("scan %s: %w", quote(rel), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != lst.Dev || st.Ino != lst.Ino {
		return Entry{}, ErrVanished
	}
	h, err := hashFD(fd, st.Size)
	if err != nil {
		return Entry{}, fmt.Errorf("scan %s: %w", quote(rel), err)
	}
	s.opt.Cache.putHash(&st, h, s.began)
	e := entryOf(rel, &st)
	e.Hash = h
	return e, nil
}

// hashListed hashes a name that its folder listed as a regular file,
// opening it without an lstat first: one system call fewer for each of
// the many files of a verify. As in hashOne, a name that is no longer a
// regular file when opened was replaced, and counts as vanished. Opening
// never follows a symlink and never blocks (O_NONBLOCK: a FIFO put in its
// place opens at once).
func (s *scanner) hashListed(dirfd int, name, rel string) (Entry, error) {
	s.hook("open", rel)
	fd, err := openRead(dirfd, name)
	if err != nil {
		if gone(err) {
			return Entry{}, ErrVanished
		}
		return Entry{}, fmt.Errorf("scan %s: open: %w", quote(rel), err)
	}
	defer unix.Close(fd)
	st, err := fstat(fd)
	if err != nil {
		return Entry{}, fmt.Errorf("scan %s: %w", quote(rel), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Entry{}, ErrVanished
	}
	h, err := hashFD(fd, st.Size)
	if err != nil {
		return Entry{}, fmt.Errorf("scan %s: %w", quote(rel), err)
	}
	e := entryOf(rel, &st)
	e.Hash = h
	return e, nil
}

// hashFD hashes the first size bytes of an open file, the size its fstat
// gave: the hash then belongs to the size and mtime of the entry. A file
// that has grown since is hashed as it was; one that has shrunk gives a
// hash of fewer bytes, which differs.
func hashFD(fd int, size int64) (Hash, error) {
	return hashFrom(fd, -1, size)
}

// hashFrom is hashFD reading from offset off (pread), leaving the file's
// offset alone; off -1 reads from the file's offset, moving it on.
func hashFrom(fd int, off, size int64) (Hash, error) {
	h := xxh3.New128()
	if size <= 0 {
		return h.Sum128().Bytes(), nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for size > 0 {
		b := buf
		if int64(len(b)) > size {
			b = b[:size]
		}
		var n int
		err := ignoringEINTR(func() error {
			var err error
			if off < 0 {
				n, err = unix.Read(fd, b)
			} else {
				n, err = unix.Pread(fd, b, off)
			}
			return err
		})
		if err != nil {
			return Hash{}, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
		h.Write(b[:n])
		size -= int64(n)
		if off >= 0 {
			off += int64(n)
		}
	}
	return h.Sum128().Bytes(), nil
}

func entryOf(rel string, st *unix.Stat_t) Entry {
	e := Entry{
		Path:   rel,
		Mode:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		MTime:  st.Mtim.Nano(),
		ATime:  st.Atim.Nano(),
		dev:    st.Dev,
		ino:    st.Ino,
		nlink:  uint64(st.Nlink),
		ctime:  st.Ctim.Nano(),
		blocks: st.Blocks,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Kind = Dir
	case unix.S_IFREG:
		e.Kind = File
		e.Size = st.Size
	case unix.S_IFLNK:
		e.Kind = Symlink
		e.Size = st.Size
	}
	return e
}

func specialError(op, rel string, mode uint32) error {
	what := "special file"
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		what = "named pipe"
	case unix.S_IFSOCK:
		what = "socket"
	case unix.S_IFCHR:
		what = "character device"
	case unix.S_IFBLK:
		what = "block device"
	}
	return fmt.Errorf("%s %s: %s: %w", op, quote(rel), what, ErrSpecial)
}
