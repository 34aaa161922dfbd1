package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/sandbox"
)

// With the directory in an SQL table that Dovecot's passdb and userdb
// read (the default schema, through sqltest.DovecotSQL), a moved user is
// served from the new home at once: logins are refused while held (the
// nologin column), mail held meanwhile lands in the new home, and the
// client sees everything as it was.
func TestMailSQLUserdbServesMovedUser(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			s := newMailSite(t, siteOptions{users: 3, sql: driver, hosts: []sandbox.HostSpec{
				{Name: "bp01", Weight: 1, AcceptNew: true, Share: 1},
				{Name: "bp02", Weight: 1, AcceptNew: true, Share: 1},
			}})
			s.writeConfig(siteConfig{hold: "postfix"})
			u := s.names()[0]
			to := s.otherHost(u)
			before := s.view(u)
			sd := s.startSender([]string{u}, 100*time.Millisecond)
			sd.setMoving(true, u)
			time.Sleep(300 * time.Millisecond)
			r := s.maildist(nil, "move", u, to)
			t.Logf("%s", strings.TrimSpace(r.stdout))
			s.maildist(nil, "done", "--poll", "200ms", "--timeout", "60s")
			sent := sd.finish(t)
			s.drained(30 * time.Second)
			if s.hostOf(u) != to {
				t.Fatalf("%s is on %s, want %s", u, s.hostOf(u), to)
			}
			out, err := s.dc.Run(context.Background(), "user", "-f", "home", u)
			if err != nil || strings.TrimSpace(out) != s.home(u) {
				t.Fatalf("Dovecot's userdb gives %s the home %q (%v), want %s", u, strings.TrimSpace(out), err, s.home(u))
			}
			after := map[string]view{u: s.view(u)}
			s.checkViews(map[string]view{u: before}, after, sent)
			s.checkSent(sent, after)
			if len(sent) == 0 {
				t.Fatal("nothing was sent during the move")
			}
		})
	}
}
