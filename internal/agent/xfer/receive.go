package xfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// ReceiveOptions say how to receive.
type ReceiveOptions struct {
	Mode host.CopyMode
	// Resume allows an existing destination for CopyFresh: the partial
	// copy of an earlier attempt of the same transfer.
	Resume bool
	// Owners sets the owners the source says (needs root). The zero value
	// sets them when running as root.
	Owners tree.OwnerPolicy
	// Workers write files at once; 0 picks a default.
	Workers int
}

func (o ReceiveOptions) owners() bool {
	switch o.Owners {
	case tree.OwnersOn:
		return true
	case tree.OwnersOff:
		return false
	}
	return os.Geteuid() == 0
}

// Receiver is the destination's side of one transfer, between Prepare
// and the end of Receive. It is used by one goroutine.
type Receiver struct {
	dst      string // host path, for messages
	parentfd int
	rootfd   int
	src      *tree.Manifest
	opt      ReceiveOptions
	owners   bool
	need     map[string]bool
	needList []string
	stats    tree.Stats
}

// Prepare gets the destination dst (a host-absolute path on the file
// system seen at fsroot) ready for the source tree src describes: it
// makes dst if missing (CopyFresh: it must be missing, unless Resume),
// removes what src does not have or has otherwise, makes the folders and
// symlinks, sets what differs only in metadata, and lists the files it
// still needs, in manifest order. No symlink is followed on the way to
// dst or below it: dst itself must be a real folder.
//
// A file whose size and mtime match is kept: a partial copy of an earlier
// attempt gives only the files it lacks. Whatever comes of it must be
// verified like any copy.
func Prepare(ctx context.Context, fsroot, dst string, src *tree.Manifest, opt ReceiveOptions) (*Receiver, error) {
	if !strings.HasPrefix(dst, "/") || filepath.Clean(dst) != dst || dst == "/" {
		return nil, fmt.Errorf("receive into %q: %w", dst, host.ErrOutside)
	}
	if len(src.Entries) == 0 || src.Entries[0].Path != "." || src.Entries[0].Kind != tree.Dir {
		return nil, fmt.Errorf("receive into %s: the source manifest has no root folder: %w", dst, proto.ErrBadRequest)
	}
	rfd, err := unix.Open(fsroot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", fsroot, err)
	}
	defer unix.Close(rfd)
	parent, base := split(strings.TrimPrefix(dst, "/"))
	pfd, err := openBeneath(rfd, parent, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("receive into %s: open its folder: %w", dst, symlinkErr(err))
	}
	r := &Receiver{dst: dst, parentfd: pfd, rootfd: -1, src: src, opt: opt, owners: opt.owners(), need: map[string]bool{}}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	created := false
	if err := unix.Mkdirat(pfd, base, 0o700); err == nil {
		created = true
		r.stats.Dirs++
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("receive into %s: %w", dst, err)
	} else if opt.Mode == host.CopyFresh && !opt.Resume {
		return nil, fmt.Errorf("receive into %s: %w", dst, fs.ErrExist)
	}
	fd, err := openBeneath(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("receive into %s: %w", dst, symlinkErr(err))
	}
	r.rootfd = fd
	var have *tree.Manifest
	if created {
		have = &tree.Manifest{Entries: []tree.Entry{{Path: ".", Kind: tree.Dir}}}
	} else {
		if os.Geteuid() != 0 {
			unix.Fchmod(fd, 0o700)
		}
		// The scan goes by path: the checks above found no symlink on
		// it, and the folders above are maildist's own.
		have, err = tree.Scan(ctx, filepath.Join(fsroot, dst), tree.ScanOptions{})
		if err != nil {
			return nil, fmt.Errorf("receive into %s: scan what is there: %w", dst, err)
		}
	}
	if err := r.plan(have); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

func symlinkErr(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w (a symlink on the way?): %v", proto.ErrNotFolder, err)
	}
	return err
}

// Need lists the files the destination lacks, in manifest order.
func (r *Receiver) Need() []string { return r.needList }

// Close releases the descriptors.
func (r *Receiver) Close() {
	if r.rootfd >= 0 {
		unix.Close(r.rootfd)
		r.rootfd = -1
	}
	if r.parentfd >= 0 {
		unix.Close(r.parentfd)
		r.parentfd = -1
	}
}

func index(m *tree.Manifest) map[string]*tree.Entry {
	idx := make(map[string]*tree.Entry, len(m.Entries))
	for i := range m.Entries {
		idx[m.Entries[i].Path] = &m.Entries[i]
	}
	return idx
}

// plan brings the destination (have) in line with the source but for
// file contents, and fills the need list.
func (r *Receiver) plan(have *tree.Manifest) error {
	src := index(r.src)
	removed := map[string]bool{}
	under := func(rel string) bool {
		for d := rel; d != "."; d, _ = split(d) {
			if removed[d] {
				return true
			}
		}
		return false
	}
	for i := range have.Entries {
		d := &have.Entries[i]
		if d.Path == "." || under(d.Path) {
			continue
		}
		s := src[d.Path]
		replace := false
		switch {
		case s == nil || s.Kind != d.Kind:
			if s == nil {
				r.stats.Removed++
			}
			replace = true
		case s.Kind == tree.File && s.Link == "":
			replace = d.Link != "" || d.Size != s.Size || d.MTime != s.MTime ||
				(r.src.Hashed && have.Hashed && d.Hash != s.Hash)
		case s.Kind == tree.Symlink:
			replace = d.Target != s.Target
		}
		if replace {
			if err := r.remove(d.Path); err != nil {
				return err
			}
			removed[d.Path] = true
		}
	}
	for i := range r.src.Entries {
		s := &r.src.Entries[i]
		if s.Path == "." {
			continue
		}
		var d *tree.Entry
		if !under(s.Path) {
			d = have.Find(s.Path)
		}
		switch {
		case s.Kind == tree.Dir && d == nil:
			if err := r.mkdir(s.Path); err != nil {
				return err
			}
		case s.Kind == tree.Dir:
			if os.Geteuid() != 0 && d.Mode&0o700 != 0o700 {
				if err := r.chmodDir(s.Path, d.Mode|0o700); err != nil {
					return err
				}
			}
		case s.Kind == tree.Symlink && d == nil:
			if err := r.symlink(s); err != nil {
				return err
			}
		case s.Kind == tree.Symlink:
			if d.MTime != s.MTime || r.owners && (d.UID != s.UID || d.GID != s.GID) {
				if err := r.symlinkMeta(s); err != nil {
					return err
				}
				r.stats.Fixed++
			}
		case s.Link != "":
			// A further name of a file: linked at the end.
		case d == nil:
			r.need[s.Path] = true
			r.needList = append(r.needList, s.Path)
		case d.Mode != s.Mode || r.owners && (d.UID != s.UID || d.GID != s.GID):
			if err := r.fixFile(s); err != nil {
				return err
			}
			r.stats.Fixed++
		}
	}
	return nil
}

func (r *Receiver) openDir(rel string) (int, error) {
	fd, err := openBeneath(r.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("receive into %s: open %s: %w", r.dst, quote(rel), symlinkErr(err))
	}
	return fd, nil
}

func (r *Receiver) remove(rel string) error {
	dir, name := split(rel)
	fd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := removeAllAt(fd, name); err != nil {
		return fmt.Errorf("receive into %s: remove %s: %w", r.dst, quote(rel), err)
	}
	return nil
}

func (r *Receiver) mkdir(rel string) error {
	dir, name := split(rel)
	fd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mkdirat(fd, name, 0o700); err != nil {
		return fmt.Errorf("receive into %s: mkdir %s: %w", r.dst, quote(rel), err)
	}
	r.stats.Dirs++
	return nil
}

func (r *Receiver) chmodDir(rel string, mode uint32) error {
	fd, err := r.openDir(rel)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmod(fd, mode)
}

func (r *Receiver) symlink(s *tree.Entry) error {
	dir, name := split(s.Path)
	fd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Symlinkat(s.Target, fd, name); err != nil {
		return fmt.Errorf("receive into %s: symlink %s: %w", r.dst, quote(s.Path), err)
	}
	r.stats.Symlinks++
	return r.symlinkMetaAt(fd, name, s)
}

func (r *Receiver) symlinkMeta(s *tree.Entry) error {
	dir, name := split(s.Path)
	fd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return r.symlinkMetaAt(fd, name, s)
}

func (r *Receiver) symlinkMetaAt(fd int, name string, s *tree.Entry) error {
	if r.owners {
		if err := unix.Fchownat(fd, name, int(s.UID), int(s.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("receive into %s: chown %s: %w", r.dst, quote(s.Path), err)
		}
	}
	if err := lutimesAt(fd, name, s.ATime, s.MTime); err != nil {
		return fmt.Errorf("receive into %s: set times of %s: %w", r.dst, quote(s.Path), err)
	}
	return nil
}

// fixFile sets the mode and owner of a file whose contents are right.
func (r *Receiver) fixFile(s *tree.Entry) error {
	dir, name := split(s.Path)
	dfd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := retry(func() (int, error) {
		return unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		// A mode-000 file cannot be opened without root: copy it again.
		r.need[s.Path] = true
		r.needList = append(r.needList, s.Path)
		return removeAllAt(dfd, name)
	}
	defer unix.Close(fd)
	return r.setMeta(fd, s.Path, meta{mode: s.Mode, uid: s.UID, gid: s.GID, atime: s.ATime, mtime: s.MTime}, true)
}

func (r *Receiver) setMeta(fd int, rel string, m meta, sync bool) error {
	if r.owners {
		if err := unix.Fchown(fd, int(m.uid), int(m.gid)); err != nil {
			return fmt.Errorf("receive into %s: chown %s: %w", r.dst, quote(rel), err)
		}
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return fmt.Errorf("receive into %s: chmod %s: %w", r.dst, quote(rel), err)
	}
	if err := futimens(fd, m.atime, m.mtime); err != nil {
		return fmt.Errorf("receive into %s: set times of %s: %w", r.dst, quote(rel), err)
	}
	if sync {
		if err := ignoringEINTR(func() error { return unix.Fsync(fd) }); err != nil {
			return fmt.Errorf("receive into %s: fsync %s: %w", r.dst, quote(rel), err)
		}
	}
	return nil
}

// small files are handed whole to a writer; bigger ones are written as
// they come.
const smallFile = 256 << 10

type job struct {
	rel  string
	m    meta
	data []byte
}

// Receive reads the stream of one transfer and writes what it carries,
// then makes the hard links, sets the folders' metadata (deepest first)
// and fsyncs them. The stream may only carry files Prepare asked for.
// A stream cut short leaves a partial copy that a new Prepare resumes.
func (r *Receiver) Receive(ctx context.Context, in io.Reader) (tree.Stats, error) {
	br, err := newBlockReader(in)
	if err != nil {
		return r.stats, err
	}
	defer br.Close()
	rr := &recReader{r: bufio.NewReaderSize(br, 64<<10)}
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(rr.r, head); err != nil {
		return r.stats, fmt.Errorf("receive into %s: %w", r.dst, unexpected(err))
	}
	if string(head) != magic {
		return r.stats, fmt.Errorf("receive into %s: %w: not a maildist stream", r.dst, errBadRecord)
	}

	workers := r.opt.Workers
	if workers <= 0 {
		workers = 16
	}
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	var files int
	var bytes int64
	record := func(err error, n int64) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && werr == nil {
			werr = err
		}
		if err == nil {
			files++
			bytes += n
		}
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return werr != nil
	}
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if failed() {
					continue
				}
				err := r.writeFile(j.rel, j.m, func(fd int) (int64, error) {
					return int64(len(j.data)), writeAll(fd, j.data)
				})
				record(err, int64(len(j.data)))
			}
		})
	}
	stop := func(err error) (tree.Stats, error) {
		close(jobs)
		wg.Wait()
		r.stats.Files += files
		r.stats.Bytes += bytes
		if werr != nil {
			return r.stats, werr
		}
		return r.stats, err
	}

	dirs := map[string]meta{}
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return stop(err)
		}
		if failed() {
			return stop(nil)
		}
		kind, err := rr.r.ReadByte()
		if err != nil {
			return stop(fmt.Errorf("receive into %s: the stream ended early: %w", r.dst, unexpected(err)))
		}
		switch kind {
		case recFile:
			rel, err := rr.str(maxPath)
			if err != nil {
				return stop(err)
			}
			m, err := rr.meta()
			if err != nil {
				return stop(err)
			}
			if !r.need[rel] || seen[rel] {
				return stop(fmt.Errorf("receive into %s: the source sent %s, which was not asked for: %w", r.dst, quote(rel), proto.ErrBadRequest))
			}
			seen[rel] = true
			if m.size <= smallFile {
				data, err := readChunks(rr, smallFile)
				if errors.Is(err, errTooBig) {
					n, err := r.writeLarge(rr, rel, m, data)
					record(err, n)
					continue
				}
				if err != nil {
					return stop(err)
				}
				jobs <- job{rel: rel, m: m, data: data}
				continue
			}
			n, err := r.writeLarge(rr, rel, m, nil)
			record(err, n)
		case recVanished:
			rel, err := rr.str(maxPath)
			if err != nil {
				return stop(err)
			}
			if !r.need[rel] || seen[rel] {
				return stop(fmt.Errorf("receive into %s: vanished %s was not asked for: %w", r.dst, quote(rel), proto.ErrBadRequest))
			}
			seen[rel] = true
			r.stats.Vanished = append(r.stats.Vanished, rel)
		case recDir:
			rel, err := rr.str(maxPath)
			if err != nil {
				return stop(err)
			}
			m, err := rr.meta()
			if err != nil {
				return stop(err)
			}
			if e := r.src.Find(rel); e == nil || e.Kind != tree.Dir {
				return stop(fmt.Errorf("receive into %s: folder %s is not in the manifest: %w", r.dst, quote(rel), proto.ErrBadRequest))
			}
			dirs[rel] = m
		case recEnd:
			if _, err := rr.uvarint(); err != nil {
				return stop(err)
			}
			if _, err := rr.uvarint(); err != nil {
				return stop(err)
			}
			st, err := stop(nil)
			if err != nil {
				return st, err
			}
			return r.finish(ctx, dirs)
		case recError:
			code, err1 := rr.str(maxMsg)
			msg, err2 := rr.str(maxMsg)
			if err := errors.Join(err1, err2); err != nil {
				return stop(err)
			}
			return stop(&proto.Remote{Code: code, Msg: "source: " + msg})
		default:
			return stop(fmt.Errorf("receive into %s: %w: kind %q", r.dst, errBadRecord, kind))
		}
	}
}

var errTooBig = errors.New("file larger than said")

// readChunks reads a file's chunks whole, up to limit bytes; past that it
// returns what it read with errTooBig, and the rest is still to read.
func readChunks(rr *recReader, limit int) ([]byte, error) {
	var data []byte
	for {
		n, err := rr.uvarint()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		if n > maxChunk {
			return nil, fmt.Errorf("%w: a chunk of %d bytes", errBadRecord, n)
		}
		start := len(data)
		data = append(data, make([]byte, n)...)
		if _, err := io.ReadFull(rr.r, data[start:]); err != nil {
			return nil, unexpected(err)
		}
		if len(data) > limit {
			return data, errTooBig
		}
	}
}

// writeLarge writes a file as its chunks come, after head (chunks read
// already). An error reading the stream comes first: the stream is lost.
func (r *Receiver) writeLarge(rr *recReader, rel string, m meta, head []byte) (int64, error) {
	buf := make([]byte, 64<<10)
	var total int64
	var rerr error
	werr := r.writeFile(rel, m, func(fd int) (int64, error) {
		total = int64(len(head))
		if err := writeAll(fd, head); err != nil {
			return total, err
		}
		for {
			k, err := rr.uvarint()
			if err != nil {
				rerr = err
				return total, err
			}
			if k == 0 {
				return total, nil
			}
			if k > maxChunk {
				rerr = fmt.Errorf("%w: a chunk of %d bytes", errBadRecord, k)
				return total, rerr
			}
			for k > 0 {
				c := min(k, uint64(len(buf)))
				if _, err := io.ReadFull(rr.r, buf[:c]); err != nil {
					rerr = unexpected(err)
					return total, rerr
				}
				if err := writeAll(fd, buf[:c]); err != nil {
					return total, err
				}
				total += int64(c)
				k -= c
			}
		}
	})
	if rerr != nil {
		return total, rerr
	}
	return total, werr
}

// writeFile creates rel (removing what an earlier attempt left there),
// fills it, sets its metadata and fsyncs it.
func (r *Receiver) writeFile(rel string, m meta, fill func(fd int) (int64, error)) error {
	dir, name := split(rel)
	dfd, err := r.openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := retry(func() (int, error) { return unix.Openat(dfd, name, flags, 0o600) })
	if errors.Is(err, unix.EEXIST) {
		if err := removeAllAt(dfd, name); err != nil {
			return fmt.Errorf("receive into %s: replace %s: %w", r.dst, quote(rel), err)
		}
		fd, err = retry(func() (int, error) { return unix.Openat(dfd, name, flags, 0o600) })
	}
	if err != nil {
		return fmt.Errorf("receive into %s: create %s: %w", r.dst, quote(rel), err)
	}
	defer unix.Close(fd)
	if _, err := fill(fd); err != nil {
		return fmt.Errorf("receive into %s: write %s: %w", r.dst, quote(rel), err)
	}
	return r.setMeta(fd, rel, m, true)
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// finish makes the hard links, then sets the folders' metadata deepest
// first and fsyncs them, and last the folder that holds the copy.
func (r *Receiver) finish(ctx context.Context, dirs map[string]meta) (tree.Stats, error) {
	for i := range r.src.Entries {
		e := &r.src.Entries[i]
		if e.Link == "" || e.Kind == tree.Dir {
			continue
		}
		if err := r.link(e.Link, e.Path); err != nil {
			return r.stats, err
		}
	}
	var ds []*tree.Entry
	for i := range r.src.Entries {
		if e := &r.src.Entries[i]; e.Kind == tree.Dir {
			ds = append(ds, e)
		}
	}
	depth := func(p string) int {
		if p == "." {
			return 0
		}
		return strings.Count(p, "/") + 1
	}
	sort.SliceStable(ds, func(i, j int) bool { return depth(ds[i].Path) > depth(ds[j].Path) })
	for _, e := range ds {
		if err := ctx.Err(); err != nil {
			return r.stats, err
		}
		m, ok := dirs[e.Path]
		if !ok {
			m = meta{mode: e.Mode, uid: e.UID, gid: e.GID, atime: e.ATime, mtime: e.MTime}
		}
		fd, err := r.openDir(e.Path)
		if err != nil {
			return r.stats, err
		}
		err = r.setMeta(fd, e.Path, m, true)
		unix.Close(fd)
		if err != nil {
			return r.stats, err
		}
	}
	if err := ignoringEINTR(func() error { return unix.Fsync(r.parentfd) }); err != nil {
		return r.stats, fmt.Errorf("receive into %s: fsync its folder: %w", r.dst, err)
	}
	sort.Strings(r.stats.Vanished)
	return r.stats, nil
}

// link makes to a further name of from, unless it is one already. A first
// name that is missing (it vanished from the source) leaves to missing
// too, for a verify to see.
func (r *Receiver) link(from, to string) error {
	fdir, fname := split(from)
	tdir, tname := split(to)
	ffd, err := r.openDir(fdir)
	if err != nil {
		return err
	}
	defer unix.Close(ffd)
	tfd, err := r.openDir(tdir)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	fst, err := lstatAt(ffd, fname)
	if err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	if tst, err := lstatAt(tfd, tname); err == nil {
		if tst.Dev == fst.Dev && tst.Ino == fst.Ino {
			return nil
		}
		if err := removeAllAt(tfd, tname); err != nil {
			return fmt.Errorf("receive into %s: replace %s: %w", r.dst, quote(to), err)
		}
	}
	if err := unix.Linkat(ffd, fname, tfd, tname, 0); err != nil {
		return fmt.Errorf("receive into %s: link %s to %s: %w", r.dst, quote(to), quote(from), err)
	}
	r.stats.HardLinks++
	return nil
}

// quote shows a path as is when it is plain, else Go-quoted.
func quote(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
