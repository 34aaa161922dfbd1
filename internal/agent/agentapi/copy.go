package agentapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/agent/xfer"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// CopyTree copies a tree where one end or both are reached through
// agents: from agent to agent directly (the coordinator only tells the
// source to push, with a ticket the destination gave it), from this
// machine to an agent, or from an agent to this machine. A transfer cut
// short (a broken connection, an agent restarted) is started again with
// a new ticket, and resumes: only what the destination lacks is sent.
func (c *Client) CopyTree(ctx context.Context, t host.Transfer) (tree.Stats, error) {
	sc, srcRemote := t.Src.(*Client)
	dc, dstRemote := t.Dst.(*Client)
	p := c.pool
	p.mu.Lock()
	p.inflight++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	var once func(ctx context.Context, resume bool) (proto.Stats, error)
	switch {
	case srcRemote && dstRemote:
		once = func(ctx context.Context, resume bool) (proto.Stats, error) { return p.push(ctx, sc, dc, t, resume) }
	case dstRemote:
		l, ok := t.Src.(*host.Local)
		if !ok {
			return tree.Stats{}, fmt.Errorf("copy %s → %s: %T cannot send", t.Src.Name(), t.Dst.Name(), t.Src)
		}
		once = func(ctx context.Context, resume bool) (proto.Stats, error) { return p.upload(ctx, l, dc, t, resume) }
	case srcRemote:
		l, ok := t.Dst.(*host.Local)
		if !ok {
			return tree.Stats{}, fmt.Errorf("copy %s → %s: %T cannot receive", t.Src.Name(), t.Dst.Name(), t.Dst)
		}
		once = func(ctx context.Context, resume bool) (proto.Stats, error) { return p.download(ctx, sc, l, t, resume) }
	default:
		return tree.Stats{}, fmt.Errorf("copy %s → %s: neither end is an agent", t.Src.Name(), t.Dst.Name())
	}
	// The bytes of a copy resumed are those of every attempt: what a
	// failed attempt sent (its progress: content bytes, or the wire's
	// from an agent to here) and what the last one wrote. The resume
	// keeps what reached the destination, so this is what was copied; the
	// few bytes in flight when a stream broke may count twice.
	var earlier, moved atomic.Int64
	user := t.Progress
	t.Progress = func(n int64) {
		moved.Add(n)
		if user != nil {
			user(n)
		}
	}
	var err error
	var firstFail time.Time
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var st proto.Stats
		moved.Store(0)
		st, err = once(ctx, attempt > 1)
		if err == nil {
			st.Bytes += earlier.Load()
			return treeStats(st), nil
		}
		earlier.Add(moved.Load())
		if firstFail.IsZero() {
			firstFail = time.Now()
		}
		// Tried again for Attempts, and for no longer than RetryFor after
		// the first failure: an agent that hangs (each attempt waiting
		// for it) must not hold the move for Attempts times as long.
		if attempt >= p.opt.Attempts || time.Since(firstFail) > p.opt.RetryFor || !retryable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return tree.Stats{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
	return tree.Stats{}, fmt.Errorf("copy %s:%s → %s:%s: %w", t.Src.Name(), t.SrcPath, t.Dst.Name(), t.DstPath, err)
}

func retryable(err error) bool {
	return Unreachable(err) || proto.Retryable(err)
}

func treeStats(s proto.Stats) tree.Stats {
	return tree.Stats{Files: s.Files, Dirs: s.Dirs, Symlinks: s.Symlinks, HardLinks: s.HardLinks, Bytes: s.Bytes,
		Removed: s.Removed, Fixed: s.Fixed, Vanished: s.Vanished}
}

// share is this transfer's part of a limit that all transfers share:
// the limit split evenly among those under way when it starts. It is
// never more than the whole.
func (p *Pool) share(l *rate.Limiter) float64 {
	if l == nil {
		return 0
	}
	p.mu.Lock()
	n := max(p.inflight, 1)
	p.mu.Unlock()
	return float64(l.Limit()) / float64(n)
}

// announce asks dst for a ticket for a push from "from" ("" for this
// coordinator itself).
func (p *Pool) announce(ctx context.Context, dst *Client, from string, t host.Transfer, resume bool) (string, error) {
	f := url.Values{"from": {from}, "src": {t.SrcPath}, "dst": {t.DstPath}, "mode": {proto.ModeName(t.Mode)}}
	if resume {
		f.Set("resume", "1")
	}
	// Once: CopyTree tries the whole transfer again. A ticket is made at
	// once: an agent that does not answer in the idle period is gone (or
	// frozen, its connections still open).
	ctx, cancel := context.WithTimeout(ctx, p.opt.Idle)
	defer cancel()
	resp, err := dst.do(ctx, request{method: http.MethodPost, path: "/v1/imports", form: f, once: true})
	if err != nil {
		return "", fmt.Errorf("announce the import: %w", err)
	}
	defer resp.Body.Close()
	var tk proto.Ticket
	if err := json.NewDecoder(resp.Body).Decode(&tk); err != nil {
		return "", &netError{fmt.Errorf("announce the import: %w", err)}
	}
	return tk.Ticket, nil
}

// push has the source agent send the tree to the destination agent.
func (p *Pool) push(ctx context.Context, src, dst *Client, t host.Transfer, resume bool) (proto.Stats, error) {
	tk, err := p.announce(ctx, dst, src.name, t, resume)
	if err != nil {
		return proto.Stats{}, err
	}
	f := url.Values{"src": {t.SrcPath}, "dst": {t.DstPath}, "to": {dst.base}, "to_name": {dst.name}, "ticket": {tk},
		"mode": {proto.ModeName(t.Mode)}, "compress": {p.opt.Compress}}
	if r := p.share(t.Limit); r > 0 {
		f.Set("rate", strconv.FormatFloat(r, 'f', 0, 64))
	}
	// The source says something every half second, with the bytes sent
	// since. Only bytes moving count: a source whose lines say nothing
	// moves for the idle period is stuck (the destination frozen), and
	// silence means it, or the way to it, is gone without a word. The
	// scan and the plan must fit in the period too.
	ctx, touch, stop := idleCancel(ctx, p.opt.Idle)
	defer stop()
	resp, err := src.do(ctx, request{method: http.MethodPost, path: "/v1/push", form: f, once: true})
	if err != nil {
		return proto.Stats{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var l proto.PushLine
		err := dec.Decode(&l)
		if err != nil {
			return proto.Stats{}, &netError{fmt.Errorf("agent %s: the push's answer ended early: %w", src.name, err)}
		}
		if l.Bytes > 0 {
			touch()
			if t.Progress != nil {
				t.Progress(l.Bytes)
			}
		}
		if l.Error != nil {
			return proto.Stats{}, l.Error.Err(src.name)
		}
		if l.Stats != nil {
			return *l.Stats, nil
		}
	}
}

// upload sends a tree of a local host to an agent.
func (p *Pool) upload(ctx context.Context, src *host.Local, dst *Client, t host.Transfer, resume bool) (proto.Stats, error) {
	if _, err := src.RealPath(t.SrcPath); err != nil {
		return proto.Stats{}, err
	}
	m, err := xfer.ScanSource(ctx, src.FSRoot(), t.SrcPath)
	if err != nil {
		return proto.Stats{}, err
	}
	tk, err := p.announce(ctx, dst, "", t, resume)
	if err != nil {
		return proto.Stats{}, err
	}
	var mb bytes.Buffer
	m.WriteTo(&mb)
	resp, err := dst.do(ctx, request{method: http.MethodPost, path: "/v1/imports/plan",
		query: url.Values{"ticket": {tk}, "src": {t.SrcPath}, "dst": {t.DstPath}}, stream: &mb})
	if err != nil {
		return proto.Stats{}, err
	}
	tok := resp.Header.Get(proto.TokenHeader)
	need, err := xfer.ReadNeed(resp.Body)
	resp.Body.Close()
	if err != nil {
		return proto.Stats{}, &netError{err}
	}
	pr, pw := io.Pipe()
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The whole limit: this machine shares it with its other copies.
		_, serr = xfer.Send(ctx, src.FSRoot(), t.SrcPath, m, need, pw,
			xfer.SendOptions{Mode: t.Mode, Compress: p.opt.Compress, Limit: t.Limit, Progress: t.Progress})
		pw.Close()
	}()
	resp, err = dst.do(ctx, request{method: http.MethodPost, path: "/v1/imports/data", query: url.Values{"token": {tok}}, stream: pr})
	pr.CloseWithError(errors.New("the request ended"))
	<-done
	if serr != nil && !errors.Is(serr, io.ErrClosedPipe) && err == nil {
		resp.Body.Close()
		return proto.Stats{}, serr
	}
	if err != nil {
		if serr != nil && !Unreachable(err) {
			return proto.Stats{}, serr
		}
		return proto.Stats{}, err
	}
	defer resp.Body.Close()
	var st proto.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return proto.Stats{}, &netError{err}
	}
	return st, nil
}

// download brings a tree of an agent's host to a local host: this
// machine plans and receives, the agent sends.
func (p *Pool) download(ctx context.Context, src *Client, dst *host.Local, t host.Transfer, resume bool) (proto.Stats, error) {
	if _, err := dst.RealPath(t.DstPath); err != nil {
		return proto.Stats{}, err
	}
	m, err := src.Scan(ctx, t.SrcPath, false)
	if err != nil {
		return proto.Stats{}, err
	}
	rcv, err := xfer.Prepare(ctx, dst.FSRoot(), t.DstPath, m, xfer.ReceiveOptions{Mode: t.Mode, Resume: resume})
	if err != nil {
		return proto.Stats{}, err
	}
	defer rcv.Close()
	var mb bytes.Buffer
	m.WriteTo(&mb)
	var body bytes.Buffer
	body.Write(binary.AppendUvarint(nil, uint64(mb.Len())))
	body.Write(mb.Bytes())
	xfer.WriteNeed(&body, rcv.Need())
	q := url.Values{"src": {t.SrcPath}, "mode": {proto.ModeName(t.Mode)}, "compress": {p.opt.Compress}}
	if r := p.share(t.Limit); r > 0 {
		q.Set("rate", strconv.FormatFloat(r, 'f', 0, 64))
	}
	ctx, touch, stop := idleCancel(ctx, p.opt.Idle)
	defer stop()
	resp, err := src.do(ctx, request{method: http.MethodPost, path: "/v1/export", query: q, body: body.Bytes()})
	if err != nil {
		return proto.Stats{}, err
	}
	defer resp.Body.Close()
	in := io.Reader(&touchReader{r: resp.Body, touch: touch})
	if t.Progress != nil {
		in = &countReader{r: in, f: t.Progress}
	}
	st, err := rcv.Receive(ctx, in)
	if err != nil {
		var r *proto.Remote
		if errors.As(err, &r) {
			r.Host = src.name
			return proto.Stats{}, err
		}
		if connErr(err) {
			return proto.Stats{}, &netError{fmt.Errorf("from agent %s: %w", src.name, err)}
		}
		return proto.Stats{}, err
	}
	return proto.Stats{Files: st.Files, Dirs: st.Dirs, Symlinks: st.Symlinks, HardLinks: st.HardLinks, Bytes: st.Bytes,
		Removed: st.Removed, Fixed: st.Fixed, Vanished: st.Vanished}, nil
}

// connErr reports whether an error reading a stream is the connection's
// (cut, reset, ended early) rather than this machine's (a full disk).
func connErr(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &op) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed)
}

// idleLimit is how long a transfer may go without a byte moving, by
// default (Options.Idle).
const idleLimit = time.Minute

// idleCancel returns a context that ends when touch has not been called
// for d.
func idleCancel(ctx context.Context, d time.Duration) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(d, cancel)
	return ctx, func() { t.Reset(d) }, func() { t.Stop(); cancel() }
}

type touchReader struct {
	r     io.Reader
	touch func()
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.touch()
	}
	return n, err
}

// countReader tells of the bytes read (on the wire: the stream may be
// compressed), as progress.
type countReader struct {
	r io.Reader
	f func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.f(int64(n))
	}
	return n, err
}
