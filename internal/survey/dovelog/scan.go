package dovelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// File is one log file of a stream.
type File struct {
	Name string
	// Open returns the file's text (decompressed). Scan closes it.
	Open func() (io.ReadCloser, error)
	// Ref anchors dates without a year (see NewParser): the file's mtime.
	Ref time.Time
}

// Mapped is a log file's text already in memory (a mapped file): a
// File's Open may return one, and Scan then cuts it into blocks without
// copying them. Scan calls Release(off, n) once it no longer needs bytes
// [off, off+n), and Close when it returns; until then Bytes must stay
// readable. If the memory faults (a mapped file that shrank while it was
// read), Scan stops with an error naming the file.
type Mapped interface {
	io.ReadCloser
	Bytes() []byte
	Release(off, n int)
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
	Loc *time.Location // zone of timestamps that have none; nil: UTC
	// Workers is how many goroutines parse blocks, for all streams
	// together; 0: one less than GOMAXPROCS, at least one. The goroutine
	// that pairs parses too, whenever the block it needs next has not
	// been taken: pairing is the one part that cannot be shared out, so
	// it gets a processor of its own and never waits on a block no one
	// is parsing.
	Workers   int
	BlockSize int // bytes parsed at a time; 0: 1 MiB
	Examples  int // malformed lines to keep as examples; 0: 5
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
func Scan(ctx context.Context, streams []Stream, pr *Pairer, opt ScanOptions) (rep Report, err error) {
	if opt.Workers <= 0 {
		opt.Workers = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if opt.BlockSize <= 0 {
		opt.BlockSize = 1 << 20
	}
	if opt.Examples <= 0 {
		opt.Examples = 5
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	win := window{pr.since, pr.until}
	pl := newPool(opt, win, pr.byHash, pr.opt.Normalize)
	heads := make([]*cursor, len(streams))
	for i := range streams {
		heads[i] = newCursor(ctx, &streams[i], opt, pl)
	}
	var helpers sync.WaitGroup
	for range opt.Workers {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			pl.help()
		}()
	}
	defer func() {
		pl.close()
		helpers.Wait()
		for _, c := range heads {
			c.close()
		}
	}()
	// Pairing reads user names in the blocks, which may be in a mapped
	// file: a fault there is an error too.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if f := faulted(recover()); f != nil {
			err = shrankAt(heads, f)
		}
	}()

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
		pr.named = c.job.named
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
	name string    // the file's
	ref  time.Time // the file's year anchor
	data []byte    // the block: in buf, or in a mapped file
	buf  []byte    // the job's own buffer, kept for the next block
	err  error

	mapped Mapped // the file data is in, if mapped; at offset off
	off    int
	done   chan struct{} // closed once parsed

	// claimed: someone (a helper or the consumer) parses it; guarded by
	// the feed's lock.
	claimed bool
	// state (atomic): parsing, then parsed; or left, when the consumer
	// stopped waiting for the helper and parsed a copy: the helper then
	// recycles the block. taken is when a helper took it (Unix ns).
	state int32
	taken int64
	feed  *feed

	events   []rec
	named    []named // Normalize's answers, for events[…].named
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

// A stream's blocks are read on demand, by whoever needs one first: a
// helper goroutine that has nothing to parse reads the next block ahead of
// the consumer and parses it; the consumer (the goroutine that pairs),
// when the block it needs next is not there, reads it itself, and when it
// is there but no helper has taken it, parses it itself. So the consumer,
// which alone can pair, never sleeps waiting for a block that no one is
// working on, nor for a reader or a parser the system has not scheduled:
// on a busy machine every hand-off that sleeps costs a wait in the run
// queue.

// pool is the helpers' side: the streams' feeds, and a way to wait for
// work.
type pool struct {
	feeds    []*feed
	examples int
	win      window
	loc      *time.Location
	users    *userTable // the pairer's, where parsers look users up
	// normalize is the pairer's Normalize, asked by the parsers about
	// names they did not find.
	normalize func(string) (string, bool)

	psPerByte int64 // atomic: parsing time, picoseconds a byte

	mu     sync.Mutex
	cond   sync.Cond
	gen    uint64 // bumped whenever there may be new work
	closed bool
	next   int // feed to look at first
}

func newPool(opt ScanOptions, win window, users *userTable, normalize func(string) (string, bool)) *pool {
	pl := &pool{examples: opt.Examples, win: win, loc: opt.Loc, users: users, normalize: normalize}
	pl.cond.L = &pl.mu
	return pl
}

// poke tells waiting helpers there may be work.
func (pl *pool) poke() {
	pl.mu.Lock()
	pl.gen++
	pl.mu.Unlock()
	pl.cond.Signal()
}

func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	pl.mu.Unlock()
	pl.cond.Broadcast()
}

// help parses blocks, reading them first where needed, until the pool is
// closed.
func (pl *pool) help() {
	debug.SetPanicOnFault(true) // mapped files: see pool.parse
	p := NewParser(pl.loc, time.Time{})
	for {
		pl.mu.Lock()
		gen, closed, start := pl.gen, pl.closed, pl.next
		pl.next++
		pl.mu.Unlock()
		if closed {
			return
		}
		var j *job
		for k := range pl.feeds {
			if j = pl.feeds[(start+k)%len(pl.feeds)].work(); j != nil {
				break
			}
		}
		if j != nil {
			pl.parse(p, j)
			continue
		}
		pl.mu.Lock()
		for pl.gen == gen && !pl.closed {
			pl.cond.Wait()
		}
		pl.mu.Unlock()
	}
}

// States of a job a helper parses.
const (
	jobParsing int32 = iota
	jobParsed
	jobLeft
)

// parse parses j with p (set to j's file) and marks it done. A block of
// a mapped file that faults gives an error instead.
func (pl *pool) parse(p *Parser, j *job) {
	start := time.Now()
	defer func() {
		if atomic.CompareAndSwapInt32(&j.state, jobParsing, jobParsed) {
			pl.learn(len(j.data), time.Since(start))
			close(j.done)
			return
		}
		// The consumer parsed a copy and left this one.
		j.mapped = nil
		j.feed.recycle(j)
	}()
	if j.mapped != nil {
		defer func() {
			if err := faulted(recover()); err != nil {
				j.err = shrank(j.name)
			}
		}()
	}
	p.use(j.ref)
	parseBlock(p, j, pl.examples, pl.win, finder{slots: pl.users.cur.Load(), normalize: pl.normalize})
}

// learn keeps a running mean of the time parsing takes a byte.
func (pl *pool) learn(n int, d time.Duration) {
	if n < 4096 {
		return
	}
	ps := d.Nanoseconds() * 1000 / int64(n)
	old := atomic.LoadInt64(&pl.psPerByte)
	if old == 0 {
		atomic.StoreInt64(&pl.psPerByte, ps)
		return
	}
	atomic.StoreInt64(&pl.psPerByte, old+(ps-old)/8)
}

// expect is how long parsing n bytes should take.
func (pl *pool) expect(n int) time.Duration {
	ps := atomic.LoadInt64(&pl.psPerByte)
	if ps == 0 {
		ps = 5000 // 5 ns a byte, until measured
	}
	return time.Duration(ps * int64(n) / 1000)
}

// faulted turns the panic of a memory fault (debug.SetPanicOnFault) into
// an error; any other panic goes on.
func faulted(r any) error {
	if r == nil {
		return nil
	}
	if err, ok := r.(interface {
		error
		Addr() uintptr
	}); ok {
		return err
	}
	panic(r)
}

// shrankAt names the mapped file a fault was in.
func shrankAt(heads []*cursor, fault error) error {
	addr := fault.(interface{ Addr() uintptr }).Addr()
	for _, c := range heads {
		if c.feed == nil {
			continue
		}
		for _, m := range c.feed.maps {
			if b := m.m.Bytes(); len(b) > 0 {
				lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
				if addr >= lo && addr < lo+uintptr(len(b)) {
					return shrank(m.name)
				}
			}
		}
	}
	return fmt.Errorf("read logs: %w", fault)
}

func shrank(name string) error {
	return fmt.Errorf("read log %s: the file shrank while it was read (truncated by a log rotation?)", name)
}

// feed reads one stream's files into blocks of whole lines, on demand.
// One goroutine reads at a time (rmu), outside the lock on the queue
// (mu), so that the consumer can take a block that is ready while a
// helper reads (or unpacks) the next.
type feed struct {
	ctx   context.Context
	s     *Stream
	size  int
	ahead int // most blocks read and not yet taken by the consumer

	mu    sync.Mutex
	q     []*job // read and not yet taken, in order
	free  []*job
	ended bool // nothing more to read

	rmu   sync.Mutex    // held while reading; guards what follows
	fi    int           // the file being read
	rc    io.ReadCloser // open, or nil
	carry []byte        // the start of a line, read with the last block
	gave  bool          // the file being read gave a block
	off   int           // in the file being read, if mapped
	maps  []mapping     // mapped files read so far, closed at the end
}

type mapping struct {
	m    Mapped
	name string
}

// work gives a helper a block to parse: the oldest one read that no one
// has taken, or else a new one if the feed may read ahead and no one else
// is reading; nil if none.
func (f *feed) work() *job {
	f.mu.Lock()
	for _, j := range f.q {
		if !j.claimed {
			j.claimed = true
			j.taken = time.Now().UnixNano()
			f.mu.Unlock()
			return j
		}
	}
	full := f.ended || len(f.q) >= f.ahead
	f.mu.Unlock()
	if full || !f.rmu.TryLock() {
		return nil
	}
	defer f.rmu.Unlock()
	f.mu.Lock()
	full = f.ended || len(f.q) >= f.ahead
	f.mu.Unlock()
	if full {
		return nil
	}
	j := f.read()
	if j == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.q = append(f.q, j)
	if j.err != nil {
		return nil // the consumer will meet it
	}
	j.claimed = true
	j.taken = time.Now().UnixNano()
	return j
}

// take gives the consumer the next block, reading it if no one has, and
// says whether the consumer must parse it (no helper took it); nil at the
// end of the stream.
func (f *feed) take() (j *job, mine bool) {
	for {
		f.mu.Lock()
		if len(f.q) > 0 {
			j = f.q[0]
			copy(f.q, f.q[1:])
			f.q[len(f.q)-1] = nil
			f.q = f.q[:len(f.q)-1]
			mine = !j.claimed && j.err == nil
			j.claimed = true
			f.mu.Unlock()
			return j, mine
		}
		ended := f.ended
		f.mu.Unlock()
		if ended {
			return nil, false
		}
		// Read it here, unless a helper is reading it now: then wait for
		// it and look again.
		f.rmu.Lock()
		f.mu.Lock()
		n, ended := len(f.q), f.ended
		f.mu.Unlock()
		if n == 0 && !ended {
			if j := f.read(); j != nil {
				f.mu.Lock()
				f.q = append(f.q, j)
				f.mu.Unlock()
			}
		}
		f.rmu.Unlock()
	}
}

func (f *feed) recycle(j *job) {
	if j.mapped != nil {
		j.mapped.Release(j.off, len(j.data))
		j.mapped = nil
	}
	f.mu.Lock()
	if len(f.free) < f.ahead+1 {
		f.free = append(f.free, j)
	}
	f.mu.Unlock()
}

func (f *feed) newJob(file, size int) *job {
	f.mu.Lock()
	var j *job
	if n := len(f.free); n > 0 {
		j, f.free = f.free[n-1], f.free[:n-1]
	} else {
		j = &job{}
	}
	f.mu.Unlock()
	*j = job{file: file, buf: j.buf[:0], events: j.events[:0], named: j.named[:0], problems: j.problems[:0], done: make(chan struct{}), feed: f}
	if cap(j.buf) < size {
		j.buf = make([]byte, 0, size)
	}
	return j
}

// read reads the next block and returns it; nil at the end of the stream.
// A file that cannot be opened or read gives a block with the error, and
// ends the feed. f.rmu is held.
func (f *feed) read() *job {
	for {
		if err := f.ctx.Err(); err != nil {
			return f.fail(err)
		}
		if f.fi >= len(f.s.Files) {
			f.end()
			return nil
		}
		file := &f.s.Files[f.fi]
		if f.rc == nil {
			rc, err := file.Open()
			if err != nil {
				return f.fail(fmt.Errorf("read log %s: %w", file.Name, err))
			}
			f.rc, f.carry, f.gave, f.off = rc, f.carry[:0], false, 0
			if m, ok := rc.(Mapped); ok {
				f.maps = append(f.maps, mapping{m, file.Name})
			}
		}
		if m, ok := f.rc.(Mapped); ok {
			j, err := f.cut(m)
			if err != nil {
				return f.fail(err)
			}
			if j == nil {
				continue // an empty file's end, after its empty block
			}
			return j
		}
		j := f.newJob(f.fi, f.size)
		j.name, j.ref = file.Name, file.Ref
		buf := append(j.buf[:0], f.carry...)
		eof := false
		cut := -1
		for cut < 0 {
			for len(buf) < cap(buf) {
				n, err := f.rc.Read(buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+n]
				if errors.Is(err, io.EOF) {
					eof = true
					break
				}
				if err != nil {
					return f.fail(fmt.Errorf("read log %s: %w", file.Name, err))
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
		f.carry = append(f.carry[:0], buf[cut:]...)
		j.buf, j.data = buf, buf[:cut]
		if eof {
			f.rc.Close()
			f.rc = nil
			f.fi++
		}
		// An empty file still gives one empty block, so that the consumer
		// can tell it was read and held nothing.
		if len(j.data) == 0 && f.gave {
			f.recycle(j)
			continue
		}
		f.gave = true
		return j
	}
}

// cut takes the next block of a mapped file; nil when there is none
// (an empty file gives one empty block). f.rmu is held.
func (f *feed) cut(m Mapped) (j *job, err error) {
	fi := f.fi
	file := &f.s.Files[fi]
	defer func() {
		if faulted(recover()) != nil {
			j, err = nil, shrank(file.Name)
		}
	}()
	all := m.Bytes()
	start := f.off
	end := min(start+f.size, len(all))
	if end < len(all) {
		if k := bytes.IndexByte(all[end:], '\n'); k >= 0 && k < maxLine {
			end += k + 1
		} else {
			end = min(end+maxLine, len(all)) // a monster line is cut
		}
	}
	f.off = end
	if end == len(all) {
		// Closed with the others when Scan returns: its blocks may be
		// in use until then.
		f.rc = nil
		f.fi++
	}
	if start == end && f.gave {
		return nil, nil
	}
	f.gave = true
	j = f.newJob(fi, 0)
	j.name, j.ref = file.Name, file.Ref
	j.data, j.mapped, j.off = all[start:end], m, start
	return j, nil
}

func (f *feed) end() {
	f.mu.Lock()
	f.ended = true
	f.mu.Unlock()
}

// fail returns a block that carries err and ends the feed. f.rmu is held.
func (f *feed) fail(err error) *job {
	if _, mapped := f.rc.(Mapped); f.rc != nil && !mapped {
		f.rc.Close()
	}
	f.rc = nil
	f.end()
	j := &job{file: f.fi, err: err, done: make(chan struct{}), claimed: true} // nothing to parse
	close(j.done)
	return j
}

// cursor is the consumer's side of one stream.
type cursor struct {
	stream  *Stream
	feed    *feed // nil for a stream of events
	events  *job  // the events of such a stream, until taken
	pl      *pool
	parser  *Parser // for the blocks the consumer parses itself
	job     *job
	pos     int
	fetched int // events up to here have been prefetched

	curFile  int
	lineBase int64
}

func newCursor(ctx context.Context, s *Stream, opt ScanOptions, pl *pool) *cursor {
	c := &cursor{stream: s, pl: pl, curFile: -1}
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
		c.events = j
		return c
	}
	c.feed = &feed{ctx: ctx, s: s, size: opt.BlockSize, ahead: opt.Workers + 2}
	pl.feeds = append(pl.feeds, c.feed)
	return c
}

// take returns the stream's next block, parsed; nil at its end.
func (c *cursor) take() *job {
	if c.feed == nil {
		j := c.events
		c.events = nil
		return j
	}
	j, mine := c.feed.take()
	if j == nil {
		return nil
	}
	c.pl.poke() // room to read ahead
	if mine {
		c.pl.parse(c.ownParser(), j)
		return j
	}
	return c.await(j)
}

// The consumer waits for a helper twice as long as parsing the block
// should take, and 200µs more (tests change these).
var (
	awaitSlack time.Duration = 2
	awaitGrace               = 200 * time.Microsecond
)

func (c *cursor) ownParser() *Parser {
	if c.parser == nil {
		c.parser = NewParser(c.pl.loc, time.Time{})
	}
	return c.parser
}

// await waits for a helper to parse j, but not for much longer than
// parsing takes: a helper that the system has stopped running (on a busy
// machine, for many milliseconds at a time) would stop the pairing with
// it. Then the consumer parses a copy itself, and leaves j to the helper.
// It waits by polling, not sleeping, since to wake from a sleep takes as
// long on a busy machine.
func (c *cursor) await(j *job) *job {
	// (A block with a read error is done already. j.err is not to be
	// read here: a helper sets it when the block faults.)
	select {
	case <-j.done:
		return j
	default:
	}
	deadline := j.taken + int64(awaitSlack*c.pl.expect(len(j.data))+awaitGrace)
	for spins := 0; ; spins++ {
		select {
		case <-j.done:
			return j
		default:
		}
		// Rather than wait, parse a later block no one has taken: the
		// time is not lost, and on a machine with few processors the
		// helper would otherwise share one with a goroutine that does
		// nothing. The time it takes is not the helper's to answer for.
		if w := c.feed.work(); w != nil {
			t0 := time.Now().UnixNano()
			c.pl.parse(c.ownParser(), w)
			deadline += time.Now().UnixNano() - t0
			continue
		}
		if spins&15 == 15 && time.Now().UnixNano() > deadline {
			break
		}
		runtime.Gosched()
	}
	// The copy is made first: once left, j is the helper's to recycle.
	s := c.feed.newJob(j.file, 0)
	s.name, s.ref, s.mapped, s.off = j.name, j.ref, j.mapped, j.off
	if j.mapped != nil {
		s.data = j.data
	} else {
		// j's buffer goes back to the feed with j: copy the block.
		s.buf = append(s.buf[:0], j.data...)
		s.data = s.buf
	}
	if !atomic.CompareAndSwapInt32(&j.state, jobParsing, jobLeft) {
		s.mapped = nil
		c.feed.recycle(s)
		<-j.done // parsed just now
		return j
	}
	c.pl.parse(c.ownParser(), s)
	return s
}

// next releases the current block and takes the next one with events,
// accounting the blocks on the way. It reports false at the end of the
// stream.
func (c *cursor) next(pr *Pairer, src int, rep *Report, opt ScanOptions) (bool, error) {
	for {
		if c.job != nil {
			c.recycle(c.job)
			c.job = nil
		}
		j := c.take()
		if j == nil {
			return false, nil
		}
		if j.err != nil {
			return false, j.err
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
	if c.feed != nil {
		c.feed.recycle(j)
	}
}

// close closes the file being read, once no helper can read any more.
func (c *cursor) close() {
	if c.feed == nil {
		return
	}
	c.feed.rmu.Lock()
	if _, mapped := c.feed.rc.(Mapped); c.feed.rc != nil && !mapped {
		c.feed.rc.Close()
	}
	c.feed.rc = nil
	for _, m := range c.feed.maps {
		m.m.Close()
	}
	c.feed.maps = nil
	c.feed.rmu.Unlock()
	c.feed.end()
}

// parseBlock parses the lines of one block into its job, and has f find
// the users of its events a few at a time, while their lines are in the
// cache.
func parseBlock(p *Parser, j *job, examples int, win window, f finder) {
	found := 0 // events whose users f looked for
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
			if len(j.events)-found == finderBatch {
				f.find(j, found)
				found = len(j.events)
			}
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
	if found < len(j.events) {
		f.find(j, found)
	}
}

// finder looks the users of events up in the pairer's table, as far as
// the pairer had filled it when the block was taken, so that the pairer,
// which alone can fill it, does not have to. Of a name it does not find
// (most likely new) it asks normalize, if set, for the pairer, unless the
// event is an end the pairer can pair by its session id without its
// user.
type finder struct {
	slots     *userSlots
	normalize func(string) (string, bool)
}

// finderBatch is how many events a finder takes at a time: first every
// slot their lookups start at is touched (misses that overlap), then they
// are looked up (hits, as long as so few pages that their addresses stay
// cached too).
const finderBatch = 64

// find finds the users of the events of j from the one at lo on.
func (f finder) find(j *job, lo int) {
	recs := j.events[lo:]
	var sink uint64
	for i := range recs {
		if r := &recs[i]; r.kind == Login || r.kind == End {
			sink += f.slots.touch(r.userHash)
		}
	}
	for i := range recs {
		r := &recs[i]
		if r.kind != Login && r.kind != End {
			continue
		}
		r.uid = f.slots.get(r.userHash) + 1
		if r.uid == 0 && f.normalize != nil && (r.kind == Login || r.sid == 0) {
			j.named = append(j.named, ask(f.normalize, r.user))
			r.named = int32(len(j.named))
		}
	}
	if sink == 1 {
		prefetchSink.Add(1)
	}
}

// ask asks normalize about a log name without copying it first (the name
// is only read during the call), and keeps a copy of the answer.
func ask(normalize func(string) (string, bool), name []byte) named {
	norm, known := normalize(unsafe.String(unsafe.SliceData(name), len(name)))
	if !known {
		return named{}
	}
	norm = strings.Clone(norm) // it may be the name itself, in the block
	return named{name: norm, key: nameKey(norm), known: true}
}
