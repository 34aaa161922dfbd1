package xfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// SendOptions say how to send.
type SendOptions struct {
	Mode     host.CopyMode
	Compress string        // CompressAuto (default), CompressZstd, CompressNone
	Limit    *rate.Limiter // caps the bytes on the wire; nil: no cap
	// Progress, if set, is told of content bytes as they are sent; calls
	// never overlap.
	Progress func(int64)
	// Readers read files ahead at once; 0 picks a default.
	Readers int
}

// SendStats counts what a Send sent.
type SendStats struct {
	Files    int
	Bytes    int64 // content
	Wire     int64 // on the wire, after compression
	Blocks   int
	Zstd     int // blocks sent compressed
	Vanished []string
}

// ScanSource scans the tree to send at src (host-absolute) on the file
// system seen at fsroot, after checking that no symlink leads to it.
func ScanSource(ctx context.Context, fsroot, src string) (*tree.Manifest, error) {
	fd, err := openSource(fsroot, src)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return tree.Scan(ctx, strings.TrimSuffix(fsroot, "/")+src, tree.ScanOptions{})
}

func openSource(fsroot, src string) (int, error) {
	rfd, err := unix.Open(fsroot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", fsroot, err)
	}
	defer unix.Close(rfd)
	fd, err := openBeneath(rfd, strings.TrimPrefix(src, "/"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("send %s: %w", src, err)
		}
		return -1, fmt.Errorf("send %s: %w", src, symlinkErr(err))
	}
	return fd, nil
}

// item is one file read ahead.
type item struct {
	rel      string
	ready    chan struct{}
	data     []byte
	fd       int // a large file, left open for the sender to stream
	m        meta
	vanished bool
	err      error
}

// Send writes the stream that gives the receiver the files in need (paths
// of m, the manifest of src that the receiver planned from), then the
// folders' metadata as they are now, then the end. Files are read by
// descriptor below src, never through a symlink. With CopyFresh a file
// that vanished is an error (the source is held); otherwise it is sent as
// vanished. On an error Send tries to tell the receiver why before it
// returns it.
func Send(ctx context.Context, fsroot, src string, m *tree.Manifest, need []string, w io.Writer, opt SendOptions) (st SendStats, err error) {
	if opt.Compress == "" {
		opt.Compress = CompressAuto
	}
	if err := CheckCompress(opt.Compress); err != nil {
		return st, err
	}
	for _, rel := range need {
		e := m.Find(rel)
		if e == nil || e.Kind != tree.File || e.Link != "" {
			return st, fmt.Errorf("send %s: %s is not a file of the tree: %w", src, quote(rel), proto.ErrBadRequest)
		}
	}
	srcfd, err := openSource(fsroot, src)
	if err != nil {
		return st, err
	}
	defer unix.Close(srcfd)

	out := w
	if opt.Limit != nil {
		out = limitWriter{ctx: ctx, w: w, l: opt.Limit}
	}
	bw, err := newBlockWriter(out, opt.Compress)
	if err != nil {
		return st, err
	}
	rw := &recWriter{w: bw}
	defer func() {
		if err != nil {
			// Best effort: the receiver learns why, if the wire still works.
			rw.fail(proto.CodeOf(err), err.Error())
			bw.Close()
		}
		st.Wire, st.Blocks, st.Zstd = bw.wire, bw.blocks, bw.zblocks
	}()
	if _, err := io.WriteString(bw, magic); err != nil {
		return st, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readers := opt.Readers
	if readers <= 0 {
		readers = 8
	}
	order := make(chan *item, 64)
	work := make(chan *item, 64)
	var wg sync.WaitGroup
	go func() {
		defer close(order)
		defer close(work)
		for _, rel := range need {
			it := &item{rel: rel, ready: make(chan struct{}), fd: -1}
			select {
			case order <- it:
			case <-ctx.Done():
				return
			}
			work <- it
		}
	}()
	for range readers {
		wg.Go(func() {
			for it := range work {
				if ctx.Err() == nil {
					readItem(srcfd, it)
				}
				close(it.ready)
			}
		})
	}
	defer func() {
		cancel()
		for it := range order {
			<-it.ready
			if it.fd >= 0 {
				unix.Close(it.fd)
			}
		}
		wg.Wait()
	}()

	for it := range order {
		select {
		case <-it.ready:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		err := sendItem(rw, it, opt, &st)
		if it.fd >= 0 {
			unix.Close(it.fd)
			it.fd = -1
		}
		if err != nil {
			return st, err
		}
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}

	// The folders, as they are now: names added or removed while the
	// files went changed their mtimes.
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Kind != tree.Dir {
			continue
		}
		dm := meta{mode: e.Mode, uid: e.UID, gid: e.GID, atime: e.ATime, mtime: e.MTime}
		if fd, err := openBeneath(srcfd, e.Path, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
			if s, err := fstat(fd); err == nil {
				dm = statMeta(&s)
			}
			unix.Close(fd)
		}
		if err := rw.dir(e.Path, dm); err != nil {
			return st, err
		}
	}
	if err := rw.end(st.Files, st.Bytes); err != nil {
		return st, err
	}
	if err := bw.Close(); err != nil {
		return st, err
	}
	return st, nil
}

func statMeta(s *unix.Stat_t) meta {
	return meta{mode: s.Mode & 0o7777, uid: s.Uid, gid: s.Gid, atime: s.Atim.Nano(), mtime: s.Mtim.Nano(), size: s.Size}
}

// readItem opens a file and, if it is small, reads it whole. Its metadata
// are taken before its contents: a file that changes meanwhile gets a
// copy whose mtime differs, which a verify sees.
func readItem(srcfd int, it *item) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := openBeneath(srcfd, it.rel, flags|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = openBeneath(srcfd, it.rel, flags)
	}
	if err != nil {
		if gone(err) {
			it.vanished = true
			return
		}
		it.err = fmt.Errorf("send %s: open: %w", quote(it.rel), err)
		return
	}
	s, err := fstat(fd)
	if err != nil {
		unix.Close(fd)
		it.err = fmt.Errorf("send %s: stat: %w", quote(it.rel), err)
		return
	}
	switch s.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		it.vanished = true // replaced by a folder since the scan
		return
	default:
		unix.Close(fd)
		it.err = fmt.Errorf("send %s: %w", quote(it.rel), tree.ErrSpecial)
		return
	}
	it.m = statMeta(&s)
	if s.Size > smallFile {
		it.fd = fd
		return
	}
	defer unix.Close(fd)
	buf := make([]byte, s.Size)
	n := 0
	for {
		if n == len(buf) {
			// It grew: read on, in steps.
			buf = append(buf, make([]byte, 64<<10)...)
		}
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			it.err = fmt.Errorf("send %s: read: %w", quote(it.rel), err)
			return
		}
		if k == 0 {
			break
		}
		n += k
	}
	it.data = buf[:n]
}

func sendItem(rw *recWriter, it *item, opt SendOptions, st *SendStats) error {
	if it.err != nil {
		return it.err
	}
	if it.vanished {
		if opt.Mode == host.CopyFresh {
			return fmt.Errorf("send %s: %w", quote(it.rel), tree.ErrVanished)
		}
		st.Vanished = append(st.Vanished, it.rel)
		return rw.vanished(it.rel)
	}
	if err := rw.fileHeader(it.rel, it.m); err != nil {
		return err
	}
	var n int64
	if it.fd < 0 {
		for off := 0; off < len(it.data); off += maxChunk {
			if err := rw.chunk(it.data[off:min(off+maxChunk, len(it.data))]); err != nil {
				return err
			}
		}
		n = int64(len(it.data))
		if opt.Progress != nil && n > 0 {
			opt.Progress(n)
		}
	} else {
		buf := make([]byte, 256<<10)
		for {
			k, err := unix.Read(it.fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("send %s: read: %w", quote(it.rel), err)
			}
			if k == 0 {
				break
			}
			if err := rw.chunk(buf[:k]); err != nil {
				return err
			}
			n += int64(k)
			if opt.Progress != nil {
				opt.Progress(int64(k))
			}
		}
	}
	if err := rw.chunk(nil); err != nil {
		return err
	}
	st.Files++
	st.Bytes += n
	return nil
}
