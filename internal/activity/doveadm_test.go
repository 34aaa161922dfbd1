package activity

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/mailtest"
)

// Output of `doveadm who -1` from Dovecot 2.3.19.1: a header, then one
// line a connection with bare pid and address, padded with spaces.
const who2319 = "username                          proto pid   ip       \n" +
	"bob                               imap  18313 127.0.0.1\n" +
	"alice                             imap  18311 127.0.0.1\n" +
	"alice                             pop3  18320 ::1      \n"

func TestParseWhoDovecot2319(t *testing.T) {
	ss := ParseWho([]byte(who2319), "alice", "example.test")
	if len(ss) != 2 {
		t.Fatalf("got %+v", ss)
	}
	if ss[0] != (Session{User: "alice", Service: "imap", PID: 18311, Remote: "127.0.0.1"}) ||
		ss[1] != (Session{User: "alice", Service: "pop3", PID: 18320, Remote: "::1"}) {
		t.Errorf("got %+v", ss)
	}
	if all := ParseWho([]byte(who2319), "", ""); len(all) != 3 {
		t.Errorf("all: %+v", all)
	}
}

// A user may be called "username": only the header is skipped.
func TestParseWhoUserNamedUsername(t *testing.T) {
	out := []byte(who2319 + "username                          imap  4242  10.0.0.7\n")
	ss := ParseWho(out, "username", "")
	if len(ss) != 1 || ss[0].PID != 4242 {
		t.Fatalf("got %+v", ss)
	}
	// The header of the grouped format (without -1) is no user either.
	if ss := ParseWho([]byte("username # proto (pids) (ips)\n"), "", ""); len(ss) != 0 {
		t.Fatalf("got %+v", ss)
	}
}

func FuzzParseWho(f *testing.F) {
	f.Add([]byte(who2319), "alice")
	f.Add([]byte("username # proto (pids) (ips)\nalice 2 imap (1 2) (a b)\n"), "")
	f.Fuzz(func(t *testing.T, out []byte, user string) {
		for _, s := range ParseWho(out, user, "example.test") {
			if s.User == "" || s.Service == "" || strings.ContainsAny(s.User+s.Service+s.Remote, " \t\n") {
				t.Fatalf("session %+v", s)
			}
			if user != "" && !SameUser(s.User, user, "example.test") {
				t.Fatalf("session of %q listed for %q", s.User, user)
			}
		}
	})
}

func runCmd(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
}

// Against a real Dovecot, with its config given as activity.doveadm: the
// source sees each IMAP session of a user while it is open, with its pid
// and address, and none once it is closed; an unreachable Dovecot is an
// error (the move then refuses: fail closed).
func TestDoveadmRealDovecot(t *testing.T) {
	mailtest.Require(t)
	dir := t.TempDir()
	passwd, _ := mailtest.Homes(t, dir, "alice", "bob")
	d := mailtest.StartDovecot(t, mailtest.DovecotOptions{Dir: filepath.Join(dir, "dovecot"), Passwd: passwd})
	src := &Doveadm{Command: d.Doveadm(), Domain: "example.test", Run: runCmd}
	ctx := context.Background()

	a1, err := mailtest.LoginIMAP(d.IMAP, "alice", mailtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := mailtest.LoginIMAP(d.IMAP, "alice@example.test", mailtest.Password)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice", "alice@example.test"} {
		ss, err := src.Sessions(ctx, user, -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 2 {
			t.Fatalf("%s: %+v", user, ss)
		}
		for _, s := range ss {
			if s.Service != "imap" || s.PID <= 0 || s.Remote != "127.0.0.1" {
				t.Errorf("%s: session %+v", user, s)
			}
		}
	}
	if ss, err := src.Sessions(ctx, "bob", -1); err != nil || len(ss) != 0 {
		t.Fatalf("bob: %+v %v", ss, err)
	}
	a1.Logout()
	a2.Logout()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ss, err := src.Sessions(ctx, "alice", -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still listed after logout: %+v", ss)
		}
		time.Sleep(50 * time.Millisecond)
	}

	bad := &Doveadm{Command: []string{mailtest.Bin("doveadm"), "-c", filepath.Join(dir, "missing.conf")}, Run: runCmd}
	if _, err := bad.Sessions(ctx, "alice", -1); err == nil {
		t.Fatal("an unreadable doveadm config must be an error")
	}
}
