package move

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/tree"
)

// The crash test runs a move in a child process (this test binary again)
// that SIGKILLs itself at its Nth "event": a journaled step, a change to a
// host's file system, a change to the directory, a file copied. For every
// N until the move completes without reaching N, the parent then runs
// recover and checks that the user's mail is complete in exactly one home,
// the one the directory points to, and that nothing is left held.

const (
	envCrashDir = "MAILDIST_TEST_CRASH_DIR"
	envCrashAt  = "MAILDIST_TEST_CRASH_AT"
)

// crasher counts events and kills the process at the chosen one, or,
// with fail set, makes that event's operation fail instead.
type crasher struct {
	at, n atomic.Int64
	fail  bool
}

var errInjected = fmt.Errorf("injected fault")

// event counts one event; it returns an error only in fail mode.
func (c *crasher) event() error {
	if c.n.Add(1) == c.at.Load() {
		if c.fail {
			return errInjected
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal takes a moment to land
	}
	return nil
}

type crashHost struct {
	host.Host
	c *crasher
}

func (h crashHost) Rename(ctx context.Context, a, b string) error {
	if err := h.c.event(); err != nil {
		return err
	}
	err := h.Host.Rename(ctx, a, b)
	if err2 := h.c.event(); err == nil {
		err = err2
	}
	return err
}

func (h crashHost) MkdirAll(ctx context.Context, p string, m fs.FileMode, u, g int) ([]string, error) {
	if err := h.c.event(); err != nil {
		return nil, err
	}
	return h.Host.MkdirAll(ctx, p, m, u, g)
}

func (h crashHost) RemoveAll(ctx context.Context, p string) error {
	if err := h.c.event(); err != nil {
		return err
	}
	err := h.Host.RemoveAll(ctx, p)
	if err2 := h.c.event(); err == nil {
		err = err2
	}
	return err
}

func (h crashHost) WriteFile(ctx context.Context, p string, d []byte, m fs.FileMode, u, g int) error {
	if err := h.c.event(); err != nil {
		return err
	}
	err := h.Host.WriteFile(ctx, p, d, m, u, g)
	if err2 := h.c.event(); err == nil {
		err = err2
	}
	return err
}

type crashDir struct {
	directory.Directory
	c *crasher
}

func (d crashDir) Switch(ctx context.Context, u, a, b string) error {
	if err := d.c.event(); err != nil {
		return err
	}
	err := d.Directory.Switch(ctx, u, a, b)
	if err2 := d.c.event(); err == nil {
		err = err2
	}
	return err
}

func (d crashDir) SetHold(ctx context.Context, u, r string) error {
	if err := d.c.event(); err != nil {
		return err
	}
	return d.Directory.(directory.Marker).SetHold(ctx, u, r)
}

func (d crashDir) ClearHold(ctx context.Context, u string) error {
	if err := d.c.event(); err != nil {
		return err
	}
	return d.Directory.(directory.Marker).ClearHold(ctx, u)
}

// TestCrashChild is the child's side; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("run by TestCrashAtEveryPoint")
	}
	at, _ := strconv.ParseInt(os.Getenv(envCrashAt), 10, 64)
	c := &crasher{}
	c.at.Store(at)
	f := openFixture(dir)
	e := f.engine(t)
	wrapEngine(e, c)
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeMoved {
		t.Fatalf("child move: %v", r)
	}
}

// wrapEngine routes every host, directory and copier call of e through c.
func wrapEngine(e *Engine, c *crasher) {
	inner := e.Host
	e.Host = func(n string) (host.Host, error) {
		h, err := inner(n)
		if err != nil {
			return nil, err
		}
		return crashHost{h, c}, nil
	}
	e.Copier = crashCopier{c}
	e.Directory = crashDir{e.Directory, c}
	e.Hook = func(string, Step) error { return c.event() }
}

// crashCopier copies with the local copier, unwrapping crashHost, and
// counts each file copied as an event (the first few only).
type crashCopier struct{ c *crasher }

func (cc crashCopier) Copy(ctx context.Context, src host.Host, sp string, dst host.Host, dp string, mode host.CopyMode) (tree.Stats, error) {
	files := 0
	var injected error
	lc := &host.LocalCopier{Options: tree.Options{Workers: 1, Progress: func(int64) {
		if files++; files <= 4 {
			if err := cc.c.event(); err != nil {
				injected = err
			}
		}
	}}}
	if err := cc.c.event(); err != nil {
		return tree.Stats{}, err
	}
	st, err := lc.Copy(ctx, src.(crashHost).Host, sp, dst.(crashHost).Host, dp, mode)
	if err == nil && injected != nil {
		err = injected // as if the copy had failed part way
	}
	return st, err
}

func TestCrashAtEveryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process per crash point")
	}
	for _, pre := range []bool{true, false} {
		t.Run(fmt.Sprintf("precopy=%v", pre), func(t *testing.T) { crashAtEveryPoint(t, pre) })
	}
}

func crashAtEveryPoint(t *testing.T, precopy bool) {
	template := newFixture(t, map[string]string{"alice": "h1", "bob": "h2"})
	template.makeMaildir(t, "alice", "h1", 30)
	template.makeMaildir(t, "bob", "h2", 3)
	before := snapshot(t, template.real("h1", "/h1/alice"))
	bob := snapshot(t, template.real("h2", "/h2/bob"))

	completed := false
	heldUndone := 0 // recoveries that undid a move after its hold began
	for n := 1; n < 300 && !completed; n++ {
		t.Run(fmt.Sprintf("at=%d", n), func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("cp", "-a", template.dir+"/.", dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashAt+"="+strconv.Itoa(n))
			if !precopy {
				cmd.Env = append(cmd.Env, envNoPreCopy+"=1")
			}
			out, err := cmd.CombinedOutput()
			killed := false
			if ee, ok := err.(*exec.ExitError); ok {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
					killed = true
				}
			}
			if err != nil && !killed {
				t.Fatalf("child failed without being killed: %v\n%s", err, out)
			}
			if !killed {
				completed = true
			}
			f := openFixture(dir)
			e := f.engine(t)
			e.PreCopy = precopy
			var evs []runstate.Event
			e.Events = func(ev runstate.Event) { evs = append(evs, ev) }
			rs, err := e.Recover(context.Background())
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			// How long the user was held is known however the move
			// ended, and is logged where the move's end is.
			for _, r := range rs {
				if r.Outcome == OutcomeMoved && r.Held <= 0 {
					t.Errorf("recover finished a move and says it held nobody: %+v", r)
				}
				if r.Held > 0 {
					if r.Outcome == OutcomeFailed {
						heldUndone++
					}
					found := false
					for _, ev := range evs {
						found = found || (ev.Step == string(RecMoved) || ev.Step == string(RecUndone)) && ev.HeldMS == r.Held.Milliseconds()
					}
					if !found {
						t.Errorf("held %v, but no moved or undone event says so: %+v", r.Held, evs)
					}
				}
			}
			want := "h1"
			if f.home("alice") == "/h2/alice" {
				want = "h2"
			}
			if !killed && want != "h2" {
				t.Fatal("the uninterrupted move did not move alice")
			}
			f.settled(t, "alice", want, before)
			f.settled(t, "bob", "h2", bob)
			// Nothing is left in the way: done finishes, and alice can be
			// moved again.
			if _, err := e.Done(context.Background(), DoneOptions{}); err != nil {
				t.Fatal(err)
			}
			to := map[string]string{"h1": "h3", "h2": "h1"}[want]
			if r := e.Move(context.Background(), Request{User: "alice", To: to}); r.Outcome != OutcomeMoved {
				t.Fatalf("move after recovery: %v", r)
			}
			f.settled(t, "alice", to, before)
		})
	}
	if !completed {
		t.Fatal("the move never completed without a crash")
	}
	if heldUndone == 0 {
		t.Error("no recovery undid a held move, or none said how long it held")
	}
}

// The same points, in one process: the operation at the Nth point fails.
// Before the switch the move is undone at once; after it, recover finishes
// it. Either way the user ends up complete in one home.
func TestFaultAtEveryPoint(t *testing.T) {
	for _, pre := range []bool{true, false} {
		t.Run(fmt.Sprintf("precopy=%v", pre), func(t *testing.T) { faultAtEveryPoint(t, pre) })
	}
}

func faultAtEveryPoint(t *testing.T, precopy bool) {
	completed := false
	for n := 1; n < 300 && !completed; n++ {
		t.Run(fmt.Sprintf("at=%d", n), func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 8)
			before := snapshot(t, f.real("h1", "/h1/alice"))
			e := f.engine(t)
			e.PreCopy = precopy
			c := &crasher{fail: true}
			c.at.Store(int64(n))
			wrapEngine(e, c)
			r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
			if c.n.Load() < int64(n) {
				completed = true
				if r.Outcome != OutcomeMoved {
					t.Fatalf("no fault injected, but %v", r)
				}
			}
			if r.Outcome == OutcomeMoved && c.n.Load() >= int64(n) {
				t.Logf("fault at %d did not stop the move: %v", n, r)
			}
			clean := f.engine(t)
			if _, err := clean.Recover(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := "h1"
			if f.home("alice") == "/h2/alice" {
				want = "h2"
			}
			f.settled(t, "alice", want, before)
		})
	}
	if !completed {
		t.Fatal("never got past the last fault point")
	}
}
