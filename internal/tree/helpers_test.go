package tree

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// node is one name of a test tree, declared as a Go literal and made at
// run time (git keeps no owners, modes, links or special files).
type node struct {
	path    string
	kind    string // "file", "dir", "symlink", "hardlink" (to target), "fifo", "socket", "chardev", "blockdev"
	data    string
	target  string
	mode    uint32
	hasMode bool
	uid     int
	gid     int
	hasOwn  bool
	mtime   int64 // 0: a distinct time with nanoseconds
}

func F(path, data string) node    { return node{path: path, kind: "file", data: data} }
func D(path string) node          { return node{path: path, kind: "dir"} }
func L(path, target string) node  { return node{path: path, kind: "symlink", target: target} }
func H(path, first string) node   { return node{path: path, kind: "hardlink", target: first} }
func S(path, kind string) node    { return node{path: path, kind: kind} }
func (n node) Mode(m uint32) node { n.mode, n.hasMode = m, true; return n }
func (n node) Own(uid, gid int) node {
	n.uid, n.gid, n.hasOwn = uid, gid, true
	return n
}
func (n node) At(ns int64) node { n.mtime = ns; return n }

// baseTime is 2021-01-02T03:04:05.123456789Z: nanoseconds on purpose.
var baseTime = time.Date(2021, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano()

var errSkipSpecial = errors.New("cannot make special files here")

// build makes the nodes under root (created if missing). Parents are made
// as needed. Metadata are set after every name exists, folders last and
// deepest first, so that their mtimes stay as declared.
func build(t testing.TB, root string, nodes []node) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		p := filepath.Join(root, n.path)
		if n.path != "." {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		switch n.kind {
		case "file":
			err = os.WriteFile(p, []byte(n.data), 0o644)
		case "dir":
			if n.path != "." {
				if err = os.Mkdir(p, 0o755); errors.Is(err, os.ErrExist) {
					err = nil // made already as a parent
				}
			}
		case "symlink":
			err = os.Symlink(n.target, p)
		case "hardlink":
			err = os.Link(filepath.Join(root, n.target), p)
		case "fifo":
			err = unix.Mkfifo(p, 0o644)
		case "socket":
			err = unix.Mknod(p, unix.S_IFSOCK|0o644, 0)
		case "chardev":
			err = unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))
		case "blockdev":
			err = unix.Mknod(p, unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0)))
		default:
			t.Fatalf("node %d: unknown kind %q", i, n.kind)
		}
		if err != nil {
			if errors.Is(err, unix.EPERM) && strings.HasSuffix(n.kind, "dev") {
				t.Skipf("%s: %v", errSkipSpecial, err)
			}
			t.Fatalf("build %q: %v", n.path, err)
		}
	}
	// Metadata: files and symlinks first, then folders deepest first.
	order := make([]int, len(nodes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		da, db := nodes[a].kind == "dir", nodes[b].kind == "dir"
		switch {
		case da && !db:
			return 1
		case !da && db:
			return -1
		case da && db:
			return strings.Count(nodes[b].path, "/") - strings.Count(nodes[a].path, "/")
		}
		return 0
	})
	for _, i := range order {
		n := nodes[i]
		if n.kind == "hardlink" {
			continue
		}
		p := filepath.Join(root, n.path)
		if n.hasOwn {
			if err := os.Lchown(p, n.uid, n.gid); err != nil {
				t.Fatalf("chown %q: %v", n.path, err)
			}
		}
		if n.hasMode && n.kind != "symlink" {
			if err := unix.Fchmodat(unix.AT_FDCWD, p, n.mode, 0); err != nil {
				t.Fatalf("chmod %q: %v", n.path, err)
			}
		}
		mt := n.mtime
		if mt == 0 {
			mt = baseTime + int64(i)*1_000_000_007
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mt), unix.NsecToTimespec(mt)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("times %q: %v", n.path, err)
		}
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

// mustScan scans with hashing and fails the test on an error.
func mustScan(t testing.TB, root string) *Manifest {
	t.Helper()
	m, err := Scan(context.Background(), root, ScanOptions{Hash: true})
	if err != nil {
		t.Fatalf("scan %s: %v", root, err)
	}
	return m
}

// sameTree scans both sides and fails with every difference.
func sameTree(t testing.TB, src, dst string) {
	t.Helper()
	diffs := Compare(mustScan(t, src), mustScan(t, dst), CompareOptions{IgnoreOwners: !isRoot()})
	for _, d := range diffs {
		t.Errorf("diff %s", d)
	}
}

// checkLstat compares each declared name on both sides with plain
// os.Lstat calls, so that a test does not rest on Scan alone.
func checkLstat(t testing.TB, src, dst string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		sp, dp := filepath.Join(src, n.path), filepath.Join(dst, n.path)
		si, err := os.Lstat(sp)
		if err != nil {
			t.Errorf("lstat source %q: %v", n.path, err)
			continue
		}
		di, err := os.Lstat(dp)
		if err != nil {
			t.Errorf("lstat copy %q: %v", n.path, err)
			continue
		}
		if si.Mode() != di.Mode() {
			t.Errorf("%q: mode %v != %v", n.path, si.Mode(), di.Mode())
		}
		ss, ds := si.Sys().(*syscall.Stat_t), di.Sys().(*syscall.Stat_t)
		if ss.Mtim != ds.Mtim {
			t.Errorf("%q: mtime %v != %v", n.path, ss.Mtim, ds.Mtim)
		}
		if isRoot() && (ss.Uid != ds.Uid || ss.Gid != ds.Gid) {
			t.Errorf("%q: owner %d:%d != %d:%d", n.path, ss.Uid, ss.Gid, ds.Uid, ds.Gid)
		}
		if si.Size() != di.Size() && !si.IsDir() {
			t.Errorf("%q: size %d != %d", n.path, si.Size(), di.Size())
		}
		switch {
		case si.Mode()&os.ModeSymlink != 0:
			st, _ := os.Readlink(sp)
			dt, _ := os.Readlink(dp)
			if st != dt {
				t.Errorf("%q: target %q != %q", n.path, st, dt)
			}
		case si.Mode().IsRegular() && isRoot():
			sb, _ := os.ReadFile(sp)
			db, _ := os.ReadFile(dp)
			if !bytes.Equal(sb, db) {
				t.Errorf("%q: contents differ", n.path)
			}
		}
		if n.kind == "hardlink" {
			fi, err := os.Lstat(filepath.Join(dst, n.target))
			if err != nil || !os.SameFile(fi, di) {
				t.Errorf("%q: not a hard link of %q in the copy", n.path, n.target)
			}
		}
	}
}
