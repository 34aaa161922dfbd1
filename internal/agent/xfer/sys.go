package xfer

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel (a relative path, or "." for dirfd itself) below
// dirfd without following a symlink anywhere on the way, and without
// leaving dirfd by "..": a symlink planted in the tree, or in place of
// it, makes the open fail.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	if rel == "" || rel == "." {
		return retry(func() (int, error) { return unix.Openat(dirfd, ".", flags|unix.O_CLOEXEC, 0) })
	}
	if strings.HasPrefix(rel, "/") || !validRel(rel) {
		return -1, fmt.Errorf("path %q: not a clean relative path", rel)
	}
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := retry(func() (int, error) { return unix.Openat2(dirfd, rel, how) })
	if !errors.Is(err, unix.ENOSYS) {
		return fd, err
	}
	// No openat2 (Linux before 5.6): one name at a time, none followed.
	parts := strings.Split(rel, "/")
	cur := dirfd
	for i, p := range parts {
		fl := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			fl = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		next, err := retry(func() (int, error) { return unix.Openat(cur, p, fl, 0) })
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

func retry(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// validRel reports whether rel is a clean relative path of names: no
// empty name, no "." or "..", no NUL.
func validRel(rel string) bool {
	if rel == "." {
		return true
	}
	if rel == "" || strings.IndexByte(rel, 0) >= 0 {
		return false
	}
	for _, n := range strings.Split(rel, "/") {
		if n == "" || n == "." || n == ".." {
			return false
		}
	}
	return true
}

// split returns the folder and name of a relative path ("." for a name at
// the top).
func split(rel string) (string, string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

// removeAllAt removes name in dirfd and, for a folder, everything below
// it, never following a symlink.
func removeAllAt(dirfd int, name string) error {
	err := ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, 0) })
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return err
	}
	// Without root a folder whose mode lacks u+w cannot be emptied.
	unix.Fchmod(fd, 0o700)
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	err = ignoringEINTR(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// readNames lists a folder's names, but "." and "..".
func readNames(fd int) ([]string, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
	if _, err := unix.Seek(dup, 0, 0); err != nil {
		return nil, err
	}
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(dup, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) })
	return st, err
}

func lstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return st, err
}

// futimens sets the times of an open file or folder: utimensat with a
// NULL path, which x/sys does not wrap.
func futimens(fd int, atime, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return ignoringEINTR(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
}

func lutimesAt(dirfd int, name string, atime, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// gone reports whether an open failed because the name is no longer
// what was listed: removed, or replaced by a symlink or a folder.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.EXDEV)
}
