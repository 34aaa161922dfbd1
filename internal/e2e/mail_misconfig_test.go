package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/mailtest"
	"github.com/maildist/maildist/internal/sandbox"
)

// The misconfiguration: hold = "rename" where the users can write the
// folder above their homes, so that Dovecot recreates a renamed-away home
// on the next delivery or login. maildist says so and refuses before
// holding anything. Told to go on (--unsafe-hold), it moves the user all
// the same, and the mail Dovecot delivered over LMTP and the message a
// client appended into the recreated home during the hold are carried
// into the user's new home: each once, nothing lost, nothing else changed.
func TestMailRenameHoldWhereDovecotRecreatesHomes(t *testing.T) {
	s := newMailSite(t, siteOptions{users: 3, rootMode: 0o777, hosts: []sandbox.HostSpec{
		{Name: "bp01", Weight: 1, AcceptNew: true, Share: 1},
		{Name: "bp02", Weight: 1, AcceptNew: true, Share: 1},
	}})
	// No hold marker: a login during the hold reaches Dovecot, which then
	// makes the missing home, as an unprepared site's would.
	s.writeConfig(siteConfig{hold: "rename", marker: false, settle: "60s"})
	u := s.names()[0]
	from, to := s.hostOf(u), s.otherHost(u)
	home := s.home(u)
	before := s.view(u)
	passwdBefore, _ := os.ReadFile(s.passwd)

	r := s.maildist([]int{3}, "move", u, to)
	if !strings.Contains(r.stderr+r.stdout, "cannot hold") || !strings.Contains(r.stderr+r.stdout, "recreate") || !strings.Contains(r.stdout, "unsafe-hold") {
		t.Errorf("the refusal does not say why:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if _, err := os.Stat(home + ".moving"); err == nil {
		t.Fatal("refused, but the home was renamed")
	}
	if now, _ := os.ReadFile(s.passwd); !bytes.Equal(now, passwdBefore) || s.hostOf(u) != from {
		t.Fatal("refused, but the directory changed")
	}

	// Told to go on: a file held open under the home keeps the move in its
	// settle step, with the home renamed away, while mail arrives.
	f, err := os.Open(filepath.Join(home, "Maildir", "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd, out := s.start("move", "--unsafe-hold", u, to)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(home + ".moving"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the home was not renamed: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("delivered-in-hold-%d", i)
		ids = append(ids, id)
		if err := mailtest.SendOne(s.pf.SMTP, "sender@example.org", []string{u + "@" + mailDomain}, mailtest.NewMessage(id, u+"@"+mailDomain)); err != nil {
			t.Fatal(err)
		}
	}
	for mailtest.Count(filepath.Join(home, "Maildir")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot did not deliver into a recreated home (%d there)", mailtest.Count(filepath.Join(home, "Maildir")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := s.mustLogin(u)
	appended := "appended-in-hold"
	ids = append(ids, appended)
	if err := c.Append("INBOX", []string{`\Seen`, "Maildist_Project"}, time.Date(2001, 5, 4, 3, 2, 1, 0, time.UTC),
		bytes.NewBuffer(mailtest.NewMessage(appended, u+"@"+mailDomain))); err != nil {
		t.Fatalf("APPEND during the hold: %v", err)
	}
	c.logout()
	f.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("maildist move --unsafe-hold: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "home-recreated") {
		t.Errorf("the recreated home was not reported:\n%s", out)
	}
	t.Logf("move --unsafe-hold:\n%s", out)
	if s.hostOf(u) != to {
		t.Fatalf("%s is on %s, want %s", u, s.hostOf(u), to)
	}
	// Dovecot re-reads a passwd-file at most once a second: without the
	// hold marker, a login in the second after the switch may still be
	// given the old home, which Dovecot would make again here.
	time.Sleep(1500 * time.Millisecond)
	s.maildist(nil, "done", "--poll", "200ms", "--timeout", "60s")
	s.drained(10 * time.Second)

	after := s.view(u)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, d := range mailtest.Compare(before.snap, after.snap, func(folder string, m mailtest.Message) bool {
		return folder == "INBOX" && want[m.ID]
	}) {
		t.Errorf("%s: %s", u, d)
	}
	got := after.snap.IDs()
	for _, id := range ids {
		if len(got[id]) != 1 {
			t.Errorf("%s is in %q, want once in INBOX", id, got[id])
		}
	}
	if _, err := os.Stat(home); err == nil {
		t.Errorf("the recreated home %s is still there after done", home)
	}
}
