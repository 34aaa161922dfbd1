package move

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// liveWriter is the mail system and the user at work in a home while the
// pre-copy runs: it delivers (tmp/ then new/), reads (new/ to cur/),
// flags (renames in cur/), expunges, and rewrites dovecot-uidlist.
type liveWriter struct {
	home string
	r    *rand.Rand
	n    int
}

func (w *liveWriter) names(sub string) []string {
	ents, _ := os.ReadDir(filepath.Join(w.home, "Maildir", sub))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (w *liveWriter) step() error {
	md := filepath.Join(w.home, "Maildir")
	w.n++
	var err error
	switch k := w.r.IntN(10); {
	case k < 4:
		body := fmt.Sprintf("Subject: live %d\n\n%s", w.n, strings.Repeat("y", w.r.IntN(2000)))
		name := fmt.Sprintf("%d.M%dP9.live,S=%d", 1800000000+w.n, w.n, len(body))
		tmp := filepath.Join(md, "tmp", name)
		if err = os.WriteFile(tmp, []byte(body), 0o600); err == nil {
			err = os.Rename(tmp, filepath.Join(md, "new", name))
		}
	case k < 6:
		if n := w.names("new"); len(n) > 0 {
			x := n[w.r.IntN(len(n))]
			err = os.Rename(filepath.Join(md, "new", x), filepath.Join(md, "cur", x+":2,S"))
		}
	case k < 8:
		if n := w.names("cur"); len(n) > 0 {
			x := n[w.r.IntN(len(n))]
			base, _, _ := strings.Cut(x, ":2,")
			flags := []string{"", "S", "RS", "FS", "ST"}[w.r.IntN(5)]
			err = os.Rename(filepath.Join(md, "cur", x), filepath.Join(md, "cur", base+":2,"+flags))
		}
	case k < 9:
		if n := w.names("cur"); len(n) > 0 {
			err = os.Remove(filepath.Join(md, "cur", n[w.r.IntN(len(n))]))
		}
	default:
		tmp := filepath.Join(md, "dovecot-uidlist.lock")
		if err = os.WriteFile(tmp, fmt.Appendf(nil, "3 V1234 N%d\n", w.n), 0o600); err == nil {
			err = os.Rename(tmp, filepath.Join(md, "dovecot-uidlist"))
		}
	}
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// TestPreCopyWhileLive: while the pre-copy passes run, mail arrives and
// the user reads, flags and expunges; the writers stop when the hold
// begins (the MTA defers, the user is logged out). The new home must then
// equal the old one exactly as it was when held.
func TestPreCopyWhileLive(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
			for seed := range uint64(2) {
				preCopyWhileLive(t, seed, cached)
			}
		})
	}
}

func preCopyWhileLive(t *testing.T, seed uint64, cached bool) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 300)
	home := f.real("h1", "/h1/alice")
	e := f.engine(t)
	e.PreCopy = true
	opt := tree.Options{Workers: 3}
	if cached {
		opt.Cache = tree.NewCache()
	}
	// Slow the copies a little, so that the writer has time to work
	// during every pass.
	opt.Progress = func(int64) { time.Sleep(200 * time.Microsecond) }
	e.Copier = &host.LocalCopier{Options: opt}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var steps atomic.Int32
	var werr error
	w := &liveWriter{home: home, r: rand.New(rand.NewPCG(seed, 3))}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.step(); err != nil {
				werr = err
				return
			}
			steps.Add(1)
			time.Sleep(time.Duration(w.r.IntN(500)) * time.Microsecond)
		}
	})
	var held *tree.Manifest
	var once sync.Once
	e.Hook = func(user string, s Step) error {
		if s == StepHold {
			once.Do(func() {
				close(stop)
				wg.Wait()
				held = snapshot(t, home)
			})
		}
		return nil
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	once.Do(func() { close(stop); wg.Wait() })
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if r.Outcome != OutcomeMoved {
		t.Fatalf("move: %v", r)
	}
	f.settled(t, "alice", "h2", held)
	t.Logf("seed %d: %d changes while live, %d held entries, held %v", seed, steps.Load(), len(held.Entries), r.Held)
}

// passFaultCopier copies with a LocalCopier and, at one call (a pass: 1 and 2
// are the pre-copy's, 3 the copy under the hold), first adds some mail to
// the source so that the pass has work to do, then cuts the pass short
// after it has copied something: with an error of its own, or by
// cancelling the move's context.
type passFaultCopier struct {
	f      *fixture
	at     int32
	cancel context.CancelFunc // nil: fail with errPassFault

	calls  atomic.Int32
	armed  atomic.Bool
	stop   context.CancelFunc
	before *tree.Manifest // the source as the failing pass began
}

var errPassFault = errors.New("injected copy failure")

func (c *passFaultCopier) Copy(ctx context.Context, src host.Host, sp string, dst host.Host, dp string, mode host.CopyMode) (tree.Stats, error) {
	n := c.calls.Add(1)
	lc := &host.LocalCopier{Options: tree.Options{Workers: 2, Progress: func(int64) {
		if c.armed.Load() {
			c.armed.Store(false)
			c.stop()
		}
	}}}
	if n != c.at {
		return lc.Copy(ctx, src, sp, dst, dp, mode)
	}
	real := c.f.real(src.Name(), sp)
	for i := range 20 {
		name := fmt.Sprintf("%d.M%dP7.late,S=9", 1900000000+i, i)
		if err := os.WriteFile(filepath.Join(real, "Maildir/new", name), []byte("late mail"), 0o600); err != nil {
			return tree.Stats{}, err
		}
	}
	c.before, _ = tree.Scan(context.Background(), real, tree.ScanOptions{Hash: true})
	inner, stop := context.WithCancel(ctx)
	defer stop()
	c.stop = stop
	if c.cancel != nil {
		c.stop = c.cancel
	}
	c.armed.Store(true)
	st, err := lc.Copy(inner, src, sp, dst, dp, mode)
	if c.armed.Load() {
		return st, fmt.Errorf("pass %d copied nothing before it ended (%v)", n, err)
	}
	if c.cancel == nil && err != nil {
		err = fmt.Errorf("%w (%v)", errPassFault, err)
	}
	return st, err
}

// TestPreCopyFaults cuts each pass short, with an error from the copier
// or by cancelling the move: the move is undone, staging is gone, the
// source is as it was, and the move succeeds when tried again.
func TestPreCopyFaults(t *testing.T) {
	for _, pass := range []int32{1, 2, 3} {
		for _, cancel := range []bool{false, true} {
			t.Run(fmt.Sprintf("pass=%d/cancel=%v", pass, cancel), func(t *testing.T) {
				f := newFixture(t, map[string]string{"alice": "h1"})
				f.makeMaildir(t, "alice", "h1", 120)
				e := f.engine(t)
				e.PreCopy = true
				ctx, stop := context.WithCancel(context.Background())
				defer stop()
				fc := &passFaultCopier{f: f, at: pass}
				if cancel {
					fc.cancel = stop
				}
				e.Copier = fc
				r := e.Move(ctx, Request{User: "alice", To: "h2"})
				if r.Outcome != OutcomeFailed {
					t.Fatalf("move: %v, want failed", r)
				}
				want := ReasonCopyFailed
				if cancel {
					want = ReasonInterrupted
				}
				if r.Reason != want || cancel == errors.Is(r.Err, errPassFault) {
					t.Fatalf("move failed with %q: %v; want %q", r.Reason, r.Err, want)
				}
				if fc.before == nil {
					t.Fatal("the failing pass never ran")
				}
				// Back on h1, exactly as the failing pass found it; no
				// staging, no hold, no lock left.
				f.settled(t, "alice", "h1", fc.before)

				e.Copier = &host.LocalCopier{}
				r = e.Move(context.Background(), Request{User: "alice", To: "h2"})
				if r.Outcome != OutcomeMoved {
					t.Fatalf("second move: %v", r)
				}
				f.settled(t, "alice", "h2", fc.before)
			})
		}
	}
}

// TestPreCopyQuiet: a pre-copy pass during which no name of the home
// changed is the last before the hold; one during which mail arrived is
// followed by another, and the mail is moved.
func TestPreCopyQuiet(t *testing.T) {
	for _, deliver := range []bool{false, true} {
		t.Run(fmt.Sprintf("deliver=%v", deliver), func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 50)
			home := f.real("h1", "/h1/alice")
			e := f.engine(t)
			e.PreCopy = true
			var once sync.Once
			var derr error
			e.Copier = &host.LocalCopier{Options: tree.Options{Cache: tree.NewCache(), Progress: func(int64) {
				if deliver {
					once.Do(func() {
						derr = os.WriteFile(filepath.Join(home, "Maildir/new/1900000000.M1P1.late,S=9"), []byte("late mail"), 0o600)
					})
				}
			}}}
			var held *tree.Manifest
			e.Hook = func(user string, s Step) error {
				if s == StepHold {
					held = snapshot(t, home)
				}
				return nil
			}
			if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Outcome != OutcomeMoved || derr != nil {
				t.Fatalf("move: %v (%v)", r, derr)
			}
			f.settled(t, "alice", "h2", held)
			j := string(readJournals(t, f))
			quiet := strings.Contains(j, "precopy pass 1: no name changed in the home meanwhile")
			second := strings.Contains(j, "precopy pass 2: ")
			if quiet == deliver || second != deliver {
				t.Errorf("delivered during pass 1: %v; the journal says quiet %v, a second pass %v:\n%s", deliver, quiet, second, j)
			}
			if deliver {
				if _, err := os.Stat(filepath.Join(f.real("h2", "/h2/alice"), "Maildir/new/1900000000.M1P1.late,S=9")); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
