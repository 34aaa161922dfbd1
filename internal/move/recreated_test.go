package move

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/delivery"
)

// recreate makes the user's old home again, as Dovecot does on a login or
// an LMTP delivery where the user can write the folder above, with one
// delivered message in it.
func recreate(t *testing.T, f *fixture, hostName, user, msg string) {
	t.Helper()
	home := f.real(hostName, "/"+hostName+"/"+user)
	for _, d := range []string{"Maildir/cur", "Maildir/new", "Maildir/tmp"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(home, "Maildir/dovecot.index.log"), []byte("index"), 0o600)
	if err := os.WriteFile(filepath.Join(home, "Maildir/new", msg), []byte("Subject: "+msg+"\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func hasMessage(t *testing.T, home, msg string) int {
	t.Helper()
	n := 0
	for _, d := range []string{"Maildir/new", "Maildir/cur"} {
		ents, _ := os.ReadDir(filepath.Join(home, d))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), msg) {
				n++
			}
		}
	}
	return n
}

func warned(f *fixture) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.events {
		if ev.Reason == ReasonRecreated {
			return true
		}
	}
	return false
}

// The old home is recreated during the hold and the move goes on: the
// mail written there reaches the new home, and the operator is told.
func TestRecreatedHomeCarriedForward(t *testing.T) {
	for _, at := range []Step{StepSettle, StepVerify, StepSwitch, StepRelease} {
		t.Run(string(at), func(t *testing.T) {
			f := newFixture(t, map[string]string{"alice": "h1"})
			f.makeMaildir(t, "alice", "h1", 6)
			e := f.engine(t)
			e.Hold = &delivery.Rename{AllowUnsafe: true}
			e.Hook = func(user string, s Step) error {
				if s == at {
					recreate(t, f, "h1", "alice", "1700000999.recreated.host,S=30")
				}
				return nil
			}
			r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
			if r.Outcome != OutcomeMoved {
				t.Fatalf("got %v", r)
			}
			if n := hasMessage(t, f.real("h2", "/h2/alice"), "1700000999.recreated"); n != 1 {
				t.Fatalf("the message written to the recreated home is in the new home %d times", n)
			}
			if !warned(f) {
				t.Error("no home-recreated warning")
			}
			if _, err := os.Lstat(f.real("h1", "/h1/alice")); !errors.Is(err, os.ErrNotExist) {
				t.Error("the recreated home is still in place")
			}
			if _, err := e.Done(context.Background(), DoneOptions{}); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(f.real("h1", "/h1/"+trashDir)); len(ents) != 0 {
				t.Errorf("trash after done: %v", ents)
			}
		})
	}
}

// The home is recreated and the move then fails: the old home is put
// back and the new mail is carried into it.
func TestRecreatedHomeCarriedBackOnUndo(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 6)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	e := f.engine(t)
	e.Hold = &delivery.Rename{AllowUnsafe: true}
	e.Hook = func(user string, s Step) error {
		if s == StepCommit {
			recreate(t, f, "h1", "alice", "1700000999.recreated.host,S=30")
			return errors.New("injected fault")
		}
		return nil
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeFailed {
		t.Fatalf("got %v", r)
	}
	home := f.real("h1", "/h1/alice")
	if n := hasMessage(t, home, "1700000999.recreated"); n != 1 {
		t.Fatalf("carried message found %d times in the old home", n)
	}
	// Everything that was there before is there still.
	after := snapshot(t, home)
	for _, en := range before.Entries {
		if en.Kind == 2 /* file */ && after.Find(en.Path) == nil {
			t.Errorf("%s lost", en.Path)
		}
	}
	if _, err := os.Lstat(home + ".moving"); err == nil {
		t.Fatal("still held")
	}
	if f.home("alice") != "/h1/alice" {
		t.Fatal("directory changed")
	}
}

// A delivery that looked the old home up just before the switch makes it
// again after the release: done carries that mail too before it purges.
func TestRecreatedAfterReleaseCarriedByDone(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 3)
	e := f.engine(t)
	e.Hold = &delivery.Rename{AllowUnsafe: true}
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2"}); r.Outcome != OutcomeMoved {
		t.Fatal(r)
	}
	recreate(t, f, "h1", "alice", "1700000999.late.host,S=30")
	if _, err := e.Done(context.Background(), DoneOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := hasMessage(t, f.real("h2", "/h2/alice"), "1700000999.late"); n != 1 {
		t.Fatalf("late message in the new home %d times", n)
	}
	if _, err := os.Lstat(f.real("h1", "/h1/alice")); err == nil {
		t.Fatal("recreated home left on the old host")
	}
}

type fakeKicker struct {
	f      *fixture
	called int
	held   bool
}

func (k *fakeKicker) Kick(ctx context.Context, user string, uid int, hosts []string) error {
	k.called++
	_, err := os.Lstat(k.f.real("h1", "/h1/"+user+".moving"))
	k.held = err == nil
	k.f.mu.Lock()
	k.f.active[user] = false
	k.f.mu.Unlock()
	return nil
}

// --kick moves a user with a live session: the sessions are ended once the
// hold has begun, so a client reconnecting meanwhile is refused.
func TestKickAfterHold(t *testing.T) {
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 3)
	before := snapshot(t, f.real("h1", "/h1/alice"))
	f.active["alice"] = true
	e := f.engine(t)
	if r := e.Move(context.Background(), Request{User: "alice", To: "h2", Kick: true}); r.Outcome != OutcomeRefused {
		t.Fatalf("kick without a kicker: %v", r)
	}
	k := &fakeKicker{f: f}
	e.Kicker = k
	r := e.Move(context.Background(), Request{User: "alice", To: "h2", Kick: true})
	if r.Outcome != OutcomeMoved {
		t.Fatalf("got %v", r)
	}
	if k.called != 1 || !k.held {
		t.Fatalf("kicked %d times, held then: %v", k.called, k.held)
	}
	f.settled(t, "alice", "h2", before)
}
