package move

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
)

// A hold that leaves the tree in place (postfix, command) cannot stop a
// delivery that goes around it. Mail written to the held home after its
// copy was verified is carried into the new home at the release, and the
// operator is told; mail the verified copy had is not brought back.
func TestMailWrittenAfterVerifyIsCarried(t *testing.T) {
	for _, at := range []Step{StepCommit, StepSwitch, StepRelease} {
		t.Run(string(at), func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 4)
			e := f.engine(t)
			e.Hold = inPlaceHold()
			old := f.real("h1", "/h1/alice")
			ents, _ := os.ReadDir(filepath.Join(old, "Maildir/cur"))
			if len(ents) == 0 {
				t.Fatal("no messages in cur/")
			}
			expunged := ents[0].Name()
			e.Hook = func(user string, s Step) error {
				if s != at {
					return nil
				}
				// A delivery past the hold, and a tmp/ file of one under way.
				os.WriteFile(filepath.Join(old, "Maildir/new/1800000001.late.h1,S=20"), []byte("Subject: late\n\nbody\n"), 0o600)
				os.WriteFile(filepath.Join(old, "Maildir/tmp/1800000002.partial.h1"), []byte("Subj"), 0o600)
				if at == StepRelease {
					// The user, logged in to the new home already, expunges
					// a message the copy had.
					os.Remove(filepath.Join(f.real("h2", "/h2/alice"), "Maildir/cur", expunged))
				}
				return nil
			}
			r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
			if r.Outcome != OutcomeMoved {
				t.Fatalf("move: %+v", r)
			}
			home := f.real("h2", "/h2/alice")
			if n := hasMessage(t, home, "1800000001.late"); n != 1 {
				t.Errorf("the late message is in the new home %d times, want once", n)
			}
			if n := hasMessage(t, home, "1800000002.partial"); n != 0 {
				t.Errorf("a tmp/ file was carried as a message")
			}
			if at == StepRelease {
				if _, err := os.Lstat(filepath.Join(home, "Maildir/cur", expunged)); err == nil {
					t.Errorf("%s, expunged in the new home, was brought back", expunged)
				}
			}
			late := false
			f.mu.Lock()
			for _, ev := range f.events {
				late = late || ev.Reason == ReasonLate
			}
			f.mu.Unlock()
			if !late {
				t.Error("no written-late warning")
			}
			js, _ := filepath.Glob(filepath.Join(f.dir, "state", "journal", "*.verified*"))
			if len(js) != 0 {
				t.Errorf("verified manifests left: %v", js)
			}
		})
	}
}

// Nothing is carried, and nothing said, when nothing went around the hold.
func TestNothingWrittenLateNothingCarried(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 4)
	e := f.engine(t)
	e.Hold = inPlaceHold()
	before := snapshot(t, f.real("h1", "/h1/alice"))
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Outcome != OutcomeMoved {
		t.Fatalf("move: %+v", r)
	}
	f.settled(t, "alice", "h2", before)
	for _, ev := range f.events {
		if ev.Reason == ReasonLate {
			t.Errorf("warned: %+v", ev)
		}
	}
}

// A user who logs in while the precopy runs is refused at the hold, as
// the check would have refused them: nothing held, nothing staged.
func TestLoginDuringPreCopyRefused(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 4)
	e := f.engine(t)
	e.PreCopy = true
	before := snapshot(t, f.real("h1", "/h1/alice"))
	e.Hook = func(user string, s Step) error {
		if s == StepPreCopy {
			f.mu.Lock()
			f.active[user] = true
			f.mu.Unlock()
		}
		return nil
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome == OutcomeMoved || r.Reason != ReasonActive {
		t.Fatalf("move: %+v; want refused as active", r)
	}
	f.mu.Lock()
	f.active["alice"] = false
	f.mu.Unlock()
	f.settled(t, "alice", "h1", before)
	for _, ev := range f.events {
		if ev.Step == string(StepHold) {
			t.Errorf("held: %+v", ev)
		}
	}
}

// inPlaceHold is a command hold whose commands do nothing: the tree stays
// where it is, open to anything that goes around the hold.
func inPlaceHold() *delivery.Command {
	nop := func(context.Context, []string) ([]byte, error) { return nil, nil }
	return &delivery.Command{HoldCmd: []string{"hold"}, ReleaseCmd: []string{"release"}, Run: nop}
}

// A user whose move in another batch (an ad-hoc move, another run) did
// not finish is not moved again until recover has finished or undone it.
func TestUnfinishedMoveElsewhereRefused(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 2)
	adhoc := filepath.Join(f.dir, "state", "journal")
	os.MkdirAll(adhoc, 0o755)
	j, err := createJournal(adhoc, Plan{User: "alice", ID: "x1", From: "h1", To: "h2"}, Record{Step: StepCheck})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	e := f.engine(t)
	e.JournalDir = filepath.Join(f.dir, "runs", "01", "journal")
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeMoved {
		t.Fatalf("without OtherJournals the run does not look: %+v", r)
	}
	f2 := newFixture(t, map[string]string{"bob": "h1"})
	f2.makeMaildir(t, "bob", "h1", 2)
	adhoc = filepath.Join(f2.dir, "state", "journal")
	os.MkdirAll(adhoc, 0o755)
	j, _ = createJournal(adhoc, Plan{User: "bob", ID: "x2", From: "h1", To: "h2"}, Record{Step: StepCheck})
	j.Close()
	e = f2.engine(t)
	e.JournalDir = filepath.Join(f2.dir, "runs", "01", "journal")
	e.OtherJournals = func() []string { return []string{adhoc} }
	r = e.Move(context.Background(), Request{User: "bob", To: "h2"})
	if r.Outcome != OutcomeRefused || r.Reason != ReasonInProgress || !strings.Contains(r.Err.Error(), "maildist recover") {
		t.Fatalf("move: %+v; want refused, in progress, naming recover", r)
	}
}

// outsideHost answers for paths under a root it does not know as an agent
// started without the cluster's every root does.
type outsideHost struct {
	host.Host
	root string
}

func (h outsideHost) Lstat(ctx context.Context, p string) (host.Info, error) {
	if strings.HasPrefix(p, h.root+"/") {
		return host.Info{}, fmt.Errorf("path %q: path is outside the cluster's roots", p)
	}
	return h.Host.Lstat(ctx, p)
}

// A stub that could not be made on the old host is found out by the
// check, before anything is held, not after the switch.
func TestStubThatCannotBeMadeRefusedAtCheck(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 2)
	e := f.engine(t)
	hostOf := e.Host
	e.Host = func(n string) (host.Host, error) {
		h, err := hostOf(n)
		if n == "h1" && err == nil {
			h = outsideHost{h, "/h2"}
		}
		return h, err
	}
	before := snapshot(t, f.real("h1", "/h1/alice"))
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeRefused || !strings.Contains(r.Err.Error(), "the stub /h2/alice cannot be made on h1") {
		t.Fatalf("move: %+v", r)
	}
	f.settled(t, "alice", "h1", before)
}

// done does not wait for the queued mail of a user whose later move did
// not finish: that mail is held until recover; done says so at once.
func TestDoneDoesNotWaitForAUserHeldAgain(t *testing.T) {
	f := newFixture(t, map[string]string{"bob": "h1"})
	f.makeMaildir(t, "bob", "h1", 3)
	e := f.engine(t)
	if r := e.Move(context.Background(), Request{User: "bob", To: "h2"}); r.Outcome != OutcomeMoved {
		t.Fatal(r)
	}
	j, err := createJournal(e.JournalDir, Plan{User: "bob", ID: "again", From: "h2", To: "h1"}, Record{Step: StepCheck})
	if err != nil {
		t.Fatal(err)
	}
	j.Append(Record{Step: StepHold})
	j.Close()
	queue, calls := filepath.Join(f.dir, "queue.sh"), filepath.Join(f.dir, "calls")
	os.WriteFile(queue, []byte("#!/bin/sh\necho x >> "+calls+"\necho 'A1B2C3*    1234 Thu Dec  3 12:00:00  sender@x.org'\necho '                                         <bob@example.edu>'\n"), 0o755)
	entries, err := e.Done(context.Background(), DoneOptions{Queue: []string{queue}, Domain: "example.edu", Timeout: 20 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Status != DoneQueued || !strings.Contains(entries[0].Detail, "maildist recover") {
		t.Fatalf("done: %+v", entries)
	}
	if b, _ := os.ReadFile(calls); strings.Count(string(b), "x") != 1 {
		t.Errorf("the queue was read %d times: done waited for mail that only recover can release", strings.Count(string(b), "x"))
	}
}
