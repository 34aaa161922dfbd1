package xfer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/time/rate"
)

// Compression settings of a stream.
const (
	CompressAuto = "auto" // per block, when it pays (see blockWriter)
	CompressZstd = "zstd" // every block that shrinks
	CompressNone = "none"
)

// CheckCompress validates a compression setting.
func CheckCompress(s string) error {
	switch s {
	case CompressAuto, CompressZstd, CompressNone:
		return nil
	}
	return fmt.Errorf("compress %q: want auto, zstd or none", s)
}

// blockSize is how much of the record stream one block carries.
const (
	blockSize    = 256 << 10
	maxBlockSize = 1 << 20 // what a reader accepts
)

const (
	blockRaw  = 'r'
	blockZstd = 'z'
)

// blockWriter cuts the record stream into blocks, each sent raw or
// compressed with zstd.
//
// With CompressAuto it compresses a block when that makes the stream
// faster: sending B bytes raw takes B/net; compressing first takes
// B/comp + r·B/net, where comp is the compressor's speed and r the
// ratio it achieves. So it pays when net < comp·(1−r). net, comp and r
// are measured as the stream goes (moving averages), and compression is
// tried again every so often while it is off, since the data may change.
// On a fast link (loopback, 10 Gbit/s) mail goes raw; on a slow one, or
// under --bwlimit, it goes compressed.
type blockWriter struct {
	w    io.Writer
	mode string
	enc  *zstd.Encoder
	buf  []byte
	out  []byte
	hdr  [1 + 2*binary.MaxVarintLen64]byte

	blocks, zblocks int
	wire            int64   // bytes written to w
	net, comp, r    float64 // estimates: bytes/s on the wire, bytes/s compressing, compressed/raw
	lastZ           bool
}

func newBlockWriter(w io.Writer, mode string) (*blockWriter, error) {
	bw := &blockWriter{w: w, mode: mode, buf: make([]byte, 0, blockSize)}
	if mode != CompressNone {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		// The first use sets up the encoder's tables: not a fair measure
		// of its speed, so get it over with.
		enc.EncodeAll(make([]byte, 4<<10), nil)
		bw.enc = enc
	}
	return bw, nil
}

func (bw *blockWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), blockSize-len(bw.buf))
		bw.buf = append(bw.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(bw.buf) == blockSize {
			if err := bw.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func ewma(old, v float64) float64 {
	if old == 0 {
		return v
	}
	return 0.7*old + 0.3*v
}

// wantZstd decides how the next block goes.
func (bw *blockWriter) wantZstd() bool {
	switch bw.mode {
	case CompressNone:
		return false
	case CompressZstd:
		return true
	}
	switch {
	case bw.blocks == 0:
		return true // a first measure of comp and r
	case bw.blocks == 1:
		return false // and of the wire raw
	case !bw.lastZ && bw.blocks%32 == 0:
		return true // look again
	}
	return bw.r < 0.95 && bw.net < bw.comp*(1-bw.r)
}

// flush sends what is buffered as one block.
func (bw *blockWriter) flush() error {
	if len(bw.buf) == 0 {
		return nil
	}
	raw := bw.buf
	kind, payload := byte(blockRaw), raw
	bw.lastZ = false
	if bw.wantZstd() {
		t := time.Now()
		bw.out = bw.enc.EncodeAll(raw, bw.out[:0])
		if d := time.Since(t).Seconds(); d > 0 {
			bw.comp = ewma(bw.comp, float64(len(raw))/d)
		}
		bw.r = ewma(bw.r, float64(len(bw.out))/float64(len(raw)))
		if len(bw.out) < len(raw) {
			kind, payload = blockZstd, bw.out
			bw.lastZ = true
			bw.zblocks++
		}
	}
	h := bw.hdr[:0]
	h = append(h, kind)
	h = binary.AppendUvarint(h, uint64(len(raw)))
	h = binary.AppendUvarint(h, uint64(len(payload)))
	t := time.Now()
	if _, err := bw.w.Write(h); err != nil {
		return err
	}
	if _, err := bw.w.Write(payload); err != nil {
		return err
	}
	if d := time.Since(t).Seconds(); d > 0 {
		bw.net = ewma(bw.net, float64(len(payload)+len(h))/d)
	}
	bw.wire += int64(len(h) + len(payload))
	bw.blocks++
	bw.buf = bw.buf[:0]
	return nil
}

// Close flushes the last block.
func (bw *blockWriter) Close() error {
	err := bw.flush()
	if bw.enc != nil {
		bw.enc.Close()
	}
	return err
}

// blockReader reads what a blockWriter wrote.
type blockReader struct {
	r   *bufio.Reader
	dec *zstd.Decoder
	cur []byte
	raw []byte
	in  []byte
}

func newBlockReader(r io.Reader) (*blockReader, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*maxBlockSize),
		zstd.WithDecoderMaxWindow(maxBlockSize))
	if err != nil {
		return nil, err
	}
	return &blockReader{r: bufio.NewReaderSize(r, 64<<10), dec: dec}, nil
}

var errBadBlock = errors.New("bad block in the stream")

func (br *blockReader) Read(p []byte) (int, error) {
	for len(br.cur) == 0 {
		if err := br.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, br.cur)
	br.cur = br.cur[n:]
	return n, nil
}

func (br *blockReader) next() error {
	kind, err := br.r.ReadByte()
	if err != nil {
		return err // io.EOF between blocks: the stream ended here
	}
	rawLen, err := binary.ReadUvarint(br.r)
	if err != nil {
		return unexpected(err)
	}
	n, err := binary.ReadUvarint(br.r)
	if err != nil {
		return unexpected(err)
	}
	if rawLen > maxBlockSize || n > maxBlockSize || rawLen == 0 {
		return fmt.Errorf("%w: sizes %d, %d", errBadBlock, rawLen, n)
	}
	if cap(br.in) < int(n) {
		br.in = make([]byte, n)
	}
	in := br.in[:n]
	if _, err := io.ReadFull(br.r, in); err != nil {
		return unexpected(err)
	}
	switch kind {
	case blockRaw:
		if n != rawLen {
			return fmt.Errorf("%w: raw block of %d bytes says %d", errBadBlock, n, rawLen)
		}
		br.cur = in
	case blockZstd:
		out, err := br.dec.DecodeAll(in, br.raw[:0])
		if err != nil {
			return fmt.Errorf("%w: %v", errBadBlock, err)
		}
		if uint64(len(out)) != rawLen {
			return fmt.Errorf("%w: block decodes to %d bytes, says %d", errBadBlock, len(out), rawLen)
		}
		br.raw = out
		br.cur = out
	default:
		return fmt.Errorf("%w: kind %q", errBadBlock, kind)
	}
	return nil
}

func (br *blockReader) Close() { br.dec.Close() }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// limitWriter holds writes to a rate.
type limitWriter struct {
	ctx context.Context
	w   io.Writer
	l   *rate.Limiter
}

func (lw limitWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		if b := lw.l.Burst(); b > 0 {
			k = min(k, b)
		}
		if err := lw.l.WaitN(lw.ctx, k); err != nil {
			return n, err
		}
		m, err := lw.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}
