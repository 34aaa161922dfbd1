package dovelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// File is one log file of a stream.
type File struct {
	Name string
	// Open returns the file's text (decompressed). Scan closes it.
	Open func() (io.ReadCloser, error)
	// Ref anchors dates without a year (see NewParser): the file's mtime.
	Ref time.Time
}

// Stream is one host's log: its files, oldest first (dovecot.log.2.gz,
// dovecot.log.1, dovecot.log). Open sessions carry over from one file to
// the next.
type Stream struct {
	Name  string
	Files []File
	// Events, if set instead of Files, are the stream already read, in
	// time order (sessions from another source).
	Events []Event
}

// ScanOptions tune Scan.
type ScanOptions struct {
	Loc       *time.Location // zone of timestamps that have none; nil: UTC
	Workers   int            // parsing goroutines per stream; 0: GOMAXPROCS
	BlockSize int            // bytes parsed at a time; 0: 1 MiB
	Examples  int            // malformed lines to keep as examples; 0: 5
}

// LineProblem is a malformed line, named by file and line.
type LineProblem struct {
	File   string
	Line   int64
	Reason string
	Text   string // the start of the line
}

func (l LineProblem) String() string {
	return fmt.Sprintf("%s:%d: %s: %q", l.File, l.Line, l.Reason, l.Text)
}

// Report says what Scan read.
type Report struct {
	Files     int
	Lines     int64
	Bytes     int64
	ByKind    [NumKinds]int64
	Malformed []LineProblem // the first few
	Empty     []string      // files that held nothing (after unpacking)

	// First and Last are the earliest and latest times of the lines read
	// (zero if no line had one); InWindow counts the lines whose time is
	// within the pairer's window.
	First, Last time.Time
	InWindow    int64
}

// span widens the report's time span to take in [lo, hi] (Unix ns).
func (r *Report) span(lo, hi int64) {
	if r.First.IsZero() || lo < r.First.UnixNano() {
		r.First = time.Unix(0, lo).UTC()
	}
	if r.Last.IsZero() || hi > r.Last.UnixNano() {
		r.Last = time.Unix(0, hi).UTC()
	}
}

// Add sums another report into r.
func (r *Report) Add(o Report, examples int) {
	r.Files += o.Files
	r.Lines += o.Lines
	r.Bytes += o.Bytes
	for i := range r.ByKind {
		r.ByKind[i] += o.ByKind[i]
	}
	for _, m := range o.Malformed {
		if len(r.Malformed) < examples {
			r.Malformed = append(r.Malformed, m)
		}
	}
	r.Empty = append(r.Empty, o.Empty...)
	if !o.First.IsZero() {
		r.span(o.First.UnixNano(), o.Last.UnixNano())
	}
	r.InWindow += o.InWindow
}

// Scan reads every stream, parsing blocks of each in parallel, merges the
// streams' events by time and feeds them to pr, stream i as source i. It
// ends every source (EndSource) when its lines run out. A file that cannot
// be opened or read stops the scan with an error naming it; bad lines
// never do.
func Scan(ctx context.Context, streams []Stream, pr *Pairer, opt ScanOptions) (Report, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.BlockSize <= 0 {
		opt.BlockSize = 1 << 20
	}
	if opt.Examples <= 0 {
		opt.Examples = 5
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	heads := make([]*cursor, len(streams))
	win := window{pr.since, pr.until}
	for i := range streams {
		heads[i] = startStream(ctx, &wg, &streams[i], opt, win)
	}
	defer func() {
		cancel()
		for _, c := range heads {
			c.drain()
		}
		wg.Wait()
	}()

	var rep Report
	// Prime every stream, then take the earliest event each time.
	live := make([]int, 0, len(heads))
	for i, c := range heads {
		ok, err := c.next(pr, i, &rep, opt)
		if err != nil {
			return rep, err
		}
		if ok {
			live = append(live, i)
		} else {
			pr.EndSource(i)
		}
	}
	h := mergeHeap{cur: heads, idx: live}
	h.init()
	n := 0
	var sink uint64
	for len(h.idx) > 0 {
		i := h.idx[0]
		c := heads[i]
		if c.pos >= c.fetched {
			c.fetched = min(c.pos+prefetchWindow, len(c.job.events))
			sink += pr.prefetch(c.job.events[c.pos:c.fetched])
		}
		pr.add(i, &c.job.events[c.pos])
		c.pos++
		if n++; n&0xffff == 0 && ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if c.pos < len(c.job.events) {
			h.fix0()
			continue
		}
		ok, err := c.next(pr, i, &rep, opt)
		if err != nil {
			return rep, err
		}
		if ok {
			h.fix0()
		} else {
			pr.EndSource(i)
			h.pop0()
		}
	}
	prefetchSink.Add(sink)
	return rep, ctx.Err()
}

// prefetchWindow is how many events' memory is touched ahead of pairing
// them: enough to overlap many cache misses, few enough to stay in cache.
const prefetchWindow = 256

var prefetchSink atomic.Uint64

// mergeHeap orders live streams by the time of their next event.
type mergeHeap struct {
	cur []*cursor
	idx []int
}

func (h *mergeHeap) less(a, b int) bool {
	ca, cb := h.cur[h.idx[a]], h.cur[h.idx[b]]
	ta, tb := ca.job.events[ca.pos].time, cb.job.events[cb.pos].time
	if ta != tb {
		return ta < tb
	}
	return h.idx[a] < h.idx[b]
}

func (h *mergeHeap) init() {
	for i := len(h.idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *mergeHeap) fix0() {
	if len(h.idx) > 1 {
		h.down(0)
	}
}

func (h *mergeHeap) pop0() {
	n := len(h.idx) - 1
	h.idx[0] = h.idx[n]
	h.idx = h.idx[:n]
	if n > 1 {
		h.down(0)
	}
}

func (h *mergeHeap) down(i int) {
	n := len(h.idx)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.idx[i], h.idx[m] = h.idx[m], h.idx[i]
		i = m
	}
}

// maxLine is the longest line read whole; a longer one is cut.
const maxLine = 16 << 20

// job is one block of a stream on its way through the parsers.
type job struct {
	file int
	data []byte
	err  error
	done chan struct{}

	events   []rec
	lines    int64
	minTime  int64
	maxTime  int64
	hasTime  bool
	inWindow int64
	byKind   [NumKinds]int64
	problems []blockProblem
}

// window is the pairer's window, for counting the lines within it.
type window struct{ since, until int64 }

type blockProblem struct {
	line   int64 // within the block, from 1
	reason string
	text   string
}

// cursor is the consumer's side of one stream.
type cursor struct {
	stream  *Stream
	order   chan *job
	free    chan *job
	job     *job
	pos     int
	fetched int // events up to here have been prefetched

	curFile  int
	lineBase int64
}

// next releases the current block and waits for the next one with
// events, accounting the blocks on the way. It reports false at the end
// of the stream.
func (c *cursor) next(pr *Pairer, src int, rep *Report, opt ScanOptions) (bool, error) {
	for {
		if c.job != nil {
			c.recycle(c.job)
			c.job = nil
		}
		j, ok := <-c.order
		if !ok {
			return false, nil
		}
		<-j.done
		if j.err != nil {
			err := j.err
			c.recycle(j)
			return false, err
		}
		name := c.stream.Name
		if j.file < len(c.stream.Files) {
			name = c.stream.Files[j.file].Name
		}
		if j.file != c.curFile {
			c.curFile, c.lineBase = j.file, 0
			rep.Files++
			if len(j.data) == 0 && len(c.stream.Files) > 0 {
				rep.Empty = append(rep.Empty, name)
			}
		}
		for _, bp := range j.problems {
			if len(rep.Malformed) < opt.Examples {
				rep.Malformed = append(rep.Malformed, LineProblem{File: name, Line: c.lineBase + bp.line, Reason: bp.reason, Text: bp.text})
			}
		}
		c.lineBase += j.lines
		rep.Lines += j.lines
		rep.Bytes += int64(len(j.data))
		for k, n := range j.byKind {
			rep.ByKind[k] += n
		}
		if j.hasTime {
			pr.See(src, j.maxTime)
			if len(c.stream.Files) > 0 { // log lines, not sessions from elsewhere
				rep.span(j.minTime, j.maxTime)
			}
		}
		rep.InWindow += j.inWindow
		c.job, c.pos, c.fetched = j, 0, 0
		if len(j.events) > 0 {
			return true, nil
		}
	}
}

func (c *cursor) recycle(j *job) {
	if c.free == nil {
		return
	}
	select {
	case c.free <- j:
	default:
	}
}

// drain empties the order channel so the reader can stop.
func (c *cursor) drain() {
	if c.job != nil {
		c.recycle(c.job)
		c.job = nil
	}
	for j := range c.order {
		<-j.done
		c.recycle(j)
	}
}

func startStream(ctx context.Context, wg *sync.WaitGroup, s *Stream, opt ScanOptions, win window) *cursor {
	inflight := 2*opt.Workers + 2
	c := &cursor{stream: s, order: make(chan *job, inflight), free: make(chan *job, inflight+2), curFile: -1}
	if len(s.Files) == 0 {
		j := &job{done: make(chan struct{})}
		for i := range s.Events {
			ev := &s.Events[i]
			ev.hash()
			j.events = append(j.events, ev.rec())
			if !j.hasTime || ev.Time > j.maxTime {
				j.maxTime, j.hasTime = ev.Time, true
			}
		}
		close(j.done)
		c.order <- j
		close(c.order)
		c.free = nil // the events are the caller's: never reused
		return c
	}
	work := make(chan *job, inflight)
	for w := 0; w < opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := NewParser(opt.Loc, time.Time{})
			file := -1
			for j := range work {
				if j.file != file {
					file = j.file
					p.SetRef(s.Files[file].Ref)
				}
				parseBlock(p, j, opt.Examples, win)
				close(j.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(c.order)
		readStream(ctx, s, c, work, opt.BlockSize)
	}()
	return c
}

func (c *cursor) newJob(file, size int) *job {
	var j *job
	select {
	case j = <-c.free:
	default:
		j = &job{}
	}
	*j = job{file: file, data: j.data[:0], events: j.events[:0], problems: j.problems[:0], done: make(chan struct{})}
	if cap(j.data) < size {
		j.data = make([]byte, 0, size)
	}
	return j
}

// readStream cuts the stream's files into blocks of whole lines.
func readStream(ctx context.Context, s *Stream, c *cursor, work chan<- *job, size int) {
	send := func(j *job) bool {
		select {
		case c.order <- j:
		case <-ctx.Done():
			c.recycle(j) // never queued
			return false
		}
		if j.err != nil {
			close(j.done)
			return true
		}
		select {
		case work <- j:
			return true
		case <-ctx.Done():
			close(j.done)
			return false
		}
	}
	for fi := range s.Files {
		f := &s.Files[fi]
		rc, err := f.Open()
		if err != nil {
			j := c.newJob(fi, 0)
			j.err = fmt.Errorf("read log %s: %w", f.Name, err)
			send(j)
			return
		}
		var carry []byte
		eof := false
		sent := false
		for !eof {
			j := c.newJob(fi, size)
			buf := append(j.data[:0], carry...)
			cut := -1
			for cut < 0 {
				// Fill the block.
				for len(buf) < cap(buf) {
					n, err := rc.Read(buf[len(buf):cap(buf)])
					buf = buf[:len(buf)+n]
					if errors.Is(err, io.EOF) {
						eof = true
						break
					}
					if err != nil {
						rc.Close()
						j.err = fmt.Errorf("read log %s: %w", f.Name, err)
						send(j)
						return
					}
				}
				switch k := bytes.LastIndexByte(buf, '\n'); {
				case eof:
					cut = len(buf)
				case k >= 0:
					cut = k + 1
				case len(buf) >= maxLine:
					cut = len(buf) // a monster line is cut in two
				default: // a line longer than the block: grow it
					buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
				}
			}
			carry = append(carry[:0], buf[cut:]...)
			j.data = buf[:cut]
			if len(j.data) == 0 && (sent || !eof) {
				c.recycle(j)
				continue
			}
			// An empty file still sends one empty block, so that the
			// consumer can tell it was read and held nothing.
			sent = true
			if !send(j) {
				rc.Close()
				return
			}
		}
		rc.Close()
	}
}

// parseBlock parses the lines of one block into its job.
func parseBlock(p *Parser, j *job, examples int, win window) {
	var ev Event
	data := j.data
	for len(data) > 0 {
		var line []byte
		if k := bytes.IndexByte(data, '\n'); k >= 0 {
			line, data = data[:k], data[k+1:]
		} else {
			line, data = data, nil
		}
		j.lines++
		p.Parse(line, &ev)
		j.byKind[ev.Kind]++
		if ev.Time != 0 { // blank and malformed lines have no time
			if !j.hasTime {
				j.minTime, j.maxTime, j.hasTime = ev.Time, ev.Time, true
			}
			j.minTime = min(j.minTime, ev.Time)
			j.maxTime = max(j.maxTime, ev.Time)
			if ev.Time >= win.since && ev.Time <= win.until {
				j.inWindow++
			}
		}
		switch ev.Kind {
		case Login, End, Restart, ChildGone:
			j.events = append(j.events, ev.rec())
		case Malformed:
			if len(j.problems) < examples {
				text := line
				if len(text) > 120 {
					text = text[:120]
				}
				j.problems = append(j.problems, blockProblem{line: j.lines, reason: ev.Reason, text: string(text)})
			}
		}
	}
}
