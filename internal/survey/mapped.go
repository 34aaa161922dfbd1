package survey

import (
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/maildist/maildist/internal/survey/dovelog"
)

// mapAtLeast is the size from which a plain log file is mapped into
// memory rather than read: the scan then cuts it into blocks where it
// lies, and the copy that reading makes (a good part of the time a scan
// takes) is not made.
var mapAtLeast int64 = 4 << 20

// mappedLog is a plain log file mapped into memory (dovelog.Mapped). It
// holds the file as long as it was when opened: lines written to it
// later are not read. If the file shrinks while it is mapped, reading
// its lost part faults, which the scan reports as an error naming it.
type mappedLog struct {
	b   []byte
	pos int           // for Read
	n   *atomic.Int64 // bytes done, for progress
	f   *os.File
}

var _ dovelog.Mapped = (*mappedLog)(nil)

// mapLog maps the first size bytes of f; nil if it cannot.
func mapLog(f *os.File, size int64, n *atomic.Int64) *mappedLog {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	_ = unix.Madvise(b, unix.MADV_SEQUENTIAL) // read ahead, if not cached
	return &mappedLog{b: b, n: n, f: f}
}

func (m *mappedLog) Bytes() []byte { return m.b }

// Release counts the bytes done and takes the pages wholly inside them
// out of the process's memory (the page cache keeps them), so that what
// a scan holds does not grow with the file.
func (m *mappedLog) Release(off, n int) {
	m.n.Add(int64(n))
	page := os.Getpagesize()
	lo := (off + page - 1) / page * page
	hi := min(off+n, len(m.b)) / page * page
	if hi > lo {
		_ = unix.Madvise(m.b[lo:hi], unix.MADV_DONTNEED)
	}
}

// Read reads the text as a plain reader would; a scan does not use it.
func (m *mappedLog) Read(p []byte) (int, error) {
	if m.pos >= len(m.b) {
		return 0, io.EOF
	}
	k := copy(p, m.b[m.pos:])
	m.pos += k
	return k, nil
}

func (m *mappedLog) Close() error {
	if m.b == nil {
		return nil
	}
	err := unix.Munmap(m.b)
	m.b = nil
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
