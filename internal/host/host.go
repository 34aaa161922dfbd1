package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/tree"
)

// Info is what Lstat tells about a path.
type Info struct {
	Mode fs.FileMode // type and permission bits
	UID  int
	GID  int
	Size int64
}

// IsDir reports whether the path is a real folder (not a symlink to one).
func (i Info) IsDir() bool { return i.Mode.IsDir() }

// Host is one storage host.
type Host interface {
	Name() string

	// Lstat describes a path without following a symlink. A missing path
	// gives an error that wraps fs.ErrNotExist.
	Lstat(ctx context.Context, p string) (Info, error)

	// Rename renames within the host; it fails (wrapping fs.ErrExist) if
	// to exists, and never replaces anything.
	Rename(ctx context.Context, from, to string) error

	// MkdirAll makes p and its missing parents with the given mode and
	// owner, and returns the folders it created, outermost first.
	MkdirAll(ctx context.Context, p string, mode fs.FileMode, uid, gid int) ([]string, error)

	// RemoveAll removes p and everything below it. A missing p is fine.
	RemoveAll(ctx context.Context, p string) error

	// Remove removes one file or empty folder. A missing p is fine.
	Remove(ctx context.Context, p string) error

	// WriteFile writes a small file durably (fsync of file and folder).
	WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, uid, gid int) error

	// ReadFile reads a small file.
	ReadFile(ctx context.Context, p string) ([]byte, error)

	// FreeBytes is the space free to root on the file system holding p.
	FreeBytes(ctx context.Context, p string) (int64, error)

	// Usage is the space a tree takes on disk (allocated blocks, each
	// inode once), as du counts it.
	Usage(ctx context.Context, p string) (int64, error)

	// OpenFiles lists open files under p held by any process on the host,
	// as "pid:path" strings. Empty means the tree has settled.
	OpenFiles(ctx context.Context, p string) ([]string, error)

	// Scan makes the manifest of the tree at p.
	Scan(ctx context.Context, p string, hash bool) (*tree.Manifest, error)

	// Run runs a command on the host (flush, queue) and returns its stdout.
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// CopyMode says what kind of copy is asked for.
type CopyMode int

const (
	// CopyFresh makes a new copy; dstPath must not exist. The source is
	// held: a name that vanishes is an error.
	CopyFresh CopyMode = iota
	// CopySync brings an earlier copy at dstPath up to date with a held
	// source. A copier may hand back the hashed manifest of the source it
	// copied from in Stats.Source, for the verify.
	CopySync
	// CopyLive is a pass while the user still works: dstPath may hold an
	// earlier pass or nothing; names that vanish meanwhile are left out.
	CopyLive
)

// Copier carries a tree from one host to another.
type Copier interface {
	// Copy makes dstPath on dst a copy of srcPath on src, as mode says.
	Copy(ctx context.Context, src Host, srcPath string, dst Host, dstPath string, mode CopyMode) (tree.Stats, error)
}

// ErrOutside is wrapped by errors for paths outside the cluster's roots.
var ErrOutside = errors.New("path is outside the cluster's roots")

// CheckPath refuses a path that is not absolute and clean, or that is not
// one of roots or below one.
func CheckPath(p string, roots []string) error {
	if p == "" || !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q: not a clean absolute path: %w", p, ErrOutside)
	}
	for _, r := range roots {
		if cluster.Under(r, p) {
			return nil
		}
	}
	return fmt.Errorf("path %q: %w", p, ErrOutside)
}

// Roots returns the roots of every host of a cluster.
func Roots(c *cluster.Cluster) []string {
	var rs []string
	for _, h := range c.Hosts {
		rs = append(rs, h.Root)
	}
	return rs
}
