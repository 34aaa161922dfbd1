package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/agent/xfer"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

func (s *Server) peer(name string) *http.Client {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	c, ok := s.peers[name]
	if !ok {
		c = &http.Client{Transport: proto.NewTransport(s.opt.TLS, name)}
		s.peers[name] = c
	}
	return c
}

// netError marks an error of the connection to the other agent: the push
// may be taken up again.
type netError struct{ err error }

func (e netError) Error() string { return e.err.Error() }
func (e netError) Unwrap() error { return e.err }

// push sends a tree of this host to the agent of another, which the
// coordinator has told to expect it (the ticket). The answer is a line of
// JSON every half second with the bytes sent, then the outcome.
func (s *Server) push(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	src, err := s.pathParam(r, "src")
	if err != nil {
		return err
	}
	dst, to, toName, tk := param(r, "dst"), param(r, "to"), param(r, "to_name"), param(r, "ticket")
	if u, err := url.Parse(to); err != nil || u.Scheme != "https" || u.Host == "" {
		return badRequest("to %q: want the other agent's https:// URL", to)
	}
	if cluster.CheckUser(toName) != nil {
		return badRequest("to_name %q: not a host name", toName)
	}
	mode, err := proto.ParseMode(param(r, "mode"))
	if err != nil {
		return err
	}
	compress := param(r, "compress")
	if compress == "" {
		compress = xfer.CompressAuto
	}
	if err := xfer.CheckCompress(compress); err != nil {
		return badRequest("%v", err)
	}
	bps, err := strconv.ParseFloat(or(param(r, "rate"), "0"), 64)
	if err != nil || bps < 0 {
		return badRequest("rate %q", param(r, "rate"))
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var mu sync.Mutex
	line := func(l proto.PushLine) {
		mu.Lock()
		enc.Encode(l)
		rc.Flush()
		mu.Unlock()
	}
	var sent atomic.Int64
	var told int64 // under mu
	progress := func() proto.PushLine {
		n := sent.Load()
		l := proto.PushLine{Bytes: n - told}
		told = n
		return l
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				mu.Lock()
				l := progress()
				mu.Unlock()
				line(l) // an empty line keeps the connection known alive; only bytes count as progress
			}
		}
	}()
	st, err := s.pushTo(ctx, src, dst, strings.TrimSuffix(to, "/"), toName, tk, mode, compress, proto.Limiter(bps), func(n int64) { sent.Add(n) })
	cancel()
	<-ticking
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.transfers.WithLabelValues("push", outcome).Inc()
	if err != nil {
		var ne netError
		retry := errors.As(err, &ne) || proto.Retryable(err)
		s.logf("push %s to %s %s: %v (retry: %t)", src, toName, dst, err, retry)
		// With the bytes not told yet: a resumed copy counts them.
		last := progress()
		last.Error = &proto.Error{Code: proto.CodeOf(err), Message: proto.Redact(err.Error()), Retry: retry}
		line(last)
		return nil
	}
	s.logf("pushed %s to %s %s: %d files, %d bytes, %d on the wire", src, toName, dst, st.Files, st.Bytes, st.Wire)
	last := progress()
	last.Stats = &st
	line(last)
	return nil
}

func (s *Server) pushTo(ctx context.Context, src, dst, to, toName, tk string, mode host.CopyMode, compress string, lim *rate.Limiter, progress func(int64)) (proto.Stats, error) {
	m, err := xfer.ScanSource(ctx, s.opt.FSRoot, src)
	if err != nil {
		return proto.Stats{}, err
	}
	c := s.peer(toName)
	q := url.Values{"ticket": {tk}, "src": {src}, "dst": {dst}}
	var mb bytes.Buffer
	if _, err := m.WriteTo(&mb); err != nil {
		return proto.Stats{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to+"/v1/imports/plan?"+q.Encode(), &mb)
	if err != nil {
		return proto.Stats{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return proto.Stats{}, netError{fmt.Errorf("plan the import on %s: %w", toName, err)}
	}
	if err := proto.ReadError(resp, toName); err != nil {
		return proto.Stats{}, fmt.Errorf("plan the import on %s: %w", toName, err)
	}
	tok := resp.Header.Get(proto.TokenHeader)
	need, err := xfer.ReadNeed(resp.Body)
	resp.Body.Close()
	if err != nil {
		return proto.Stats{}, netError{fmt.Errorf("plan the import on %s: %w", toName, err)}
	}

	pr, pw := io.Pipe()
	var sst xfer.SendStats
	var serr error
	// The stream gives up when the destination takes no byte for the idle
	// period while there is something to send: a frozen agent (or a
	// network that drops everything) would hold the write, and the move,
	// for ever.
	dctx, dcancel := context.WithCancelCause(ctx)
	defer dcancel(nil)
	wd := &watchdog{r: pr}
	wd.last.Store(time.Now().UnixNano())
	stopWatch := wd.watch(dcancel, s.opt.Idle)
	defer stopWatch()
	ew := &errWriter{w: wd.writer(pw)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sst, serr = xfer.Send(dctx, s.opt.FSRoot, src, m, need, ew, xfer.SendOptions{Mode: mode, Compress: compress, Limit: lim, Progress: progress})
		pw.Close()
	}()
	req, err = http.NewRequestWithContext(dctx, http.MethodPost, to+"/v1/imports/data?"+url.Values{"token": {tok}}.Encode(), wd)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		return proto.Stats{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	pr.CloseWithError(errors.New("the request ended"))
	<-done
	s.metrics.bytesOut.Add(float64(sst.Bytes))
	s.metrics.wireOut.Add(float64(sst.Wire))
	if cause := context.Cause(dctx); errors.Is(cause, errStalled) {
		if resp != nil {
			resp.Body.Close()
		}
		return proto.Stats{}, netError{fmt.Errorf("stream to %s: %w", toName, cause)}
	}
	if serr != nil && ew.err == nil {
		// The sender failed here (a special file, a vanished one under a
		// hold): that is the error, not what the receiver made of it.
		if resp != nil {
			resp.Body.Close()
		}
		return proto.Stats{}, serr
	}
	if err != nil {
		return proto.Stats{}, netError{fmt.Errorf("stream to %s: %w", toName, err)}
	}
	defer resp.Body.Close()
	if err := proto.ReadError(resp, toName); err != nil {
		return proto.Stats{}, fmt.Errorf("stream to %s: %w", toName, err)
	}
	var out proto.Stats
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return proto.Stats{}, netError{fmt.Errorf("stream to %s: %w", toName, err)}
	}
	if ew.err != nil || serr != nil {
		return proto.Stats{}, netError{fmt.Errorf("stream to %s: %v", toName, errors.Join(ew.err, serr))}
	}
	out.Wire, out.Blocks, out.Zstd = sst.Wire, sst.Blocks, sst.Zstd
	return out, nil
}

// errStalled: the destination took no byte of the stream for the idle
// period.
var errStalled = errors.New("the other agent took no byte for the idle period (frozen, or the network drops everything)")

// watchdog watches a stream through a pipe: the sender's writes (pending
// says since when one waits) and the HTTP transport's reads of the body
// (each a sign the connection took bytes).
type watchdog struct {
	r       io.Reader
	last    atomic.Int64 // unix ns: the last read of the body, or the start of a write that waits
	pending atomic.Bool  // a write waits for the transport
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (w *watchdog) writer(pw io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		w.last.Store(time.Now().UnixNano())
		w.pending.Store(true)
		defer w.pending.Store(false)
		return pw.Write(p)
	})
}

// watch calls cancel(errStalled) when a write has waited for idle with
// no byte taken. The returned func stops watching.
func (w *watchdog) watch(cancel context.CancelCauseFunc, idle time.Duration) func() {
	stop := make(chan struct{})
	every := max(idle/8, 10*time.Millisecond)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				if w.pending.Load() && now.Sub(time.Unix(0, w.last.Load())) > idle {
					cancel(fmt.Errorf("%w: none for %v", errStalled, idle))
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop) }) }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// errWriter remembers the first error of the writer under it: an error
// there is the connection's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// export streams a tree of this host to the coordinator, which plans the
// copy on its own file system: the body is the manifest it planned from
// (length first) and the files it needs.
func (s *Server) export(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	src, err := s.pathParam(r, "src")
	if err != nil {
		return err
	}
	mode, err := proto.ParseMode(param(r, "mode"))
	if err != nil {
		return err
	}
	compress := or(param(r, "compress"), xfer.CompressAuto)
	if err := xfer.CheckCompress(compress); err != nil {
		return badRequest("%v", err)
	}
	bps, err := strconv.ParseFloat(or(param(r, "rate"), "0"), 64)
	if err != nil || bps < 0 {
		return badRequest("rate %q", param(r, "rate"))
	}
	br := bufio.NewReader(r.Body)
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxManifest {
		return badRequest("the manifest's length")
	}
	m, err := tree.ReadManifest(io.LimitReader(br, int64(n)))
	if err != nil {
		return badRequest("the manifest: %v", err)
	}
	need, err := xfer.ReadNeed(br)
	if err != nil {
		return badRequest("%v", err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	st, err := xfer.Send(r.Context(), s.opt.FSRoot, src, m, need, w, xfer.SendOptions{Mode: mode, Compress: compress, Limit: proto.Limiter(bps)})
	s.metrics.bytesOut.Add(float64(st.Bytes))
	s.metrics.wireOut.Add(float64(st.Wire))
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.transfers.WithLabelValues("export", outcome).Inc()
	if err != nil {
		// The stream has begun: the receiver learns of it from the
		// stream itself (Send's last record), not from an answer.
		s.logf("export %s: %v", src, err)
	}
	return nil
}
