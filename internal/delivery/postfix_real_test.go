package delivery

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/mailtest"
)

// With a real Postfix delivering to a real Dovecot: a held user's mail,
// sent before and during the hold, stays deferred in Postfix's queue
// with the hold's reason, through flushes; everyone else's is delivered
// at once; the release delivers the held mail within a second and leaves
// the queue and the map empty.
func TestPostfixHoldsRealMail(t *testing.T) {
	mailtest.Require(t)
	dir := t.TempDir()
	passwd, homes := mailtest.Homes(t, dir, "alice", "bob")
	dc := mailtest.StartDovecot(t, mailtest.DovecotOptions{Dir: filepath.Join(dir, "dovecot"), Passwd: passwd})
	pf := mailtest.StartPostfix(t, mailtest.PostfixOptions{Dir: filepath.Join(dir, "postfix"), LMTP: dc.LMTP})
	ctx := context.Background()
	p := &Postfix{ConfigDir: pf.ConfigDir, TransportMap: pf.TransportMap, Domain: "example.test", Run: host.RunCommand}
	if err := p.Check(ctx, nil, "alice", homes["alice"], 6000, 6000); err != nil {
		t.Fatal(err)
	}
	count := func(u string) int { return mailtest.Count(filepath.Join(homes[u], "Maildir")) }
	waitCount := func(u string, n int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for count(u) < n {
			if time.Since(start) > within {
				t.Fatalf("%s has %d messages after %v, want %d\npostfix:\n%s", u, count(u), within, n, pf.LogText())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	send := func(id string, to ...string) {
		t.Helper()
		var rcpts []string
		for _, u := range to {
			rcpts = append(rcpts, u+"@example.test")
		}
		if err := mailtest.SendOne(pf.SMTP, "sender@example.org", rcpts, mailtest.NewMessage(id, rcpts[0])); err != nil {
			t.Fatal(err)
		}
	}

	send("before", "alice", "bob")
	waitCount("alice", 1, 5*time.Second)
	waitCount("bob", 1, 5*time.Second)

	if _, err := p.Start(ctx, nil, "alice", homes["alice"]); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		send("during"+string(rune('0'+i)), "alice", "bob")
	}
	if d := waitCount("bob", 6, 5*time.Second); d > 3*time.Second {
		t.Errorf("bob's mail took %v while alice was held", d)
	}
	// Flushing, as done and sendmail -q do, must not deliver held mail.
	for range 3 {
		pf.Command(ctx, "postqueue", "-f")
		time.Sleep(300 * time.Millisecond)
	}
	if n := count("alice"); n != 1 {
		t.Fatalf("alice got %d messages while held", n)
	}
	qs, err := pf.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, q := range qs {
		for _, r := range q.Recipients {
			if r.Address != "alice@example.test" || r.DelayReason != HoldReason {
				t.Errorf("queued: %s %q in %s", r.Address, r.DelayReason, q.QueueName)
			}
			held++
		}
	}
	if held != 5 {
		t.Errorf("%d held recipients queued, want 5", held)
	}
	out, _ := host.RunCommand(ctx, pf.Argv("postqueue", "-j"))
	if q := Queued(out, []string{"alice", "bob"}, "example.test"); !q["alice"] || q["bob"] {
		t.Errorf("Queued = %v, want alice only", q)
	}

	start := time.Now()
	if err := p.End(ctx, nil, "alice", homes["alice"]); err != nil {
		t.Fatal(err)
	}
	waitCount("alice", 6, 5*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("release took %v to deliver the held mail", d)
	}
	t.Logf("held mail delivered %v after the release began", time.Since(start).Round(time.Millisecond))
	if left, err := pf.WaitEmpty(ctx, 5*time.Second); err != nil || len(left) > 0 {
		t.Fatalf("queue after release: %v %v", left, err)
	}
	if h, _ := p.Held(); len(h) != 0 {
		t.Fatalf("map still holds %q", h)
	}
}

// Where smtpd refuses unlisted recipients, a held recipient is refused at
// RCPT time (its mail would stay with the sender): Check says so before
// anything is held.
func TestPostfixCheckRefusesRCPTTimeRefusal(t *testing.T) {
	mailtest.Require(t)
	dir := t.TempDir()
	passwd, homes := mailtest.Homes(t, dir, "alice")
	dc := mailtest.StartDovecot(t, mailtest.DovecotOptions{Dir: filepath.Join(dir, "dovecot"), Passwd: passwd})
	pf := mailtest.StartPostfix(t, mailtest.PostfixOptions{Dir: filepath.Join(dir, "postfix"), LMTP: dc.LMTP,
		Extra: "smtpd_reject_unlisted_recipient = yes"})
	ctx := context.Background()
	p := &Postfix{ConfigDir: pf.ConfigDir, TransportMap: pf.TransportMap, Domain: "example.test", Run: host.RunCommand}
	err := p.Check(ctx, nil, "alice", homes["alice"], 6000, 6000)
	if err == nil || !strings.Contains(err.Error(), "smtpd_reject_unlisted_recipient") {
		t.Fatalf("Check: %v", err)
	}
	// What Check prevents: held anyway, alice's mail is refused at RCPT.
	if _, err := p.Start(ctx, nil, "alice", homes["alice"]); err != nil {
		t.Fatal(err)
	}
	defer p.End(ctx, nil, "alice", homes["alice"])
	err = mailtest.SendOne(pf.SMTP, "sender@example.org", []string{"alice@example.test"}, mailtest.NewMessage("x", "alice@example.test"))
	if err == nil || !strings.Contains(err.Error(), "450") {
		t.Fatalf("send to a held recipient: %v, want 450 at RCPT", err)
	}
}
