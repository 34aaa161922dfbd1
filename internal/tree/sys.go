package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every walk goes through file descriptors: a folder is opened relative to
// its parent's descriptor, one name at a time, with O_NOFOLLOW, so a symlink
// put in place of a folder (or of a file) makes the open fail instead of
// leading out of the tree.
const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
)

// ignoringEINTR retries a system call that a signal interrupted.
func ignoringEINTR(f func() error) error {
	for {
		err := f()
		if err != unix.EINTR {
			return err
		}
	}
}

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirfd, name, flags, mode)
		return err
	})
	return fd, err
}

// openRead opens a file for reading without following a symlink and,
// where allowed, without touching its access time (O_NOATIME is refused
// to anyone but the owner and root).
func openRead(dirfd int, name string) (int, error) {
	fd, err := openat(dirfd, name, readFlags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = openat(dirfd, name, readFlags, 0)
	}
	return fd, err
}

func fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) })
	return st, err
}

func lstatat(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error {
		return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	return st, err
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readNames lists a folder: every name but "." and "..".
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var names []string
	for {
		var n int
		err := ignoringEINTR(func() error {
			var err error
			n, err = unix.Getdents(fd, buf)
			return err
		})
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		for b := buf[:n]; len(b) > 0; {
			var used int
			used, _, names = unix.ParseDirent(b, -1, names)
			b = b[used:]
		}
	}
}

// dirent is a name of a folder and its type as the folder lists it
// (unix.DT_REG, DT_DIR, …; DT_UNKNOWN where the file system does not say).
type dirent struct {
	name string
	typ  uint8
}

// readDirents lists a folder with the type of each name: every name but
// "." and "..". It gives them to each as they are read, some at a time,
// so that a big folder's names can be looked at while the rest are read.
func readDirents(fd int, each func([]dirent)) error {
	buf := make([]byte, 64<<10)
	for {
		var n int
		err := ignoringEINTR(func() error {
			var err error
			n, err = unix.Getdents(fd, buf)
			return err
		})
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8,
		// then the name, NUL-terminated. The names of one read are
		// copied into one buffer, never written again, and each is a
		// string cut from it: one allocation for all of them, not one
		// each. The buffer never grows (the names are shorter than
		// their records), so the strings stay where they point.
		const nameOff = 19
		names := make([]byte, 0, n)
		out := make([]dirent, 0, n/(nameOff+5)) // records are 8-aligned: at least 24 bytes
		for b := buf[:n]; len(b) >= nameOff; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < nameOff || reclen > len(b) {
				return fmt.Errorf("getdents: bad record length %d", reclen)
			}
			rec := b[nameOff:reclen]
			if i := bytes.IndexByte(rec, 0); i >= 0 {
				rec = rec[:i]
			}
			if len(rec) > 0 && !dots(rec) {
				from := len(names)
				names = append(names, rec...)
				out = append(out, dirent{name: unsafe.String(&names[from], len(rec)), typ: b[18]})
			}
			b = b[reclen:]
		}
		if len(out) > 0 {
			each(out)
		}
	}
}

// dots reports whether a listed name is "." or "..".
func dots(name []byte) bool {
	return len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.'
}

// futimens sets the times of an open file: utimensat(fd, NULL, ...), the
// form that x/sys does not wrap.
func futimens(fd int, atime, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return ignoringEINTR(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0,
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
}

// lutimesat sets the times of a name without following it (symlinks).
func lutimesat(dirfd int, name string, atime, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func fsync(fd int) error {
	return ignoringEINTR(func() error { return unix.Fsync(fd) })
}

// closeChecked closes a file of the copy that will not be fsynced through
// its descriptor; a file system that reports errors at close (NFS) says
// so here.
func closeChecked(fd int, rel string) error {
	if err := unix.Close(fd); err != nil && err != unix.EINTR {
		return fmt.Errorf("copy %s: close: %w", quote(rel), err)
	}
	return nil
}

// syncfsReportsErrors tells whether syncfs returns the write-back errors
// of its file system that happened since the descriptor it is given was
// opened, as Linux does from 5.8 on; before, it returned 0 whatever
// became of the data, and only an fsync of each file can be trusted.
var syncfsReportsErrors = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast reports whether a kernel release ("6.1.0-18-amd64") is
// major.minor or later.
func kernelAtLeast(release string, major, minor int) bool {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return false
	}
	a, err1 := strconv.Atoi(f[0])
	b, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// splitPath returns the folder and the last name of a manifest path.
func splitPath(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

func joinPath(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// validPath reports whether rel is a clean relative manifest path: "." or
// names joined by "/", none empty, "." or "..". Names may hold any other
// byte but NUL.
func validPath(rel string) bool {
	if rel == "." {
		return true
	}
	if rel == "" || strings.IndexByte(rel, 0) >= 0 {
		return false
	}
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// openDir opens the folder rel below the folder root, one name at a time,
// never following a symlink. The caller closes the result.
func openDir(root int, rel string) (int, error) {
	if !validPath(rel) {
		return -1, fmt.Errorf("bad path %q", rel)
	}
	if rel == "." {
		return unix.FcntlInt(uintptr(root), unix.F_DUPFD_CLOEXEC, 0)
	}
	fd := root
	for c := range strings.SplitSeq(rel, "/") {
		next, err := openat(fd, c, dirFlags, 0)
		if fd != root {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// gone reports whether an error from opening a name that was listed means
// it is no longer there as it was: removed (ENOENT), or replaced by a
// symlink (ELOOP from O_NOFOLLOW) or by something that is not a folder.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

// removeAllAt removes name in the folder dirfd and, for a folder,
// everything below it, without following symlinks.
func removeAllAt(dirfd int, name string) error {
	st, err := lstatat(dirfd, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dirfd, name, 0)
	}
	fd, err := openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return err
	}
	if st.Mode&0o700 != 0o700 {
		// Without root, a folder needs u+rwx to be emptied.
		if err := unix.Fchmod(fd, st.Mode&0o7777|0o700); err != nil {
			unix.Close(fd)
			return err
		}
	}
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
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// copyContent copies src to dst from their current offsets to the end of
// src, or, if size > 0, until size bytes are copied (the size an fstat of
// src gave: this spares the call that would only find the end):
// copy_file_range where the kernel and the file systems allow it (the
// data then never enters user space, and reflinks where they can), read
// and write otherwise. A file that grew after its fstat is copied as
// long as it was then; its size and mtime then differ from the source's
// now, which a verify sees.
func copyContent(dst, src int, size int64, useCFR bool, progress func(int64)) (int64, error) {
	var total int64
	done := func() bool { return size > 0 && total >= size }
	for useCFR && !done() {
		want := 8 << 20
		if size > 0 {
			want = int(min(size-total, int64(want)))
		}
		n, err := unix.CopyFileRange(src, nil, dst, nil, want, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == nil && n > 0:
			total += int64(n)
			progress(int64(n))
			continue
		case err == nil && total > 0:
			return total, nil
		case err == nil:
			// 0 at the start: either an empty file, or a file system that
			// reports 0 instead of refusing; read and write tell which.
			useCFR = false
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOSYS),
			errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL),
			errors.Is(err, unix.EPERM), errors.Is(err, unix.EBADF):
			useCFR = false
		default:
			return total, fmt.Errorf("copy_file_range: %w", err)
		}
	}
	if done() {
		return total, nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for !done() {
		b := buf
		if size > 0 && size-total < int64(len(b)) {
			b = b[:size-total]
		}
		var n int
		err := ignoringEINTR(func() error {
			var err error
			n, err = unix.Read(src, b)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return total, nil
		}
		for b := b[:n]; len(b) > 0; {
			var w int
			err := ignoringEINTR(func() error {
				var err error
				w, err = unix.Write(dst, b)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("write: %w", err)
			}
			b = b[w:]
		}
		total += int64(n)
		progress(int64(n))
	}
	return total, nil
}

// bufPool holds the read buffers of the workers: memory stays at one
// buffer per worker whatever the size of the files.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 256<<10)
	return &b
}}

// quote returns a path as is when it prints plainly, quoted (Go syntax,
// byte-exact) when it holds control characters or bytes that are not
// UTF-8, so that an error or a diff stays on one line and says exactly
// which name it means.
func quote(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
