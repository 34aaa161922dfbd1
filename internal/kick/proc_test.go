package kick

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spareUID runs the test processes when the tests run as root, so that
// the uid in the check is not simply the test's own.
const spareUID = 64201

// proc is a running test process with a service's name.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	p    Process
}

// startNamed starts sleep under another name (a symlink's, as a mail
// daemon's imap process shows in /proc), as spareUID when root. With
// ignoreTerm it ignores SIGTERM, as a stuck process may.
func startNamed(t *testing.T, name string, ignoreTerm bool) *proc {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir, err := os.MkdirTemp("", "maildist-kick-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the spare uid must reach it
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if ignoreTerm {
		// An ignored signal stays ignored across exec.
		cmd = exec.Command("/bin/sh", "-c", `trap "" TERM; exec "$0" 60`, bin)
	}
	uid := os.Getuid()
	if os.Geteuid() == 0 {
		uid = spareUID
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: spareUID, Gid: spareUID}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	var e Ender
	for i := 0; ; i++ { // until the exec has given it its name
		s, err := e.read(cmd.Process.Pid)
		if err == nil && s.Name == name {
			if s.UID != uid || s.Since.IsZero() {
				t.Fatalf("process %d: uid %d since %v", cmd.Process.Pid, s.UID, s.Since)
			}
			p.p = s.Process
			return p
		}
		if i == 200 {
			t.Fatalf("process %d never showed as %s: %+v %v", cmd.Process.Pid, name, s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

func TestEndTermThenKill(t *testing.T) {
	for _, noPidfd := range []bool{false, true} {
		soft := startNamed(t, "mdkick-imap", false)
		stuck := startNamed(t, "mdkick-imap", true)
		e := &Ender{Grace: 300 * time.Millisecond, noPidfd: noPidfd}
		start := time.Now()
		rs := e.End(context.Background(), []Process{soft.p, stuck.p})
		if rs[0].Err != nil || rs[0].Ended != EndedTerm {
			t.Errorf("pidfd %v: soft: %+v", !noPidfd, rs[0])
		}
		if rs[1].Err != nil || rs[1].Ended != EndedKill {
			t.Errorf("pidfd %v: stuck: %+v", !noPidfd, rs[1])
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("SIGKILL came after %v, before the grace period", d)
		}
		if soft.alive() || stuck.alive() {
			t.Fatalf("pidfd %v: still running after End", !noPidfd)
		}
	}
}

// A pid that names another process now (reused by another name, another
// uid, or started at another time) is not signalled.
func TestEndRefusesAnotherProcess(t *testing.T) {
	for _, noPidfd := range []bool{false, true} {
		p := startNamed(t, "mdkick-imap", false)
		renamed, otherUID, otherStart := p.p, p.p, p.p
		renamed.Name = "mdkick-pop3"
		otherUID.UID++
		otherStart.Since = otherStart.Since.Add(-time.Hour)
		e := &Ender{Grace: 100 * time.Millisecond, noPidfd: noPidfd}
		for _, r := range e.End(context.Background(), []Process{renamed, otherUID, otherStart}) {
			if !errors.Is(r.Err, ErrNotSame) || r.Ended != "" {
				t.Errorf("pidfd %v: %+v: want ErrNotSame", !noPidfd, r)
			}
		}
		if !p.alive() {
			t.Fatalf("pidfd %v: a process that was not the one listed was ended", !noPidfd)
		}
		// The process as listed is ended.
		if r := e.End(context.Background(), []Process{p.p})[0]; r.Err != nil || r.Ended != EndedTerm {
			t.Errorf("pidfd %v: %+v", !noPidfd, r)
		}
	}
}

func TestEndGone(t *testing.T) {
	p := startNamed(t, "mdkick-imap", false)
	p.cmd.Process.Kill()
	<-p.done
	r := (&Ender{}).End(context.Background(), []Process{p.p})[0]
	if r.Err != nil || r.Ended != EndedGone {
		t.Errorf("%+v", r)
	}
}

func TestDoveadmKick(t *testing.T) {
	var got []string
	run := func(ctx context.Context, argv []string) ([]byte, error) { got = argv; return nil, nil }
	if err := DoveadmKick(context.Background(), run, []string{"doveadm", "-c", "/etc/dovecot.conf"}, "alice@example.edu"); err != nil {
		t.Fatal(err)
	}
	if want := "doveadm -c /etc/dovecot.conf kick alice@example.edu"; strings.Join(got, " ") != want {
		t.Errorf("ran %q, want %q", strings.Join(got, " "), want)
	}
	if err := DoveadmKick(context.Background(), run, []string{"doveadm"}, "-A"); err == nil {
		t.Error("an option taken for a user")
	}
}
