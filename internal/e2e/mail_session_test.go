package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/mailtest"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
)

// idler is an IMAP client sitting in IDLE on the INBOX, as a mail client
// left open on a desk does.
type idler struct {
	c     *imapSession
	stop  chan struct{}
	idled chan struct{}  // closed when IDLE has returned
	ended chan time.Time // when the client saw its session end
}

func (s *mailSite) startIdle(user string) *idler {
	s.t.Helper()
	c := s.mustLogin(user)
	if _, err := c.Select("INBOX", false); err != nil {
		s.t.Fatalf("%s: SELECT: %v", user, err)
	}
	in := &idler{c: c, stop: make(chan struct{}), idled: make(chan struct{}), ended: make(chan time.Time, 1)}
	go func() {
		c.Idle(in.stop, nil)
		close(in.idled)
		select {
		case <-in.stop:
		case <-c.LoggedOut():
			in.ended <- time.Now()
		}
	}()
	return in
}

// close ends IDLE and logs out.
func (in *idler) close() {
	close(in.stop)
	<-in.idled // IDLE's DONE is written before LOGOUT
	in.c.logout()
}

// waitGone waits until doveadm who lists no session of user.
func (s *mailSite) waitGone(user string) {
	s.t.Helper()
	src := &activity.Doveadm{Command: s.dc.Doveadm(), Domain: mailDomain, Run: runArgv}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, err := src.Sessions(context.Background(), user, -1)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(ss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s still has sessions: %v", user, ss)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runArgv(ctx context.Context, argv []string) ([]byte, error) {
	return mailtest.RunArgv(ctx, argv)
}

// A user with an IMAP client in IDLE is not moved (activity doveadm sees
// the session) and is moved by a later round once the client has closed;
// with --kick a user in IDLE is moved at once: the session is ended after
// the hold begins, the client's reconnects are refused while the user is
// held, and once in, it finds the same UIDVALIDITY, UIDs, flags and
// everything else it had. The survey of Dovecot's log then gives each
// user the connect time the test measured, kicked sessions included.
func TestMailLiveSessionWaitsOrIsKicked(t *testing.T) {
	s := newMailSite(t, siteOptions{users: 5, hosts: []sandbox.HostSpec{
		{Name: "bp01", Weight: 1, AcceptNew: true, Share: 1},
		{Name: "bp02", Weight: 1, AcceptNew: true, Share: 1},
	}})
	s.writeConfig(siteConfig{hold: "postfix", marker: true})
	users := s.names()
	x, y, z := users[0], users[1], users[2]

	// A round while x sits in IDLE: y moves, x is refused as active.
	in := s.startIdle(x)
	time.Sleep(1200 * time.Millisecond) // a measurable session
	rd := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(rd, 0o755)
	todo := []cluster.Todo{{User: x, From: s.hostOf(x), To: s.otherHost(x)}, {User: y, From: s.hostOf(y), To: s.otherHost(y)}}
	if err := runstate.WriteTodo(filepath.Join(rd, runstate.TodoFile), todo); err != nil {
		t.Fatal(err)
	}
	s.maildist([]int{3}, "run", rd)
	if s.hostOf(y) != todo[1].To || s.hostOf(x) != todo[0].From {
		t.Fatalf("after the first round: %s on %s, %s on %s", x, s.hostOf(x), y, s.hostOf(y))
	}
	if got := results(t, rd)[x]; got["refused:active"] != 1 {
		t.Errorf("%s's results in the first round: %v, want refused:active", x, got)
	}
	in.close()
	s.waitGone(x)
	s.maildist(nil, "run", rd)
	if s.hostOf(x) != todo[0].To {
		t.Fatalf("%s is on %s after the second round, want %s", x, s.hostOf(x), todo[0].To)
	}
	s.maildist(nil, "done", rd, "--poll", "200ms", "--timeout", "60s")

	// --kick: z in IDLE is moved at once, and its client reconnects to
	// the mailbox it knew.
	before := s.view(z)
	in = s.startIdle(z)
	time.Sleep(1200 * time.Millisecond)
	to := s.otherHost(z)
	start := time.Now()
	cmd, out := s.start("move", "--kick", z, to)
	var kickedAt time.Time
	select {
	case kickedAt = <-in.ended:
	case <-time.After(30 * time.Second):
		t.Fatalf("the IDLE session of %s was not ended", z)
	}
	in.c.ended(kickedAt)
	// The client reconnects at once and keeps trying while z is held.
	refused := 0
	var c *imapSession
	for {
		var err error
		c, err = s.login(z)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "being_moved") && !strings.Contains(err.Error(), "being moved") {
			t.Fatalf("reconnect of %s: %v", z, err)
		}
		refused++
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s still refused after 60s: %v", z, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	snap, err := mailtest.Take(c.Client)
	c.logout()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("maildist move --kick: %v\n%s", err, out)
	}
	t.Logf("kicked after %v, %d reconnect(s) refused while held; %s", kickedAt.Sub(start).Round(time.Millisecond), refused, strings.TrimSpace(out.String()))
	if s.hostOf(z) != to {
		t.Fatalf("%s is on %s, want %s", z, s.hostOf(z), to)
	}
	if refused == 0 {
		t.Errorf("no reconnect was refused while %s was held", z)
	}
	for _, d := range mailtest.Compare(before.snap, snap, nil) {
		t.Errorf("%s after the kick: %s", z, d)
	}
	s.maildist(nil, "done", "--poll", "200ms", "--timeout", "60s")
	s.drained(10 * time.Second)
	s.checkSurvey()
}
