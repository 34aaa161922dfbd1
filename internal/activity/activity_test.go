package activity

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestSameUser(t *testing.T) {
	for _, tc := range []struct {
		printed, user string
		want          bool
	}{
		{"alice", "alice", true},
		{"alice@example.edu", "alice", true},
		{"alice", "alice@example.edu", true},
		{"alice@EXAMPLE.edu", "alice", true},
		{"alice@other.org", "alice", false},
		{"alicex", "alice", false},
		{"bob", "alice", false},
	} {
		if got := SameUser(tc.printed, tc.user, "example.edu"); got != tc.want {
			t.Errorf("SameUser(%q,%q) = %v", tc.printed, tc.user, got)
		}
	}
}

func TestParseWho(t *testing.T) {
	out := []byte("username                   proto pid   ip\n" +
		"alice@example.edu          imap  (1234) (127.0.0.1)\n" +
		"alice@example.edu          imap  (1240) (127.0.0.1)\n" +
		"bob                        pop3  (99) (10.0.0.2)\n")
	ss := ParseWho(out, "alice", "example.edu")
	if len(ss) != 2 || ss[0].PID != 1234 || ss[0].Service != "imap" || ss[0].Remote != "127.0.0.1" {
		t.Fatalf("got %+v", ss)
	}
	if all := ParseWho(out, "", ""); len(all) != 3 {
		t.Fatalf("all = %+v", all)
	}
}

func TestCommand(t *testing.T) {
	run := func(ctx context.Context, argv []string) ([]byte, error) {
		return []byte("# who\ncarol\nalice@example.edu 3h\n{\"user\":\"dave\",\"service\":\"imap\",\"pid\":7}\n"), nil
	}
	c := &Command{Command: []string{"who-is-on"}, Domain: "example.edu", Run: run}
	for user, want := range map[string]int{"alice": 1, "carol": 1, "dave": 1, "erin": 0} {
		ss, err := c.Sessions(context.Background(), user, -1)
		if err != nil || len(ss) != want {
			t.Errorf("%s: %+v %v", user, ss, err)
		}
	}
}

// A real process with a service's name, running as a given uid, is seen;
// after it exits it is not.
func TestProcSeesRealProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "imap")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	p := &Proc{Services: []string{"imap"}}
	uid := os.Getuid()
	var ss []Session
	for i := 0; i < 50; i++ { // the exec may take a moment to show its new name
		ss, err = p.Sessions(context.Background(), "someone", uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	found := false
	for _, s := range ss {
		if s.PID == cmd.Process.Pid {
			found = true
			if s.Since.IsZero() || time.Since(s.Since) > time.Minute {
				t.Errorf("start time %v", s.Since)
			}
		}
	}
	if !found {
		t.Fatalf("process %d not seen in %+v", cmd.Process.Pid, ss)
	}
	cmd.Process.Kill()
	cmd.Wait()
	ss, _ = p.Sessions(context.Background(), "someone", uid)
	for _, s := range ss {
		if s.PID == cmd.Process.Pid {
			t.Fatal("dead process still seen")
		}
	}
	// Another uid's process is not this user's.
	ss, _ = p.Sessions(context.Background(), "someone", uid+12345)
	if len(ss) != 0 {
		t.Fatalf("sessions of an unused uid: %+v", ss)
	}
	if _, err := p.Sessions(context.Background(), "someone", -1); err == nil {
		t.Fatal("unknown uid must be an error (fail closed)")
	}
}
