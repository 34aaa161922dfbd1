package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sessionProc is a test process posing as a mail daemon's session.
type sessionProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *sessionProc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process is still running a moment later.
func (p *sessionProc) alive() bool {
	select {
	case <-p.done:
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

// startSession starts sleep under the name service (through a symlink, as
// internal/activity's test does) as uid when running as root. With
// ignoreTerm the process ignores SIGTERM, as a stuck one may.
func startSession(t *testing.T, service string, uid int, ignoreTerm bool) *sessionProc {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir, err := os.MkdirTemp("", "maildist-sessions-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, service)
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "120")
	if ignoreTerm {
		cmd = exec.Command("/bin/sh", "-c", `trap "" TERM; exec "$0" 120`, bin)
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &sessionProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	// Until exec has given it its name.
	for i := 0; ; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		if strings.Contains(string(b), "Name:\t"+service+"\n") {
			return p
		}
		if i == 300 {
			t.Fatalf("process %d never showed as %s", cmd.Process.Pid, service)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sessionsConfig(t *testing.T, passwd, activity string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := `domain = "example.edu"
[directory]
path = "passwd"
[delivery]
stub = "none"
` + activity + `
[[host]]
name = "bp04"
root = "/bp04"
fsroot = "cluster/bp04"
`
	p := filepath.Join(dir, "maildist.toml")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sessionsJSON runs sessions --json and returns its report.
func sessionsJSON(t *testing.T, args ...string) (int, sessionsReport, string) {
	t.Helper()
	code, out, errs := runMain(append([]string{"--json"}, args...)...)
	var rep sessionsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d, %v:\n%s\n%s", code, err, out, errs)
	}
	return code, rep, errs
}

// byPID indexes a report's sessions by pid.
func byPID(rep sessionsReport) map[int]sessionRow {
	m := map[int]sessionRow{}
	for _, r := range rep.Sessions {
		m[r.PID] = r
	}
	return m
}

func TestSessionsProc(t *testing.T) {
	const service = "mdsess-imap"
	// Users of their own uids (spare ones when root, so that matching by
	// uid is exercised), and carol and dave sharing one.
	alice, bob, shared := 64211, 64212, 64213
	root := os.Geteuid() == 0
	if !root {
		alice, bob, shared = os.Getuid(), -1, -1
	}
	passwd := "alice:x:" + strconv.Itoa(alice) + ":" + strconv.Itoa(alice) + "::/bp04/alice:/bin/sh\n"
	if root {
		passwd += "bob:x:" + strconv.Itoa(bob) + ":" + strconv.Itoa(bob) + "::/bp04/bob:/bin/sh\n" +
			"carol:x:64213:64213::/bp04/carol:/bin/sh\n" +
			"dave:x:64213:64213::/bp04/dave:/bin/sh\n" +
			"root:x:0:0::/bp04/root:/bin/sh\n"
	}
	conf := sessionsConfig(t, passwd, "[activity]\nsource = \"proc\"\nservices = [\""+service+"\"]\n")

	a1 := startSession(t, service, alice, false)
	a2 := startSession(t, service, alice, true) // ignores SIGTERM
	other := startSession(t, "mdsess-other", alice, false)
	var b1, c1, r1 *sessionProc
	if root {
		b1 = startSession(t, service, bob, false)
		c1 = startSession(t, service, shared, false)
		r1 = startSession(t, service, 0, false)
	}
	time.Sleep(1100 * time.Millisecond) // every session is a second old

	code, rep, errs := sessionsJSON(t, "--config", conf, "sessions", "--older", "0s")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	got := byPID(rep)
	for _, p := range []*sessionProc{a1, a2} {
		r, ok := got[p.pid()]
		if !ok || r.User != "alice" || r.Service != service || *r.UID != alice || r.AgeS == nil || *r.AgeS < 1 || r.Note != "" {
			t.Errorf("alice's pid %d: %+v (listed %v)", p.pid(), r, ok)
		}
	}
	if _, ok := got[other.pid()]; ok {
		t.Error("a process that is not a service was listed")
	}
	if root {
		if r := got[b1.pid()]; r.User != "bob" {
			t.Errorf("bob's session: %+v", r)
		}
		if r := got[c1.pid()]; r.User != "uid 64213" || !strings.Contains(r.Note, "uid 64213 is shared by carol, dave") {
			t.Errorf("the shared uid's session: %+v", r)
		}
		if r := got[r1.pid()]; r.User != "root" || !strings.Contains(r.Note, "root's processes are never ended") {
			t.Errorf("root's session: %+v", r)
		}
	}

	// Nothing here has been up for an hour.
	code, out, _ := runMain("--config", conf, "sessions", "--older", "1h")
	if code != ExitOK || strings.Contains(out, service) || !strings.Contains(out, "no sessions up for 1h or more") {
		t.Errorf("--older 1h: exit %d\n%s", code, out)
	}
	if code, _, errs := runMain("--config", conf, "sessions", "--kill"); code != ExitUsage || !strings.Contains(errs, "--kill needs --older") {
		t.Errorf("--kill alone: exit %d\n%s", code, errs)
	}
	if code, _, errs := runMain("--config", conf, "sessions", "--older", "3 months"); code != ExitUsage || !strings.Contains(errs, "like 90d") {
		t.Errorf("bad age: exit %d\n%s", code, errs)
	}

	// End alice's: one leaves on SIGTERM, the other needs SIGKILL. Nobody
	// else's process is touched.
	code, out, errs = runMain("--config", conf, "sessions", "--older", "0s", "--user", "alice", "--kill", "--grace", "300ms")
	if code != ExitOK {
		t.Fatalf("kill alice: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"ended: SIGTERM", "ended: SIGKILL after 300ms", "2 sessions (activity source proc); 2 ended, 0 not ended"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if a1.alive() || a2.alive() {
		t.Fatal("alice's sessions are still running")
	}
	if !other.alive() {
		t.Fatal("alice's process that is no session was ended")
	}
	if !root {
		return
	}
	if !b1.alive() || !c1.alive() {
		t.Fatal("another user's session was ended")
	}

	// Carol's uid is dave's too: named, her session is refused, exit 1.
	code, out, errs = runMain("--config", conf, "sessions", "--user", "carol", "--kill")
	if code != ExitError || !strings.Contains(out, "NOT ENDED: not ended: uid 64213 is shared") || !strings.Contains(errs, "1 sessions not ended") || !c1.alive() {
		t.Errorf("shared uid: exit %d\n%s\n%s", code, out, errs)
	}

	// Every session a second old: bob's ends, the shared uid's is left.
	code, rep, errs = sessionsJSON(t, "--config", conf, "sessions", "--older", "1s", "--kill", "--grace", "2s")
	got = byPID(rep)
	if code != ExitOK || got[b1.pid()].Ended != "SIGTERM" || got[c1.pid()].Ended != "" || got[r1.pid()].Ended != "" || rep.Ended != 1 || rep.Failed != 0 {
		t.Errorf("kill all: exit %d %+v\n%s", code, rep, errs)
	}
	if b1.alive() || !c1.alive() || !r1.alive() {
		t.Error("bob's session should be ended, the shared uid's and root's left")
	}
}

func TestSessionsDoveadmAndCommand(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "doveadm.log")
	script := filepath.Join(dir, "doveadm")
	body := `#!/bin/sh
case "$1" in
who) printf 'username proto pid ip\nalice@example.edu imap (4242) (10.0.0.1)\nbob pop3 (4243) (10.0.0.2)\n' ;;
kick) echo "$@" >> ` + log + ` ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "alice:x:5001:5001::/bp04/alice:/bin/sh\nbob:x:5002:5002::/bp04/bob:/bin/sh\n"
	conf := sessionsConfig(t, passwd, "[activity]\nsource = \"doveadm\"\ndoveadm = [\""+script+"\"]\n")

	code, out, errs := runMain("--config", conf, "sessions", "--older", "90d")
	if code != ExitOK || !strings.Contains(out, "alice@example.edu  imap     4242  unknown  unknown") || !strings.Contains(errs, "doveadm gives no start time for 2 sessions") {
		t.Errorf("list: exit %d\n%s\n%s", code, out, errs)
	}
	// By age alone nothing is kicked: the age is unknown.
	code, out, errs = runMain("--config", conf, "sessions", "--older", "0s", "--kill")
	if b, _ := os.ReadFile(log); code != ExitOK || len(b) != 0 || !strings.Contains(out, "left: age unknown") {
		t.Errorf("kill by age: exit %d, kicked %q\n%s\n%s", code, b, out, errs)
	}
	code, out, errs = runMain("--config", conf, "sessions", "--user", "alice", "--kill")
	if b, _ := os.ReadFile(log); code != ExitOK || string(b) != "kick alice@example.edu\n" || !strings.Contains(out, "ended: doveadm kick") {
		t.Errorf("kick alice: exit %d, kicked %q\n%s\n%s", code, b, out, errs)
	}

	// A site's command lists, and cannot end.
	cmdConf := sessionsConfig(t, passwd, "[activity]\nsource = \"command\"\ncommand = [\"echo\", \"alice\"]\n")
	code, out, errs = runMain("--config", cmdConf, "sessions")
	if code != ExitOK || !strings.Contains(out, "alice  command  -    unknown  unknown") {
		t.Errorf("command list: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runMain("--config", cmdConf, "sessions", "--user", "alice", "--kill")
	if code != ExitError || !strings.Contains(errs, "maildist cannot end them") || !strings.Contains(errs, "hint: end them with the site's own tools") {
		t.Errorf("command kill: exit %d\n%s", code, errs)
	}
}
