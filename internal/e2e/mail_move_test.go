package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
)

// Users of a real Dovecot and Postfix are moved while mail keeps coming,
// and their IMAP and POP3 clients notice nothing.
//
// Enron messages are delivered over SMTP to several users on three hosts;
// an IMAP client makes folders, subscribes, copies, sets \Seen, \Flagged,
// $Forwarded and keywords, and expunges. What every client sees is
// recorded: per folder UIDVALIDITY, UIDNEXT, every UID with flags,
// keywords, INTERNALDATE, RFC822.SIZE and a hash of the body; the
// subscriptions; the POP3 UIDLs. Then, while a sender keeps sending to the
// users being moved and to the others, users are moved with `maildist
// move` (hold = "postfix", two at once; then hold = "rename") and with a
// whole survey → plan → assign → run → done round (hold = "postfix")
// that empties a host. Afterwards every recorded value is the same for
// every user, every message sent meanwhile is in its user's INBOX exactly
// once, mail to users not being moved waited no more than a few seconds,
// nothing is left in Postfix's queue or the hold map, and the survey of
// Dovecot's log gives each user the connect time the test measured.
func TestMailMovesUnnoticed(t *testing.T) {
	s := newMailSite(t, siteOptions{users: 9, hosts: []sandbox.HostSpec{
		{Name: "bp01", Weight: 1, AcceptNew: true, Share: 2},
		{Name: "bp02", Weight: 1, AcceptNew: true, Share: 2},
		{Name: "bp03", Weight: 1, AcceptNew: true, Share: 1},
	}})
	all := s.names()
	scripted := all[:5]
	s.deliverEnron(scripted, 300)
	for i, u := range scripted {
		s.script(u, i)
	}
	before := s.views(all)
	total := 0
	for _, v := range before {
		total += v.snap.Messages()
	}
	t.Logf("recorded %d messages of %d users", total, len(all))

	sd := s.startSender(all, 40*time.Millisecond)
	defer func() {
		select {
		case <-sd.stop:
		default:
			close(sd.stop)
		}
	}()

	// 1. Two moves at once, held in Postfix's queue.
	s.writeConfig(siteConfig{hold: "postfix", marker: true})
	a, b := scripted[0], scripted[1]
	if s.hostOf(a) == s.hostOf(b) {
		b = scripted[2]
	}
	wantHost := map[string]string{a: s.otherHost(a), b: s.otherHost(b)}
	sd.setMoving(true, a, b)
	time.Sleep(300 * time.Millisecond) // mail queued and in flight as the moves begin
	ca, outA := s.start("move", a, wantHost[a])
	cb, outB := s.start("move", b, wantHost[b])
	for _, c := range []struct {
		cmd interface{ Wait() error }
		out *strings.Builder
	}{{ca, outA}, {cb, outB}} {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("maildist move: %v\n%s", err, c.out)
		}
	}
	t.Logf("moves with hold = postfix:\n%s%s", outA, outB)
	time.Sleep(300 * time.Millisecond)
	s.maildist(nil, "done", "--poll", "200ms", "--timeout", "60s")
	sd.setMoving(false, a, b)
	for u, h := range wantHost {
		if got := s.hostOf(u); got != h {
			t.Errorf("%s is on %s, want %s", u, got, h)
		}
	}

	// 2. A move held by renaming the home (safe: the roots are 0711).
	s.writeConfig(siteConfig{hold: "rename", marker: true})
	c := scripted[3]
	to := s.otherHost(c)
	sd.setMoving(true, c)
	time.Sleep(300 * time.Millisecond)
	r := s.maildist(nil, "move", c, to)
	t.Logf("move with hold = rename: %s", strings.TrimSpace(r.stdout))
	time.Sleep(300 * time.Millisecond)
	s.maildist(nil, "done", "--poll", "200ms", "--timeout", "60s")
	sd.setMoving(false, c)
	if got := s.hostOf(c); got != to {
		t.Errorf("%s is on %s, want %s", c, got, to)
	}

	// 3. The main job: survey, plan, assign, run, done, emptying bp03.
	s.writeConfig(siteConfig{hold: "postfix", marker: true, drain: "bp03"})
	rd := filepath.Join(t.TempDir(), "run")
	s.maildist(nil, "survey", rd)
	s.maildist(nil, "plan", rd, "--seed", "3")
	s.maildist(nil, "assign", rd)
	todo, err := runstate.ReadTodo(filepath.Join(rd, runstate.TodoFile))
	if err != nil {
		t.Fatal(err)
	}
	var round []string
	for _, td := range todo {
		round = append(round, td.User)
	}
	if len(round) == 0 {
		t.Fatal("the plan moves no one off bp03")
	}
	sd.setMoving(true, round...)
	time.Sleep(300 * time.Millisecond)
	r = s.maildist(nil, "run", rd, "--parallel", "2", "--per-host", "2", "--progress", "lines")
	t.Logf("run:\n%s", r.stdout)
	time.Sleep(300 * time.Millisecond)
	s.maildist(nil, "done", rd, "--poll", "200ms", "--timeout", "60s")
	sd.setMoving(false, round...)
	for _, td := range todo {
		if got := s.hostOf(td.User); got != td.To {
			t.Errorf("%s is on %s, want %s (todo)", td.User, got, td.To)
		}
	}

	// Let the last messages land, then look at everything.
	time.Sleep(300 * time.Millisecond)
	sent := sd.finish(t)
	s.drained(30 * time.Second)
	after := s.views(all)
	s.checkViews(before, after, sent)
	s.checkSent(sent, after)
	moved := slices.Concat([]string{a, b, c}, round)
	t.Logf("moved %d users (%s); %d sent while moving", len(moved), strings.Join(moved, " "), len(sent))
	s.checkSurvey()
}
