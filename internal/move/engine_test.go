package move

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/directory/passwd"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

func TestMoveAndDone(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1", "bob": "h1"})
	f.makeMaildir(t, "alice", "h1", 40)
	f.makeMaildir(t, "bob", "h1", 3)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	bobBefore := snapshot(t, f.real("h1", "/h1/bob"))
	passwdBefore, _ := os.ReadFile(f.passwd)
	e := f.engine(t)

	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeMoved {
		t.Fatalf("move: %v", r)
	}
	if r.Bytes == 0 || r.From != "h1" {
		t.Errorf("result %+v", r)
	}
	f.settled(t, "alice", "h2", before)
	f.settled(t, "bob", "h1", bobBefore)

	// Only alice's home changed in the passwd file.
	after, _ := os.ReadFile(f.passwd)
	if want := strings.Replace(string(passwdBefore), "::/h1/alice::", "::/h2/alice::", 1); string(after) != want {
		t.Fatalf("passwd after move:\n%s\nwant\n%s", after, want)
	}

	// The stub on the old host forwards; the old tree is in the trash.
	fwd, err := os.ReadFile(f.real("h1", "/h2/alice/.forward"))
	if err != nil || string(fwd) != "alice@example.edu\n" {
		t.Fatalf("stub .forward = %q, %v", fwd, err)
	}
	trash, _ := os.ReadDir(f.real("h1", "/h1/"+trashDir))
	if len(trash) != 1 {
		t.Fatalf("trash holds %d entries", len(trash))
	}
	if got := snapshot(t, filepath.Join(f.real("h1", "/h1/"+trashDir), trash[0].Name())); len(tree.Compare(before, got, tree.CompareOptions{})) != 0 {
		t.Fatal("trash is not the old tree")
	}

	entries, err := e.Done(context.Background(), DoneOptions{Timeout: time.Second})
	if err != nil || len(entries) != 1 || entries[0].Status != DoneFinished {
		t.Fatalf("done: %+v %v", entries, err)
	}
	for _, p := range []string{"/h2/alice", "/h2", "/h1/" + trashDir + "/" + trash[0].Name()} {
		if _, err := os.Lstat(f.real("h1", p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after done, %s on h1 still exists (%v)", p, err)
		}
	}
	f.settled(t, "alice", "h2", before)
	// A second done has nothing to do.
	if entries, _ := e.Done(context.Background(), DoneOptions{}); len(entries) != 0 {
		t.Fatalf("second done: %+v", entries)
	}
	// And back again.
	if r := e.Move(context.Background(), Request{User: "alice", To: "h1"}); r.Outcome != OutcomeMoved {
		t.Fatalf("move back: %v", r)
	}
	f.settled(t, "alice", "h1", before)
}

// A stub step killed while writing the .forward leaves its temporary file
// in the stub: done removes it with the stub, and nothing else.
func TestStubTempLeftByKill(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 5)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	e := f.engine(t)
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Outcome != OutcomeMoved {
		t.Fatalf("move: %v", r)
	}
	leftover := f.real("h1", "/h2/alice/..forward.tmp-199822531")
	if err := os.WriteFile(leftover, []byte("alice@exam"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := f.real("h1", "/h2/alice/..forward.tmp-x/keep")
	os.MkdirAll(filepath.Dir(other), 0o700)
	os.WriteFile(other, nil, 0o600)
	entries, err := e.Done(context.Background(), DoneOptions{Timeout: time.Second})
	if err != nil || len(entries) != 1 || entries[0].Status == DoneFinished || !strings.Contains(entries[0].Detail, "(..forward.tmp-x)") {
		t.Fatalf("done with a folder of the user's in the stub: %+v %v", entries, err)
	}
	for _, p := range []string{other, leftover, f.real("h1", "/h2/alice/.forward")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("done removed part of a stub it left in place: %v", err)
		}
	}
	os.RemoveAll(filepath.Dir(other))
	entries, err = e.Done(context.Background(), DoneOptions{Timeout: time.Second})
	if err != nil || len(entries) != 1 || entries[0].Status != DoneFinished {
		t.Fatalf("done: %+v %v", entries, err)
	}
	for _, p := range []string{"/h2/alice", "/h2"} {
		if _, err := os.Lstat(f.real("h1", p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after done, %s on h1 still exists (%v)", p, err)
		}
	}
	f.settled(t, "alice", "h2", before)
}

func TestMoveRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    Request
		setup  func(t *testing.T, f *fixture, e *Engine)
		reason string
	}{
		{name: "dotdot", req: Request{User: "../x", To: "h2"}, reason: ReasonBadUser},
		{name: "slash", req: Request{User: "a/b", To: "h2"}, reason: ReasonBadUser},
		{name: "dash", req: Request{User: "-rf", To: "h2"}, reason: ReasonBadUser},
		{name: "empty", req: Request{User: "", To: "h2"}, reason: ReasonBadUser},
		{name: "nul", req: Request{User: "al\x00ice", To: "h2"}, reason: ReasonBadUser},
		{name: "unknown host", req: Request{User: "alice", To: "h9"}, reason: ReasonUnknownHost},
		{name: "unknown user", req: Request{User: "zed", To: "h2"}, reason: ReasonUnknownUser},
		{name: "same host", req: Request{User: "alice", To: "h1"}, reason: ReasonSameHost},
		{name: "wrong from", req: Request{User: "alice", To: "h2", From: "h3"}, reason: ReasonDirectoryChanged},
		{name: "dest exists", req: Request{User: "alice", To: "h2"}, reason: ReasonDestExists,
			setup: func(t *testing.T, f *fixture, e *Engine) { os.MkdirAll(f.real("h2", "/h2/alice"), 0o700) }},
		{name: "missing home", req: Request{User: "alice", To: "h2"}, reason: ReasonMissingHome,
			setup: func(t *testing.T, f *fixture, e *Engine) {
				os.Rename(f.real("h1", "/h1/alice"), f.real("h1", "/h1/alice-elsewhere"))
			}},
		{name: "home is a symlink", req: Request{User: "alice", To: "h2"}, reason: ReasonMissingHome,
			setup: func(t *testing.T, f *fixture, e *Engine) {
				os.Rename(f.real("h1", "/h1/alice"), f.real("h1", "/h1/alice-real"))
				os.Symlink("alice-real", f.real("h1", "/h1/alice"))
			}},
		{name: "active", req: Request{User: "alice", To: "h2"}, reason: ReasonActive,
			setup: func(t *testing.T, f *fixture, e *Engine) { f.active["alice"] = true }},
		{name: "closed", req: Request{User: "alice", To: "h3"}, reason: ReasonDestClosed,
			setup: func(t *testing.T, f *fixture, e *Engine) { f.cluster.Hosts[2].AcceptNew = false }},
		{name: "draining", req: Request{User: "alice", To: "h3"}, reason: ReasonDestDraining,
			setup: func(t *testing.T, f *fixture, e *Engine) { f.cluster.Hosts[2].Drain = true }},
		{name: "being moved", req: Request{User: "alice", To: "h2"}, reason: ReasonInProgress,
			setup: func(t *testing.T, f *fixture, e *Engine) {
				os.MkdirAll(e.LockDir, 0o700)
				l, err := fsutil.TryLock(filepath.Join(e.LockDir, "alice.lock"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Unlock() })
			}},
		{name: "leftover held home", req: Request{User: "alice", To: "h2"}, reason: ReasonInProgress,
			setup: func(t *testing.T, f *fixture, e *Engine) { os.MkdirAll(f.real("h1", "/h1/alice.moving"), 0o700) }},
		{name: "no space", req: Request{User: "alice", To: "h2"}, reason: ReasonNoSpace,
			setup: func(t *testing.T, f *fixture, e *Engine) { e.Margin = 1 << 62 }},
		{name: "unsafe rename hold", req: Request{User: "alice", To: "h2"}, reason: ReasonUnsafeHold,
			setup: func(t *testing.T, f *fixture, e *Engine) { os.Chmod(f.real("h1", "/h1"), 0o777) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 5)
			e := f.engine(t)
			if tc.setup != nil {
				tc.setup(t, f, e)
			}
			passwdBefore, _ := os.ReadFile(f.passwd)
			var before *tree.Manifest
			if fi, err := os.Lstat(f.real("h1", "/h1/alice")); err == nil && fi.IsDir() {
				before = snapshot(t, f.real("h1", "/h1/alice"))
			}
			r := e.Move(context.Background(), tc.req)
			if r.Outcome != OutcomeRefused || r.Reason != tc.reason {
				t.Fatalf("got %v, want refused (%s)", r, tc.reason)
			}
			if r.Err == nil || r.Err.Error() == "" {
				t.Fatal("a refusal must say why")
			}
			after, _ := os.ReadFile(f.passwd)
			if string(after) != string(passwdBefore) {
				t.Fatal("passwd changed on a refusal")
			}
			if before != nil {
				if d := tree.Compare(before, snapshot(t, f.real("h1", "/h1/alice")), tree.CompareOptions{}); len(d) > 0 {
					t.Fatalf("source changed on a refusal: %v", d)
				}
			}
			if _, err := os.Lstat(f.real("h2", "/h2/"+stagingDir)); err == nil {
				ents, _ := os.ReadDir(f.real("h2", "/h2/"+stagingDir))
				if len(ents) > 0 {
					t.Fatalf("staging left: %v", ents)
				}
			}
		})
	}
}

// A fault injected at each step: before the switch the move is undone and
// the user is where they were; after it, the move is finished by recover.
// An operator may move a user to a host closed to new users on purpose.
func TestAllowClosed(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 3)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	f.cluster.Hosts[1].AcceptNew = false
	e := f.engine(t)
	// Refused without asking, and the refusal says where the user is.
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Reason != ReasonDestClosed || r.From != "h1" {
		t.Fatalf("to a closed host: %+v", r)
	}
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2", AllowClosed: true}); r.Outcome != OutcomeMoved {
		t.Fatal(r)
	}
	f.settled(t, "alice", "h2", before)
}

// A home whose path uses one of maildist's own folder names is refused:
// moving it would carry maildist's trash or staging along.
func TestOwnFolderNamesRefused(t *testing.T) {
	if err := ownName("/h1/.maildist-trash", "/h1"); err == nil {
		t.Fatal("trash accepted as a home")
	}
	if err := ownName("/h1/d22/.maildist-staging/x", "/h1"); err == nil {
		t.Fatal("staging accepted")
	}
	if err := ownName("/h1/d22/alice", "/h1"); err != nil {
		t.Fatal(err)
	}
}

func TestFaultAtEveryStep(t *testing.T) {
	for _, s := range Steps {
		t.Run(string(s), func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 12)
			before := snapshot(t, f.real("h1", "/h1/alice"))
			e := f.engine(t)
			e.Hook = func(user string, at Step) error {
				if at == s {
					return errors.New("injected fault")
				}
				return nil
			}
			r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
			switch {
			case s == StepCheck:
				// The check runs before any hook: the move succeeds.
				if r.Outcome != OutcomeMoved {
					t.Fatalf("got %v", r)
				}
				f.settled(t, "alice", "h2", before)
				return
			case stepIndex(s) < stepIndex(StepSwitch) || s == StepSwitch:
				if r.Outcome != OutcomeFailed {
					t.Fatalf("got %v, want failed (undone)", r)
				}
				f.settled(t, "alice", "h1", before)
			default:
				if r.Outcome != OutcomeStuck {
					t.Fatalf("got %v, want stuck until recover", r)
				}
				e.Hook = nil
				rs, err := e.Recover(context.Background())
				if err != nil || len(rs) != 1 || rs[0].Outcome != OutcomeMoved {
					t.Fatalf("recover: %+v %v", rs, err)
				}
				f.settled(t, "alice", "h2", before)
			}
			// Nothing is left for recover to do.
			if rs, _ := e.Recover(context.Background()); len(rs) != 0 {
				t.Fatalf("second recover: %+v", rs)
			}
		})
	}
}

func stepIndex(s Step) int {
	for i, x := range Steps {
		if x == s {
			return i
		}
	}
	return -1
}

// faultCopier fails or corrupts copies on demand.
type faultCopier struct {
	inner     host.Copier
	corrupt   int // corrupt a file in staging after this many copies (sync included): 1 = first
	copies    int
	realStage func(p string) string
	always    bool
	final     bool // corrupt after the first copy under the hold instead
	done      bool
}

func (c *faultCopier) Copy(ctx context.Context, src host.Host, sp string, dst host.Host, dp string, mode host.CopyMode) (tree.Stats, error) {
	st, err := c.inner.Copy(ctx, src, sp, dst, dp, mode)
	c.copies++
	hit := c.copies == c.corrupt
	if c.final {
		hit = mode == host.CopySync && !c.done
		c.done = c.done || hit
	}
	if err == nil && (hit || c.always) {
		m, _ := tree.Scan(ctx, c.realStage(dp), tree.ScanOptions{})
		for _, en := range m.Entries {
			if en.Kind == tree.File && en.Size > 0 {
				p := filepath.Join(c.realStage(dp), en.Path)
				b, _ := os.ReadFile(p)
				if b[0] == '#' {
					b[0] = '%'
				} else {
					b[0] = '#'
				}
				fi, _ := os.Lstat(p)
				os.WriteFile(p, b, 0o600)
				os.Chtimes(p, fi.ModTime(), fi.ModTime())
				break
			}
		}
	}
	return st, err
}

// A file of the copy corrupted (contents changed, size and mtime kept)
// after the first precopy pass, or after the final pass under the hold,
// whose manifest of the held tree the verify compares the copy with: the
// verify finds it and copies it again; corrupted every time, the move is
// undone.
func TestVerifyRepairsAndRefuses(t *testing.T) {
	for _, final := range []bool{false, true} {
		for _, always := range []bool{false, true} {
			t.Run(fmt.Sprintf("final=%v/always=%v", final, always), func(t *testing.T) { testVerifyRepairs(t, final, always) })
		}
	}
}

func testVerifyRepairs(t *testing.T, final, always bool) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 10)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	e := f.engine(t)
	e.PreCopy = true
	e.Copier = &faultCopier{inner: e.Copier, corrupt: 1, always: always, final: final,
		realStage: func(p string) string { return f.real("h2", p) }}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if always {
		if r.Outcome != OutcomeFailed || r.Reason != ReasonVerifyFailed {
			t.Fatalf("got %v", r)
		}
		f.settled(t, "alice", "h1", before)
		return
	}
	if r.Outcome != OutcomeMoved {
		t.Fatalf("got %v", r)
	}
	f.settled(t, "alice", "h2", before)
	if !strings.Contains(string(readJournals(t, f)), "verify round 1: 1 difference(s)") {
		t.Error("the journal does not say the verify found the corrupted file")
	}
}

// Someone changes the directory entry between the check and the switch:
// the move is undone with directory-changed and their change stands.
func TestSwitchLosesRace(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 4)
	e := f.engine(t)
	e.Hook = func(user string, s Step) error {
		if s == StepSwitch {
			d, _ := passwd.Open(f.passwd, passwd.Options{})
			return d.Switch(context.Background(), "alice", "/h1/alice", "/h3/alice")
		}
		return nil
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeFailed || r.Reason != ReasonDirectoryChanged {
		t.Fatalf("got %v", r)
	}
	if f.home("alice") != "/h3/alice" {
		t.Fatalf("home = %s", f.home("alice"))
	}
	if _, err := os.Lstat(f.real("h1", "/h1/alice")); err != nil {
		t.Fatal("source home not put back")
	}
	if _, err := os.Lstat(f.real("h2", "/h2/alice")); err == nil {
		t.Fatal("the uncommitted copy was left on h2")
	}
}

// A process with a file open under the held home keeps the move from
// settling; it is undone with busy.
func TestSettleWaitsForOpenFiles(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 2)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	e := f.engine(t)
	e.Settle = 600 * time.Millisecond
	cmd := exec.Command("sh", "-c", "exec 3<"+f.real("h1", "/h1/alice/Maildir/subscriptions")+"; sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, _ := host.OpenUnder(f.real("h1", "/h1/alice"))
		if len(open) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never opened the file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeFailed || r.Reason != ReasonBusy {
		t.Fatalf("got %v", r)
	}
	f.settled(t, "alice", "h1", before)
}

func TestDoneKeepsStubWhileQueued(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1", "bob": "h1"})
	f.makeMaildir(t, "alice", "h1", 3)
	f.makeMaildir(t, "bob", "h1", 3)
	e := f.engine(t)
	for _, u := range []string{"alice", "bob"} {
		if r := e.Move(context.Background(), Request{User: u, To: "h2"}); r.Outcome != OutcomeMoved {
			t.Fatal(r)
		}
	}
	flushed := filepath.Join(f.dir, "flushed")
	queue := filepath.Join(f.dir, "queue.sh")
	os.WriteFile(queue, []byte("#!/bin/sh\necho 'A1B2C3*    1234 Thu Dec  3 12:00:00  sender@x.org'\necho '                                         <bob@example.edu>'\n"), 0o755)
	entries, err := e.Done(context.Background(), DoneOptions{
		Flush: []string{"touch", flushed}, Queue: []string{queue}, Domain: "example.edu",
		Timeout: 300 * time.Millisecond, Poll: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, d := range entries {
		status[d.User] = d.Status
	}
	if status["alice"] != DoneFinished || status["bob"] != DoneQueued {
		t.Fatalf("statuses %v", status)
	}
	if _, err := os.Stat(flushed); err != nil {
		t.Fatal("flush command was not run")
	}
	if _, err := os.Stat(f.real("h1", "/h2/bob/.forward")); err != nil {
		t.Fatal("bob's stub was removed while his mail is queued")
	}
	if _, err := os.Stat(f.real("h1", "/h2/alice")); err == nil {
		t.Fatal("alice's stub was kept")
	}
	// Once bob's mail is gone, done finishes him too.
	os.WriteFile(queue, []byte("#!/bin/sh\necho 'Mail queue is empty'\n"), 0o755)
	entries, _ = e.Done(context.Background(), DoneOptions{Queue: []string{queue}, Domain: "example.edu"})
	if len(entries) != 1 || entries[0].User != "bob" || entries[0].Status != DoneFinished {
		t.Fatalf("second done: %+v", entries)
	}
	if _, err := os.Stat(f.real("h1", "/h2")); err == nil {
		t.Fatal("stub parent folder left on h1")
	}
}

// EntryChanged hears of every change to the user's entry: the marker set,
// the switch, the marker cleared; and on an undo, the marker cleared.
func TestEntryChangedHearsHoldSwitchRelease(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1", "bob": "h1"})
	f.makeMaildir(t, "alice", "h1", 2)
	f.makeMaildir(t, "bob", "h1", 2)
	e := f.engine(t)
	var heard []string
	e.EntryChanged = func(ctx context.Context, user string) error {
		d, _ := passwd.Open(f.passwd, passwd.Options{HoldMarker: true})
		en, err := d.Lookup(ctx, user)
		if err != nil {
			return err
		}
		heard = append(heard, fmt.Sprintf("%s held=%v home=%s", user, en.Held, en.Home))
		return nil
	}
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Outcome != OutcomeMoved {
		t.Fatal(r)
	}
	want := []string{"alice held=true home=/h1/alice", "alice held=true home=/h2/alice", "alice held=false home=/h2/alice"}
	if !slices.Equal(heard, want) {
		t.Errorf("heard %q\nwant  %q", heard, want)
	}
	heard = nil
	e.Hook = func(user string, s Step) error {
		if s == StepCopy {
			return errors.New("injected")
		}
		return nil
	}
	if r := e.Move(context.Background(), Request{User: "bob", To: "h2"}); r.Outcome == OutcomeMoved || r.Held <= 0 {
		t.Fatalf("%+v: want undone, with the time bob was held", r)
	}
	want = []string{"bob held=true home=/h1/bob", "bob held=false home=/h1/bob"}
	if !slices.Equal(heard, want) {
		t.Errorf("heard %q\nwant  %q", heard, want)
	}
}

// readJournals returns every journal of the fixture, live or archived,
// one after the other.
func readJournals(t *testing.T, f *fixture) []byte {
	t.Helper()
	var all []byte
	for _, pat := range []string{"*.journal", "archive/*.journal"} {
		files, _ := filepath.Glob(filepath.Join(f.dir, "state", "journal", pat))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
	}
	return all
}

// removeClock notes when staging began to be removed.
type removeClock struct {
	host.Host
	at *time.Time
}

func (h removeClock) RemoveAll(ctx context.Context, p string) error {
	if strings.Contains(p, ".maildist-staging/") && h.at.IsZero() {
		*h.at = time.Now()
	}
	return h.Host.RemoveAll(ctx, p)
}

// unwrapCopier copies with copier between the hosts removeClock wraps.
type unwrapCopier struct{ host.Copier }

func (c unwrapCopier) Copy(ctx context.Context, src host.Host, sp string, dst host.Host, dp string, mode host.CopyMode) (tree.Stats, error) {
	return c.Copier.Copy(ctx, src.(removeClock).Host, sp, dst.(removeClock).Host, dp, mode)
}

// TestHeldEndsAtRelease: a user is held until the hold is let go, not
// while an undone move's staging is removed afterwards; the journal's
// moved and undone records say how long, as the result does.
func TestHeldEndsAtRelease(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1", "bob": "h1"})
	f.makeMaildir(t, "alice", "h1", 5)
	f.makeMaildir(t, "bob", "h1", 5)
	e := f.engine(t)
	var removing time.Time
	inner := e.Host
	e.Host = func(n string) (host.Host, error) {
		h, err := inner(n)
		if err != nil {
			return nil, err
		}
		return removeClock{h, &removing}, nil
	}
	e.Copier = unwrapCopier{e.Copier}
	e.Hook = func(user string, s Step) error {
		if user == "bob" && s == StepVerify {
			return errors.New("injected")
		}
		return nil
	}
	moved := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	undone := e.Move(context.Background(), Request{User: "bob", To: "h2"})
	if moved.Outcome != OutcomeMoved || undone.Outcome != OutcomeFailed || moved.Held <= 0 || undone.Held <= 0 {
		t.Fatalf("want alice moved and bob undone, both held: %+v, %+v", moved, undone)
	}
	recs := map[string]Record{}
	var holdBob time.Time
	for line := range strings.SplitSeq(string(readJournals(t, f)), "\n") {
		var r Record
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Plan != nil {
			continue
		}
		if r.Step == RecMoved || r.Step == RecUndone {
			recs[string(r.Step)] = r
		}
		if r.Step == StepHold && !recs[string(RecMoved)].Time.IsZero() {
			holdBob = r.Time
		}
	}
	if got := recs[string(RecMoved)].HeldMS; got != moved.Held.Milliseconds() {
		t.Errorf("moved record: held_ms %d, the result %v", got, moved.Held)
	}
	if got := recs[string(RecUndone)].HeldMS; got != undone.Held.Milliseconds() {
		t.Errorf("undone record: held_ms %d, the result %v", got, undone.Held)
	}
	if removing.IsZero() || holdBob.IsZero() {
		t.Fatalf("staging removed at %v, bob held at %v", removing, holdBob)
	}
	if end := holdBob.Add(undone.Held); end.After(removing) {
		t.Errorf("bob counted held until %v, after staging began to be removed at %v", end, removing)
	}
}

// TestRefuseSpecialFile: a FIFO in a home is refused at the check, by
// name, for good (no copy could take it), and left where it is.
func TestRefuseSpecialFile(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 5)
	fifo := filepath.Join(f.real("h1", "/h1/alice"), "Maildir", "cur", "odd pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.engine(t).Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeRefused || r.Reason != ReasonSpecialFile || Retryable(r.Reason) {
		t.Fatalf("got %v, want refused (%s), not to be retried", r, ReasonSpecialFile)
	}
	if !strings.Contains(r.Err.Error(), `Maildir/cur/odd pipe`) || !strings.Contains(r.Err.Error(), "/h1/alice") {
		t.Errorf("the refusal does not name the FIFO: %v", r.Err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is not where it was: %v %v", fi, err)
	}
	if f.home("alice") != "/h1/alice" {
		t.Errorf("alice's home is %s", f.home("alice"))
	}
}
