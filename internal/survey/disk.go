package survey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildist/maildist/internal/cluster"
)

// DiskReader reads homes on the hosts' file systems. Implementations must
// be safe for concurrent use; the survey calls them for many users at
// once.
type DiskReader interface {
	// Usage walks the home (a host-absolute path) and returns the space it
	// takes (allocated blocks, each inode once, folders too: what
	// `du --block-size=1 -s` says) and the messages in it (files in cur/
	// and new/ of every Maildir folder: one that has cur/ or new/; and
	// "From " lines of mbox files).
	// It never follows a symlink. A home that does not exist gives
	// ErrMissingHome; any other error comes with what was counted so far.
	Usage(ctx context.Context, h *cluster.Host, home string) (bytes, messages int64, err error)

	// Check looks at the home without walking it (an lstat): nil if it is
	// a folder, ErrMissingHome if it does not exist, else why it cannot be
	// read.
	Check(ctx context.Context, h *cluster.Host, home string) error
}

var (
	// ErrMissingHome: the user's home does not exist.
	ErrMissingHome = errors.New("home does not exist")
	// ErrRemote: the host is reached through an agent, which this reader
	// cannot do.
	ErrRemote = errors.New("host is reached through its agent, not a local file system")
)

// LocalDisk reads the homes of local hosts under their fsroot: the home
// /bp04/alice of a host whose fsroot is /srv/cluster/bp04 is the folder
// /srv/cluster/bp04/bp04/alice here.
type LocalDisk struct{}

var _ DiskReader = LocalDisk{}

// RealPath is where a home of a local host is on this machine.
func RealPath(h *cluster.Host, home string) (string, error) {
	if !h.Local() {
		return "", fmt.Errorf("host %s: %w", h.Name, ErrRemote)
	}
	if !strings.HasPrefix(home, "/") || filepath.Clean(home) != home {
		return "", fmt.Errorf("home %q is not a clean absolute path", home)
	}
	return filepath.Join(h.FSRoot, home), nil
}

// Check lstats the home.
func (LocalDisk) Check(ctx context.Context, h *cluster.Host, home string) error {
	p, err := RealPath(h, home)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return ErrMissingHome
		}
		return &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return homeType(p, st.Mode)
}

func homeType(p string, mode uint32) error {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return nil
	case unix.S_IFLNK:
		return fmt.Errorf("%s is a symlink, which a survey does not follow", p)
	}
	return fmt.Errorf("%s is not a folder", p)
}

// Usage walks the home through file descriptors (openat, fstatat), so a
// symlink swapped in during the walk is never followed.
func (LocalDisk) Usage(ctx context.Context, h *cluster.Host, home string) (int64, int64, error) {
	p, err := RealPath(h, home)
	if err != nil {
		return 0, 0, err
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// Missing, a symlink, a file, or a folder that cannot be opened.
		if cerr := (LocalDisk{}).Check(ctx, h, home); cerr != nil {
			return 0, 0, cerr
		}
		return 0, 0, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	w := walker{ctx: ctx, buf: make([]byte, 32<<10)}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return 0, 0, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	w.bytes = st.Blocks * 512
	w.dir(fd, p, dirPlain)
	return w.bytes, w.messages, errors.Join(w.errs...)
}

// dirKind says what a folder is to the message count.
type dirKind uint8

const (
	dirPlain   dirKind = iota
	dirMessage         // cur/ or new/ of a Maildir folder: its files are messages
	dirTmp             // tmp/ of a Maildir folder: its files are not (yet) messages
)

type walker struct {
	ctx      context.Context
	buf      []byte
	bytes    int64
	messages int64
	links    map[[2]uint64]bool // dev, ino of files with more than one link
	errs     []error
}

type entry struct {
	name string
	st   unix.Stat_t
}

// dir reads the folder open at fd (and closes it), then walks its
// subfolders.
func (w *walker) dir(fd int, path string, kind dirKind) {
	var subdirs []entry
	var mboxes []string // files that may be mboxes, looked into once the folder is known
	hasCur, hasNew := false, false
	err := w.readDir(fd, func(name string) {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.ENOENT) { // gone since readdir: mail moves on
				w.errs = append(w.errs, &fs.PathError{Op: "lstat", Path: path + "/" + name, Err: err})
			}
			return
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		counted := false
		if !isDir && st.Nlink > 1 {
			// A hard link's blocks count once; as a message it counts
			// wherever it is, as find would list it.
			if w.links == nil {
				w.links = map[[2]uint64]bool{}
			}
			k := [2]uint64{st.Dev, st.Ino}
			counted = w.links[k]
			w.links[k] = true
		}
		if !counted {
			w.bytes += st.Blocks * 512
		}
		switch {
		case isDir:
			switch name {
			case "cur":
				hasCur = true
			case "new":
				hasNew = true
			}
			subdirs = append(subdirs, entry{name, st})
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
		case kind == dirMessage:
			w.messages++
		case kind == dirPlain && st.Size >= 5 && !counted && !strings.HasPrefix(name, "dovecot"):
			mboxes = append(mboxes, name)
		}
	})
	if err != nil {
		w.errs = append(w.errs, &fs.PathError{Op: "readdir", Path: path, Err: err})
	}
	// Dovecot takes a folder with cur/ for a mailbox and makes new/ and
	// tmp/ when it needs them; new/ alone holds mail too.
	maildir := hasCur || hasNew
	if !maildir {
		// The files at the top of a Maildir folder are Dovecot's own
		// (subscriptions, uidlist, indexes): only elsewhere may one be
		// an mbox.
		for _, name := range mboxes {
			w.messages += w.mbox(fd, path, name)
		}
	}
	for _, e := range subdirs {
		if w.ctx.Err() != nil {
			break
		}
		sub := dirPlain
		if maildir {
			switch e.name {
			case "cur", "new":
				sub = dirMessage
			case "tmp":
				sub = dirTmp
			}
		}
		cfd, err := unix.Openat(fd, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				w.errs = append(w.errs, &fs.PathError{Op: "open", Path: path + "/" + e.name, Err: err})
			}
			continue
		}
		w.dir(cfd, path+"/"+e.name, sub)
	}
	unix.Close(fd)
}

// readDir calls fn with the name of every entry of the folder open at fd.
func (w *walker) readDir(fd int, fn func(name string)) error {
	for {
		n, err := unix.ReadDirent(fd, w.buf)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n <= 0 {
			return nil
		}
		// The names are read out of the buffer before fn can reuse it:
		// fn only stats and may read a file, never a folder.
		names := make([]string, 0, 64)
		b := w.buf[:n]
		for len(b) >= 19 {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen == 0 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				names = append(names, string(name))
			}
			b = b[reclen:]
		}
		for _, name := range names {
			fn(name)
		}
	}
}

var fromLine = []byte("\nFrom ")

// mbox counts the messages of a file that is an mbox (it starts with a
// "From " line): the lines that start with "From ". 0 for any other file.
func (w *walker) mbox(dirfd int, path, name string) int64 {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if !errors.Is(err, unix.ENOENT) {
			w.errs = append(w.errs, &fs.PathError{Op: "open", Path: path + "/" + name, Err: err})
		}
		return 0
	}
	defer unix.Close(fd)
	const keep = 5 // len(fromLine)-1: a match can start this far back
	buf := make([]byte, keep+64<<10)
	// The file is read as if it began with a newline, so its first line
	// counts like any other.
	tail := []byte{'\n'}
	var count int64
	first := true
	for {
		copy(buf[keep-len(tail):keep], tail)
		n, err := unix.Read(fd, buf[keep:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.errs = append(w.errs, &fs.PathError{Op: "read", Path: path + "/" + name, Err: err})
			return count
		}
		if n <= 0 {
			return count
		}
		if first && !bytes.HasPrefix(buf[keep:keep+n], []byte("From ")) {
			return 0
		}
		first = false
		win := buf[keep-len(tail) : keep+n]
		count += int64(bytes.Count(win, fromLine))
		var t [keep]byte
		k := copy(t[:], win[max(0, len(win)-keep):])
		tail = t[:k]
	}
}
