package agent

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/agent/xfer"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// An import is one transfer into this host, announced by a coordinator.
//
// The coordinator announces it (POST /v1/imports: who will push, from
// which path, to which staging path, how) and gets a ticket. The pusher
// (the source host's agent, or the coordinator itself) presents the ticket
// once, with its manifest (POST /v1/imports/plan); the ticket is spent
// then, whatever follows. The answer lists the files still needed and a
// data token, good for one stream (POST /v1/imports/data) from the same
// certificate. A transfer cut short is resumed by a new announcement: the
// next plan finds what the first stream wrote.
const (
	ticketLife  = 10 * time.Minute
	sessionLife = 30 * time.Second
	maxManifest = 256 << 20
)

type ticket struct {
	from      string // the pusher's certificate name; "" for the announcer itself
	announcer string
	src, dst  string
	mode      host.CopyMode
	resume    bool
	expires   time.Time
}

type session struct {
	caller  string
	t       *ticket
	rcv     *xfer.Receiver
	expires time.Time
}

type imports struct {
	mu       sync.Mutex
	tickets  map[string]*ticket
	sessions map[string]*session
	busy     map[string]bool // staging paths with an import under way
}

func newImports() *imports {
	return &imports{tickets: map[string]*ticket{}, sessions: map[string]*session{}, busy: map[string]bool{}}
}

// sweep drops what has expired. Called with mu held.
func (im *imports) sweep(now time.Time) {
	for k, t := range im.tickets {
		if now.After(t.expires) {
			delete(im.tickets, k)
		}
	}
	for k, s := range im.sessions {
		if now.After(s.expires) {
			s.rcv.Close()
			delete(im.busy, s.t.dst)
			delete(im.sessions, k)
		}
	}
}

func token() string {
	var b [24]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	dst, err := s.pathParam(r, "dst")
	if err != nil {
		return err
	}
	src := param(r, "src")
	if err := host.CheckPath(src, s.roots); err != nil {
		return err
	}
	from := param(r, "from")
	if from != "" && cluster.CheckUser(from) != nil {
		return badRequest("from %q: not a plain name", from)
	}
	mode, err := proto.ParseMode(param(r, "mode"))
	if err != nil {
		return err
	}
	t := &ticket{from: from, announcer: id.Name, src: src, dst: dst, mode: mode, resume: param(r, "resume") == "1",
		expires: time.Now().Add(ticketLife)}
	k := token()
	s.imports.mu.Lock()
	s.imports.sweep(time.Now())
	s.imports.tickets[k] = t
	s.imports.mu.Unlock()
	return writeJSON(w, proto.Ticket{Ticket: k, Expires: t.expires})
}

// importPlan spends a ticket: the caller must be the pusher it names,
// for the paths it names. It answers the files still needed.
func (s *Server) importPlan(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	k := param(r, "ticket")
	src, dst := param(r, "src"), param(r, "dst")
	im := s.imports
	im.mu.Lock()
	im.sweep(time.Now())
	t, ok := im.tickets[k]
	if !ok {
		im.mu.Unlock()
		return fmt.Errorf("no such ticket (used already, expired, or never announced): %w", proto.ErrForbidden)
	}
	// Who calls is checked before the ticket is spent: another
	// certificate of the CA that presents it must not use it up.
	if !(id.Name == t.from || t.from == "" && id.Name == t.announcer) {
		im.mu.Unlock()
		return fmt.Errorf("the ticket is for a push from %s, not from %s: %w", or(t.from, t.announcer), id.Name, proto.ErrForbidden)
	}
	delete(im.tickets, k) // once, whatever comes of it
	if t.src != src || t.dst != dst {
		im.mu.Unlock()
		return fmt.Errorf("the ticket is for %s → %s, not %s → %s: %w", t.src, t.dst, src, dst, proto.ErrForbidden)
	}
	if im.busy[dst] {
		im.mu.Unlock()
		return fmt.Errorf("another import into %s is under way: %w", dst, proto.ErrBusy)
	}
	im.busy[dst] = true
	im.mu.Unlock()
	release := func() {
		im.mu.Lock()
		delete(im.busy, dst)
		im.mu.Unlock()
	}
	if err := s.checkPath(dst); err != nil {
		release()
		return err
	}
	m, err := tree.ReadManifest(io.LimitReader(r.Body, maxManifest))
	if err != nil {
		release()
		return badRequest("the manifest: %v", err)
	}
	rcv, err := xfer.Prepare(r.Context(), s.opt.FSRoot, dst, m, xfer.ReceiveOptions{Mode: t.mode, Resume: t.resume})
	if err != nil {
		release()
		return err
	}
	tok := token()
	im.mu.Lock()
	im.sessions[tok] = &session{caller: id.Name, t: t, rcv: rcv, expires: time.Now().Add(sessionLife)}
	im.mu.Unlock()
	w.Header().Set(proto.TokenHeader, tok)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	return xfer.WriteNeed(w, rcv.Need())
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// importData takes the one stream of a planned import.
func (s *Server) importData(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	k := param(r, "token")
	im := s.imports
	im.mu.Lock()
	se, ok := im.sessions[k]
	if ok && se.caller != id.Name {
		// Not spent: only its planner may use it.
		im.mu.Unlock()
		return fmt.Errorf("the import was planned by %s, not %s: %w", se.caller, id.Name, proto.ErrForbidden)
	}
	delete(im.sessions, k)
	im.mu.Unlock()
	if !ok {
		return fmt.Errorf("no such import (its token was used, or expired): %w", proto.ErrForbidden)
	}
	defer func() {
		se.rcv.Close()
		im.mu.Lock()
		delete(im.busy, se.t.dst)
		im.mu.Unlock()
	}()
	in := &deadlineReader{r: r.Body, rc: http.NewResponseController(w), idle: s.opt.Idle}
	st, err := se.rcv.Receive(r.Context(), in)
	s.metrics.bytesIn.Add(float64(st.Bytes))
	s.metrics.wireIn.Add(float64(in.n))
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.transfers.WithLabelValues("import", outcome).Inc()
	if err != nil {
		return err
	}
	s.logf("imported %s from %s: %d files, %d bytes (%d on the wire)", se.t.dst, id.Name, st.Files, st.Bytes, in.n)
	return writeJSON(w, statsOf(st))
}

func statsOf(st tree.Stats) proto.Stats {
	return proto.Stats{Files: st.Files, Dirs: st.Dirs, Symlinks: st.Symlinks, HardLinks: st.HardLinks, Bytes: st.Bytes,
		Removed: st.Removed, Fixed: st.Fixed, Vanished: st.Vanished}
}

// deadlineReader gives up on a stream that goes quiet for idle: a peer
// that vanished without closing the connection.
type deadlineReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
	n    int64
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) > min(time.Second, d.idle/4) {
		d.rc.SetReadDeadline(now.Add(d.idle))
		d.last = now
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	return n, err
}
