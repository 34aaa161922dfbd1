package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/tree"
)

// Local is a host whose file system is seen from here under FSRoot.
type Local struct {
	name   string
	fsroot string
	roots  []string
	// Workers is the number of parallel workers for scans and copies.
	Workers int
	// Cache, if set, gives hashing scans the hashes of files unchanged
	// since an earlier scan or copy read them (see tree.Cache). Give the
	// hosts of a move the cache their copier uses.
	Cache *tree.Cache
}

// NewLocal returns the local host h of cluster c.
func NewLocal(h *cluster.Host, c *cluster.Cluster) *Local {
	return &Local{name: h.Name, fsroot: h.FSRoot, roots: Roots(c)}
}

var _ Host = (*Local)(nil)

// Name is the host's name.
func (l *Local) Name() string { return l.name }

// FSRoot is where the host's file system is seen from here.
func (l *Local) FSRoot() string { return l.fsroot }

// RealPath maps a host-absolute path to a path on this machine, after
// checking it.
func (l *Local) RealPath(p string) (string, error) {
	if err := CheckPath(p, l.roots); err != nil {
		return "", fmt.Errorf("host %s: %w", l.name, err)
	}
	return filepath.Join(l.fsroot, p), nil
}

func (l *Local) real(p string) (string, error) { return l.RealPath(p) }

// Lstat describes p without following symlinks.
func (l *Local) Lstat(ctx context.Context, p string) (Info, error) {
	rp, err := l.real(p)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Lstat(rp)
	if err != nil {
		return Info{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return Info{Mode: fi.Mode(), UID: int(st.Uid), GID: int(st.Gid), Size: fi.Size()}, nil
}

// Rename renames without ever replacing the destination.
func (l *Local) Rename(ctx context.Context, from, to string) error {
	rf, err := l.real(from)
	if err != nil {
		return err
	}
	rt, err := l.real(to)
	if err != nil {
		return err
	}
	if err := renameNoReplace(rf, rt); err != nil {
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(rt)); err != nil {
		return err
	}
	if filepath.Dir(rf) != filepath.Dir(rt) {
		return fsutil.SyncDir(filepath.Dir(rf))
	}
	return nil
}

func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The file system cannot refuse for us; check, then rename. Only
		// maildist creates these names, under its per-user lock.
		if _, lerr := os.Lstat(to); lerr == nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
		}
		return os.Rename(from, to)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = fs.ErrExist
		}
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// MkdirAll makes p and missing parents, owned by uid:gid when running as
// root, and returns what it made.
func (l *Local) MkdirAll(ctx context.Context, p string, mode fs.FileMode, uid, gid int) ([]string, error) {
	if _, err := l.real(p); err != nil {
		return nil, err
	}
	var missing []string
	for q := p; q != "/"; q = path.Dir(q) {
		rq := filepath.Join(l.fsroot, q)
		fi, err := os.Lstat(rq)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("host %s: %s exists and is not a folder", l.name, q)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, q)
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		q := missing[i]
		rq := filepath.Join(l.fsroot, q)
		if err := os.Mkdir(rq, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return made, err
		}
		made = append(made, q)
		if err := os.Chmod(rq, mode); err != nil {
			return made, err
		}
		if os.Geteuid() == 0 && uid >= 0 {
			if err := os.Lchown(rq, uid, gid); err != nil {
				return made, err
			}
		}
		if err := fsutil.SyncDir(filepath.Dir(rq)); err != nil {
			return made, err
		}
	}
	return made, nil
}

// RemoveAll removes a tree without following symlinks.
func (l *Local) RemoveAll(ctx context.Context, p string) error {
	rp, err := l.real(p)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(rp); err != nil {
		return err
	}
	return syncParent(rp)
}

// Remove removes one file or empty folder.
func (l *Local) Remove(ctx context.Context, p string) error {
	rp, err := l.real(p)
	if err != nil {
		return err
	}
	if err := os.Remove(rp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncParent(rp)
}

func syncParent(rp string) error {
	err := fsutil.SyncDir(filepath.Dir(rp))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// WriteFile writes a small file atomically and durably.
func (l *Local) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, uid, gid int) error {
	rp, err := l.real(p)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(rp, data, mode); err != nil {
		return err
	}
	if os.Geteuid() == 0 && uid >= 0 {
		return os.Lchown(rp, uid, gid)
	}
	return nil
}

// ReadFile reads a small file.
func (l *Local) ReadFile(ctx context.Context, p string) ([]byte, error) {
	rp, err := l.real(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(rp)
}

// FreeBytes is the space available on the file system holding p (or the
// nearest existing folder above it).
func (l *Local) FreeBytes(ctx context.Context, p string) (int64, error) {
	rp, err := l.real(p)
	if err != nil {
		return 0, err
	}
	for {
		var st unix.Statfs_t
		err := unix.Statfs(rp, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		if !errors.Is(err, unix.ENOENT) || rp == l.fsroot || rp == "/" {
			return 0, fmt.Errorf("free space on %s: %w", rp, err)
		}
		rp = filepath.Dir(rp)
	}
}

// Usage is du's count of the tree at p, from a scan (in parallel, never
// following a symlink). The scan refuses what a copy would refuse: a
// FIFO, socket or device in the home.
func (l *Local) Usage(ctx context.Context, p string) (int64, error) {
	rp, err := l.real(p)
	if err != nil {
		return 0, err
	}
	return diskUsage(ctx, rp, l.Workers)
}

// DiskUsage sums allocated blocks under a real path, each inode once,
// never following symlinks.
func DiskUsage(root string) (int64, error) {
	return diskUsage(context.Background(), root, 0)
}

func diskUsage(ctx context.Context, root string, workers int) (int64, error) {
	m, err := tree.Scan(ctx, root, tree.ScanOptions{Workers: workers})
	if err != nil {
		return 0, err
	}
	return m.DiskUsage(), nil
}

// OpenFiles lists processes with a file open (or their working folder)
// under p, by reading /proc.
func (l *Local) OpenFiles(ctx context.Context, p string) ([]string, error) {
	rp, err := l.real(p)
	if err != nil {
		return nil, err
	}
	return OpenUnder(rp)
}

// OpenUnder lists "pid:path" for every open file, cwd or root of any
// process that lies under dir (a real path).
func OpenUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan open files: %w", err)
	}
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, pe := range procs {
		pid := pe.Name()
		if pid[0] < '0' || pid[0] > '9' || pid == self {
			continue
		}
		var links []string
		for _, n := range []string{"cwd", "root"} {
			links = append(links, "/proc/"+pid+"/"+n)
		}
		fds, err := os.ReadDir("/proc/" + pid + "/fd")
		if err == nil {
			for _, fd := range fds {
				links = append(links, "/proc/"+pid+"/fd/"+fd.Name())
			}
		}
		for _, ln := range links {
			t, err := os.Readlink(ln)
			if err != nil {
				continue
			}
			t = strings.TrimSuffix(t, " (deleted)")
			if t == dir || strings.HasPrefix(t, dir+"/") {
				out = append(out, pid+":"+t)
			}
		}
	}
	return out, nil
}

// Scan makes the manifest of the tree at p.
func (l *Local) Scan(ctx context.Context, p string, hash bool) (*tree.Manifest, error) {
	rp, err := l.real(p)
	if err != nil {
		return nil, err
	}
	return tree.Scan(ctx, rp, tree.ScanOptions{Hash: hash, Workers: l.Workers, Cache: l.Cache})
}

// Run runs a command on this machine.
func (l *Local) Run(ctx context.Context, argv []string) ([]byte, error) {
	return RunCommand(ctx, argv)
}

// RunCommand runs argv and returns its stdout; on failure the error holds
// the end of its stderr.
func RunCommand(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = "…" + msg[len(msg)-400:]
		}
		if msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return stdout.Bytes(), nil
}

// LocalCopier copies between local hosts with the tree package.
type LocalCopier struct {
	Options tree.Options
	// Limit, if set, caps the bytes per second of all copies together.
	Limit *rate.Limiter
}

// throttle waits until the limiter allows n more bytes.
func throttle(ctx context.Context, l *rate.Limiter, n int64) {
	for n > 0 {
		step := min(n, int64(l.Burst()))
		if l.WaitN(ctx, int(step)) != nil {
			return
		}
		n -= step
	}
}

// Copy copies or syncs srcPath on src to dstPath on dst. Between two Local
// hosts it copies itself; otherwise it hands the copy to the Carrier at
// one end (a host reached through its agent), with its limit and progress.
func (c *LocalCopier) Copy(ctx context.Context, src Host, srcPath string, dst Host, dstPath string, mode CopyMode) (tree.Stats, error) {
	ls, ok1 := src.(*Local)
	ld, ok2 := dst.(*Local)
	if !ok1 || !ok2 {
		t := Transfer{Src: src, SrcPath: srcPath, Dst: dst, DstPath: dstPath, Mode: mode, Limit: c.Limit, Progress: c.Options.Progress}
		if cr, ok := dst.(Carrier); ok {
			return cr.CopyTree(ctx, t)
		}
		if cr, ok := src.(Carrier); ok {
			return cr.CopyTree(ctx, t)
		}
		return tree.Stats{}, fmt.Errorf("local copier cannot copy %s → %s: not both local", src.Name(), dst.Name())
	}
	rs, err := ls.real(srcPath)
	if err != nil {
		return tree.Stats{}, err
	}
	rd, err := ld.real(dstPath)
	if err != nil {
		return tree.Stats{}, err
	}
	opt := c.Options
	if c.Limit != nil {
		inner := opt.Progress
		opt.Progress = func(n int64) {
			if inner != nil {
				inner(n)
			}
			throttle(ctx, c.Limit, n)
		}
	}
	// Hash what is copied while it is in memory: the verify then reads
	// neither tree again.
	opt.ReadBack = opt.Cache != nil
	switch mode {
	case CopySync:
		// The source is held: the manifest this Sync copies from is
		// what a verify compares the copy with (Stats.Source). With a
		// cache, hashing it reads only what changed since last read.
		// Only a verify follows it, so the copy's manifest is made only
		// if a Sync asks for it (one that mends what the verify found).
		opt.HashSource = opt.Cache != nil
		opt.Last = true
		return tree.Sync(ctx, rs, rd, opt)
	case CopyLive:
		if _, err := os.Lstat(rd); err == nil {
			return tree.Sync(ctx, rs, rd, opt)
		}
		opt.SkipVanished = true
		return tree.Copy(ctx, rs, rd, opt)
	}
	return tree.Copy(ctx, rs, rd, opt)
}
