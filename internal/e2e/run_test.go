package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/run"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
)

// small builds a generated sandbox and plans a run on it.
func small(t *testing.T, users int) (*sandbox.Cluster, string) {
	t.Helper()
	c, err := sandbox.Build(context.Background(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "cluster"), Users: users, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rd := filepath.Join(t.TempDir(), "run")
	must(t, c.Config, nil, "survey", rd)
	must(t, c.Config, nil, "plan", rd, "--seed", "5")
	must(t, c.Config, nil, "assign", rd)
	return c, rd
}

func todoOf(t *testing.T, rd string) []runstate.TodoLine {
	t.Helper()
	todo, err := runstate.ReadTodo(filepath.Join(rd, runstate.TodoFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(todo) < 4 {
		t.Fatalf("the plan moves only %d users", len(todo))
	}
	return todo
}

// results counts the result events of the run by user and outcome.
func results(t *testing.T, rd string) map[string]map[string]int {
	t.Helper()
	evs, _ := runstate.ReadLog(filepath.Join(rd, runstate.LogFile))
	out := map[string]map[string]int{}
	for _, e := range evs {
		if e.Step != run.StepResult {
			continue
		}
		if out[e.User] == nil {
			out[e.User] = map[string]int{}
		}
		out[e.User][e.Outcome+":"+e.Reason]++
	}
	return out
}

// checkAllMoved checks that every todo user lives where the todo said,
// moved exactly once by the journals, with every file as before.
func checkAllMoved(t *testing.T, c *sandbox.Cluster, rd string, before map[string]map[string]fileFact) {
	t.Helper()
	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	now := homesNow(t, cfg)
	done, err := move.Completed(filepath.Join(rd, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]int{}
	for _, p := range done {
		times[p.User]++
	}
	cl := cfg.Cluster()
	for _, l := range todoOf(t, rd) {
		h, _ := cl.HostOf(now[l.User])
		if h == nil || h.Name != l.To {
			t.Errorf("%s lives at %s, the todo said %s", l.User, now[l.User], l.To)
		}
		if times[l.User] != 1 {
			t.Errorf("%s was moved %d times", l.User, times[l.User])
		}
		if n := results(t, rd)[l.User]["moved:"]; n > 1 {
			t.Errorf("%s has %d moved results", l.User, n)
		}
	}
	for _, u := range usersOf(c) {
		h, _ := cl.HostOf(now[u.Name])
		got := facts(t, filepath.Join(h.FSRoot, now[u.Name]))
		for p, w := range before[u.Name] {
			if got[p] != w {
				t.Errorf("%s: %s differs", u.Name, p)
			}
		}
		if len(got) != len(before[u.Name]) {
			t.Errorf("%s: %d entries, had %d", u.Name, len(got), len(before[u.Name]))
		}
	}
}

func snapshotAll(t *testing.T, c *sandbox.Cluster) map[string]map[string]fileFact {
	out := map[string]map[string]fileFact{}
	for _, u := range usersOf(c) {
		out[u.Name] = facts(t, c.RealPath(u.Home))
	}
	return out
}

// start runs maildist in the background.
func start(t *testing.T, config string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAILDIST_CONFIG="+config)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Users with a live session are refused and tried again each round; once
// the session ends, the loop moves them.
func TestRunRetriesLiveSessions(t *testing.T) {
	c, rd := small(t, 40)
	todo := todoOf(t, rd)
	before := snapshotAll(t, c)
	active := filepath.Join(t.TempDir(), "active")
	busy := todo[0].User + "\n" + todo[1].User + "\n"
	os.WriteFile(active, []byte(busy), 0o644)
	cfgText, _ := os.ReadFile(c.Config)
	cfgNew := strings.Replace(string(cfgText), `source = "none"`, `source = "command"`+"\ncommand = [\"cat\", \""+active+"\"]", 1)
	os.WriteFile(c.Config, []byte(cfgNew), 0o644)

	cmd, out := start(t, c.Config, "run", rd, "--loop", "300ms", "--max-rounds", "50", "--progress", "lines")
	waitFor(t, "two refusals each", func() bool {
		rs := results(t, rd)
		return rs[todo[0].User]["refused:active"] >= 2 && rs[todo[1].User]["refused:active"] >= 2
	})
	os.WriteFile(active, nil, 0o644) // their sessions end
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	checkAllMoved(t, c, rd, before)
	st := must(t, c.Config, nil, "status", rd)
	if !strings.Contains(st.stdout, "total") {
		t.Errorf("status:\n%s", st.stdout)
	}
}

// A second runner for a host another runner holds stops at once.
func TestSecondRunnerForAHostRefused(t *testing.T) {
	c, rd := small(t, 60)
	// --bwlimit keeps the first runner at work while the second starts.
	cmd, _ := start(t, c.Config, "run", rd, "--parallel", "1", "--bwlimit", "300k", "--progress", "none")
	waitFor(t, "the first move", func() bool { return len(results(t, rd)) > 0 })
	r := maildist(t, c.Config, "run", rd, "--progress", "none")
	if r.code != 1 || !strings.Contains(r.stderr, "another runner is working") {
		t.Fatalf("second runner: exit %d\n%s", r.code, r.stderr)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
}

// Two runners for two source hosts at once, in separate processes, on
// one run folder: every move is made once.
func TestTwoRunnersOneRunFolder(t *testing.T) {
	c, rd := small(t, 60)
	before := snapshotAll(t, c)
	froms := map[string]bool{}
	for _, l := range todoOf(t, rd) {
		froms[l.From] = true
	}
	var hosts []string
	for h := range froms {
		hosts = append(hosts, h)
	}
	if len(hosts) < 2 {
		t.Fatalf("the todo has moves from %d host(s); the test needs two", len(hosts))
	}
	a, aout := start(t, c.Config, "run", rd, "--host", hosts[0], "--progress", "none")
	rest := strings.Join(hosts[1:], ",")
	b, bout := start(t, c.Config, "run", rd, "--host", rest, "--progress", "none")
	if err := a.Wait(); err != nil {
		t.Fatalf("runner %s: %v\n%s", hosts[0], err, aout)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("runner %s: %v\n%s", rest, err, bout)
	}
	checkAllMoved(t, c, rd, before)
	for _, h := range hosts {
		left, err := runstate.ReadTodo(filepath.Join(rd, runstate.TodoHostFile(h)))
		if err != nil || len(left) != 0 {
			t.Errorf("todo.%s.tsv: %d left, %v", h, len(left), err)
		}
	}
}

// A runner killed mid-run and started again finishes the job: nothing
// lost, nothing moved twice.
func TestRunnerKilledAndResumed(t *testing.T) {
	c, rd := small(t, 60)
	before := snapshotAll(t, c)
	cmd, _ := start(t, c.Config, "run", rd, "--parallel", "2", "--per-host", "1", "--progress", "none")
	waitFor(t, "three moves", func() bool {
		n := 0
		for _, r := range results(t, rd) {
			n += r["moved:"]
		}
		return n >= 3
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	unfinished, _ := move.Unfinished(filepath.Join(rd, "journal"))
	t.Logf("killed with %d move(s) in flight", unfinished)
	// A plain recover, as the runner's own message says, finds the run's
	// journals: nothing is left held.
	rec := must(t, c.Config, nil, "recover")
	if n, _ := move.Unfinished(filepath.Join(rd, "journal")); n != 0 {
		t.Fatalf("after recover, %d move(s) still unfinished:\n%s", n, rec.stdout)
	}
	if unfinished > 0 && strings.Contains(rec.stdout, "nothing to recover") {
		t.Fatalf("recover did not look in the run:\n%s", rec.stdout)
	}
	// A move recover finishes had switched, so it held its user: it says
	// for how long.
	for line := range strings.SplitSeq(rec.stdout, "\n") {
		if strings.Contains(line, "finished the move") && !strings.Contains(line, "(held ") {
			t.Errorf("recover finished a move and does not say how long its user was held: %s", line)
		}
	}
	must(t, c.Config, nil, "run", rd, "--progress", "none")
	checkAllMoved(t, c, rd, before)
	must(t, c.Config, nil, "done", rd)
}

// A todo line for a user moved by hand since is skipped with
// directory-changed; malformed lines are named and skipped; the rest runs.
func TestRunSkipsChangedUsersAndBadLines(t *testing.T) {
	c, rd := small(t, 40)
	todo := todoOf(t, rd)
	u := todo[0]
	cfg, _ := config.Load(c.Config)
	var other string
	for _, h := range cfg.Hosts {
		if h.Name != u.From && h.Name != u.To {
			other = h.Name
		}
	}
	must(t, c.Config, nil, "move", u.User, other)
	f, _ := os.OpenFile(filepath.Join(rd, runstate.TodoFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not\ta\tline\n../etc\tbp01\tbp02\tc1d1\n")
	f.Close()
	lines := len(todo) + 2

	r := maildist(t, c.Config, "run", rd, "--progress", "none")
	if r.code != 3 {
		t.Fatalf("run exited %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"todo.tsv:" + strconv.Itoa(lines) + ": 3 fields", "todo.tsv:" + strconv.Itoa(lines+1) + ": user"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not name %q:\n%s", w, r.stderr)
		}
	}
	if results(t, rd)[u.User]["refused:directory-changed"] != 1 {
		t.Errorf("%s: results %v", u.User, results(t, rd)[u.User])
	}
	now := homesNow(t, cfg)
	if h, _ := cfg.Cluster().HostOf(now[u.User]); h.Name != other {
		t.Errorf("%s is on %s, was moved by hand to %s", u.User, h.Name, other)
	}
	for _, l := range todo[1:] {
		if h, _ := cfg.Cluster().HostOf(now[l.User]); h.Name != l.To {
			t.Errorf("%s not moved", l.User)
		}
	}
	st := must(t, c.Config, nil, "status", rd)
	if !strings.Contains(st.stdout, "directory-changed 1") {
		t.Errorf("status does not show the reason:\n%s", st.stdout)
	}
	// A second run does not try the permanent failure again.
	r = maildist(t, c.Config, "run", rd, "--progress", "none")
	if results(t, rd)[u.User]["refused:directory-changed"] != 1 {
		t.Errorf("tried again: %v", results(t, rd)[u.User])
	}
}

// A host with accept_new = false refuses a move, and the refusal names
// the flag that asks for it all the same, which then works.
func TestMoveToClosedHost(t *testing.T) {
	c, rd := small(t, 40)
	u := todoOf(t, rd)[0]
	cfg, err := os.ReadFile(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	block := "name = \"" + u.To + "\"\n"
	i := strings.Index(string(cfg), block)
	j := strings.Index(string(cfg[i:]), "accept_new = true")
	if i < 0 || j < 0 {
		t.Fatalf("no accept_new for %s in\n%s", u.To, cfg)
	}
	closed := string(cfg[:i+j]) + "accept_new = false" + string(cfg[i+j+len("accept_new = true"):])
	if err := os.WriteFile(c.Config, []byte(closed), 0o644); err != nil {
		t.Fatal(err)
	}
	r := must(t, c.Config, []int{1, 3}, "move", u.User, u.To)
	if !strings.Contains(r.stdout+r.stderr, "--allow-closed") {
		t.Fatalf("refusal does not say how to ask for it:\n%s\n%s", r.stdout, r.stderr)
	}
	must(t, c.Config, nil, "move", "--allow-closed", u.User, u.To)
	after, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := after.Cluster().HostOf(homesNow(t, after)[u.User]); h.Name != u.To {
		t.Errorf("%s is on %s, not %s", u.User, h.Name, u.To)
	}
}
