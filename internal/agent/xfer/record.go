package xfer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Records of the stream, after the magic.
const (
	recFile     = 'F' // path, meta, then chunks of content ending with an empty one
	recVanished = 'V' // path: gone from the source when it came to be sent
	recDir      = 'D' // path, meta: a folder's metadata as it is at the end
	recEnd      = 'E' // files, bytes: the stream is complete
	recError    = 'X' // code, message: the source gave up
)

const magic = "MDX1"

const (
	maxPath  = 64 << 10
	maxChunk = 1 << 20
	maxMsg   = 64 << 10
)

// meta is what a file or folder record says about it.
type meta struct {
	mode, uid, gid uint32
	atime, mtime   int64
	size           int64 // of a file when it was opened; the content may differ
}

// recWriter writes records.
type recWriter struct {
	w   io.Writer
	buf []byte
}

func (rw *recWriter) flushBuf() error {
	_, err := rw.w.Write(rw.buf)
	rw.buf = rw.buf[:0]
	return err
}

func (rw *recWriter) str(s string) {
	rw.buf = binary.AppendUvarint(rw.buf, uint64(len(s)))
	rw.buf = append(rw.buf, s...)
}

func (rw *recWriter) meta(m meta) {
	rw.buf = binary.AppendUvarint(rw.buf, uint64(m.mode))
	rw.buf = binary.AppendUvarint(rw.buf, uint64(m.uid))
	rw.buf = binary.AppendUvarint(rw.buf, uint64(m.gid))
	rw.buf = binary.AppendVarint(rw.buf, m.atime)
	rw.buf = binary.AppendVarint(rw.buf, m.mtime)
	rw.buf = binary.AppendVarint(rw.buf, m.size)
}

func (rw *recWriter) fileHeader(rel string, m meta) error {
	rw.buf = append(rw.buf, recFile)
	rw.str(rel)
	rw.meta(m)
	return rw.flushBuf()
}

func (rw *recWriter) chunk(p []byte) error {
	rw.buf = binary.AppendUvarint(rw.buf, uint64(len(p)))
	if err := rw.flushBuf(); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	_, err := rw.w.Write(p)
	return err
}

func (rw *recWriter) vanished(rel string) error {
	rw.buf = append(rw.buf, recVanished)
	rw.str(rel)
	return rw.flushBuf()
}

func (rw *recWriter) dir(rel string, m meta) error {
	rw.buf = append(rw.buf, recDir)
	rw.str(rel)
	rw.meta(m)
	return rw.flushBuf()
}

func (rw *recWriter) end(files int, bytes int64) error {
	rw.buf = append(rw.buf, recEnd)
	rw.buf = binary.AppendUvarint(rw.buf, uint64(files))
	rw.buf = binary.AppendUvarint(rw.buf, uint64(bytes))
	return rw.flushBuf()
}

func (rw *recWriter) fail(code, msg string) error {
	if len(msg) > maxMsg {
		msg = msg[:maxMsg]
	}
	rw.buf = append(rw.buf, recError)
	rw.str(code)
	rw.str(msg)
	return rw.flushBuf()
}

// recReader reads records.
type recReader struct {
	r *bufio.Reader
}

var errBadRecord = errors.New("bad record in the stream")

func (rr *recReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(rr.r)
	return v, unexpected(err)
}

func (rr *recReader) varint() (int64, error) {
	v, err := binary.ReadVarint(rr.r)
	return v, unexpected(err)
}

func (rr *recReader) str(limit int) (string, error) {
	n, err := rr.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("%w: a string of %d bytes", errBadRecord, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return "", unexpected(err)
	}
	return string(b), nil
}

func (rr *recReader) meta() (meta, error) {
	var m meta
	var v [3]uint64
	for i := range v {
		x, err := rr.uvarint()
		if err != nil {
			return m, err
		}
		if x > 1<<32-1 {
			return m, fmt.Errorf("%w: %d is out of range", errBadRecord, x)
		}
		v[i] = x
	}
	if v[0] > 0o7777 {
		return m, fmt.Errorf("%w: mode %o", errBadRecord, v[0])
	}
	m.mode, m.uid, m.gid = uint32(v[0]), uint32(v[1]), uint32(v[2])
	var err error
	if m.atime, err = rr.varint(); err != nil {
		return m, err
	}
	if m.mtime, err = rr.varint(); err != nil {
		return m, err
	}
	m.size, err = rr.varint()
	return m, err
}

// WriteNeed writes a list of paths, one Go-quoted string a line, so that
// any byte of a name survives.
func WriteNeed(w io.Writer, paths []string) error {
	bw := bufio.NewWriter(w)
	for _, p := range paths {
		bw.WriteString(strconv.Quote(p))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ReadNeed reads what WriteNeed wrote.
func ReadNeed(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		p, err := strconv.Unquote(line)
		if err != nil || !strings.HasPrefix(line, `"`) || !validRel(p) || p == "." {
			return nil, fmt.Errorf("need list line %d: not a quoted relative path", n)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}
