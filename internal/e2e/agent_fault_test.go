package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/sandbox"
)

// stagedFiles counts the files in staging on host name.
func stagedFiles(ac *agentCluster, name string) int {
	n := 0
	filepath.WalkDir(ac.real(name, sandbox.HostRoot(name)+"/.maildist-staging"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// The destination's agent is killed while the home streams to it, under
// the hold. The run cannot finish or undo the move while the agent is
// down; once it is back, recover undoes it (the user is released, staging
// removed), and the next round moves the user, every file intact.
func TestAgentDestinationKilledMidStream(t *testing.T) {
	t.Parallel() // each on a sandbox of its own, mostly waiting
	c := enron(t, sandboxDefaults())
	u := biggest(c)[0]
	to := otherHost(c, u.Host)
	before := map[string]map[string]fileFact{u.Name: facts(t, c.RealPath(u.Home))}
	ac := startAgents(t, c, "")
	run := oneMove(t, c, u, to)

	cmd, out := start(t, ac.config, "run", run, "--no-precopy", "--bwlimit", "2M", "--progress", "lines")
	waitFor(t, "the stream to begin", func() bool { return stagedFiles(ac, to) > 200 })
	ac.kill(t, to)
	t.Logf("killed the agent of %s with %d files in staging", to, stagedFiles(ac, to))
	cmd.Wait()
	t.Logf("run exited %d:\n%s", cmd.ProcessState.ExitCode(), out.String())
	if cmd.ProcessState.ExitCode() == 0 {
		t.Fatal("the run says all done with the destination down")
	}
	held := ac.real(u.Host, u.Home+".moving")
	if _, err := os.Lstat(held); err != nil {
		t.Logf("not held after the run: %v", err)
	}

	ac.start(t, to)
	r := must(t, ac.config, []int{0, 3}, "recover", run)
	t.Logf("recover:\n%s%s", r.stdout, r.stderr)
	if left := ac.leftovers(t, false); len(left) > 0 {
		t.Errorf("after recover: %v", left)
	}
	ac.checkHomes(t, before, map[string]string{u.Name: u.Host})

	r = maildist(t, ac.config, "run", run, "--progress", "none")
	if r.code != 0 {
		t.Fatalf("second round exited %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, ac.logs())
	}
	ac.checkHomes(t, before, map[string]string{u.Name: to})
	must(t, ac.config, nil, "done", run)
	if left := ac.leftovers(t, true); len(left) > 0 {
		t.Errorf("after done: %v", left)
	}
}

// The connection between the two hosts is cut in the middle of the
// stream (a proxy in front of the destination's agent drops every
// connection once). The transfer resumes where it stopped, within the
// same run: the bytes that went through the proxy are far fewer than two
// copies of the home.
func TestAgentConnectionCutMidStream(t *testing.T) {
	t.Parallel() // each on a sandbox of its own, mostly waiting
	c := enron(t, sandboxDefaults())
	u := biggest(c)[0]
	to := otherHost(c, u.Host)
	before := map[string]map[string]fileFact{u.Name: facts(t, c.RealPath(u.Home))}
	ac := startAgents(t, c, "[agents]\ncompress = \"none\"\n")
	px := newCutProxy(t, ac.addr[to], u.Bytes*6/10)
	ac.url[to] = "https://" + px.addr()
	ac.writeConfig(t, "[agents]\ncompress = \"none\"\n")
	run := oneMove(t, c, u, to)

	r := maildist(t, ac.config, "run", run, "--no-precopy", "--bwlimit", "4M", "--progress", "lines")
	if r.code != 0 {
		t.Fatalf("run exited %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, ac.logs())
	}
	if !px.cut.Load() {
		t.Fatal("the proxy never cut the connection")
	}
	up := px.up.Load()
	t.Logf("home %d bytes; %d went through the proxy, cut at %d", u.Bytes, up, px.cutAt)
	if up > u.Bytes*3/2 {
		t.Errorf("%d bytes went to the destination for a home of %d: the stream started over", up, u.Bytes)
	}
	if !strings.Contains(ac.logs(), "retry: true") {
		t.Errorf("the source's agent did not see a broken push:\n%s", ac.logs())
	}
	ac.checkHomes(t, before, map[string]string{u.Name: to})
	if left := ac.leftovers(t, false); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// The source's agent is restarted while the user is held (the move waits
// for a file a process still has open under the held home). Whether the
// move rides over the restart or is undone and moved in the next round,
// nothing is lost, no one stays held, and no staging is left.
func TestAgentSourceRestartedDuringHold(t *testing.T) {
	t.Parallel() // each on a sandbox of its own, mostly waiting
	c := enron(t, sandboxDefaults())
	u := biggest(c)[1]
	to := otherHost(c, u.Host)
	before := map[string]map[string]fileFact{u.Name: facts(t, c.RealPath(u.Home))}
	ac := startAgents(t, c, "")
	run := oneMove(t, c, u, to)

	// A process (this test) keeps a message open: the move settles only
	// once it is closed.
	var msg string
	filepath.WalkDir(c.RealPath(u.Home), func(p string, d fs.DirEntry, err error) error {
		if err == nil && msg == "" && d.Type().IsRegular() {
			msg = p
		}
		return nil
	})
	f, err := os.Open(msg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	cmd, out := start(t, ac.config, "run", run, "--no-precopy", "--progress", "lines")
	held := ac.real(u.Host, u.Home+".moving")
	waitFor(t, "the hold", func() bool { _, err := os.Lstat(held); return err == nil })
	ac.kill(t, u.Host)
	time.Sleep(500 * time.Millisecond)
	ac.start(t, u.Host)
	f.Close()
	cmd.Wait()
	t.Logf("run exited %d:\n%s", cmd.ProcessState.ExitCode(), out.String())

	if cmd.ProcessState.ExitCode() != 0 {
		must(t, ac.config, []int{0, 3}, "recover", run)
		if _, err := os.Lstat(held); err == nil {
			t.Fatalf("%s is still held after recover", u.Name)
		}
		r := maildist(t, ac.config, "run", run, "--progress", "none")
		if r.code != 0 {
			t.Fatalf("second round exited %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, ac.logs())
		}
	}
	ac.checkHomes(t, before, map[string]string{u.Name: to})
	if left := ac.leftovers(t, false); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
