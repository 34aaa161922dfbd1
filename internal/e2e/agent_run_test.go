package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
)

// The Enron cluster with every host a separate agent process on loopback:
// maildist run moves the planned users from agent to agent, done
// finishes, and every home is where the plan said with every file as it
// was (names, contents, modes, owners, mtimes); nothing is left in
// staging, held or in the trash.
func TestAgentsEnronRun(t *testing.T) {
	start := time.Now()
	c := enron(t, sandboxDefaults())
	before := snapshotAll(t, c)
	t.Logf("sandbox at %v", time.Since(start))
	run := filepath.Join(t.TempDir(), "run")
	// The plan is made from the sandbox's own view; the moves go through
	// the agents only.
	must(t, c.Config, nil, "survey", run)
	must(t, c.Config, nil, "plan", run, "--seed", "11")
	must(t, c.Config, nil, "assign", run)
	t.Logf("planned at %v", time.Since(start))
	ac := startAgents(t, c, "")
	t.Logf("agents up at %v", time.Since(start))

	r := must(t, ac.config, nil, "agents")
	if strings.Count(r.stdout, " yes ") != len(c.Hosts) {
		t.Errorf("agents:\n%s", r.stdout)
	}
	var rows []struct {
		Host      string  `json:"host"`
		Reachable bool    `json:"reachable"`
		Users     int     `json:"users"`
		SkewS     float64 `json:"skew_s"`
	}
	r = must(t, ac.config, nil, "agents", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != len(c.Hosts) {
		t.Fatalf("agents --json: %v\n%s", err, r.stdout)
	}
	users := 0
	for _, row := range rows {
		users += row.Users
		if !row.Reachable || row.SkewS > 1 || row.SkewS < -1 {
			t.Errorf("agents: %+v", row)
		}
	}
	if users != len(c.Users) {
		t.Errorf("agents count %d users, the directory has %d", users, len(c.Users))
	}

	t0 := time.Now()
	r = maildist(t, ac.config, "run", run, "--parallel", "3", "--per-host", "2", "--progress", "lines")
	t.Logf("run took %v", time.Since(t0))
	if r.code != 0 {
		t.Fatalf("run exited %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, ac.logs())
	}
	t.Logf("run:\n%s", r.stdout)
	t0 = time.Now()
	must(t, ac.config, nil, "done", run)
	t.Logf("done took %v", time.Since(t0))

	todo, err := runstate.ReadTodo(filepath.Join(run, runstate.TodoFile))
	if err != nil || len(todo) < 5 {
		t.Fatalf("todo: %d lines, %v", len(todo), err)
	}
	want := map[string]string{}
	for _, u := range usersOf(c) {
		want[u.Name] = u.Host
	}
	for _, l := range todo {
		want[l.User] = l.To
	}
	ac.checkHomes(t, before, want)
	if left := ac.leftovers(t, true); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	// The passwd file changed in the moved users' homes and nowhere else.
	cfg, _ := config.Load(ac.config)
	now := homesNow(t, cfg)
	cl := cfg.Cluster()
	for _, u := range c.Users {
		h, _ := cl.Host(want[u.Name])
		if u.Status == cluster.StatusOK && now[u.Name] != cl.HomeFor(u.Name, h) && want[u.Name] != u.Host {
			t.Errorf("%s: home %s, want %s", u.Name, now[u.Name], cl.HomeFor(u.Name, h))
		}
		if want[u.Name] == u.Host && now[u.Name] != u.Home {
			t.Errorf("%s was not to move: home %s, was %s", u.Name, now[u.Name], u.Home)
		}
	}
	// The data went agent to agent: the sources' agents counted it.
	var pushed float64
	for _, h := range c.Hosts {
		pushed += agentMetric(t, ac, h.Name, "maildist_agent_sent_bytes_total")
	}
	if pushed == 0 {
		t.Error("no agent sent anything")
	}
}

// agentMetric reads one value of an agent's /metrics, as a monitor would
// (with a certificate of the CA: here the coordinator's).
func agentMetric(t *testing.T, ac *agentCluster, name, metric string) float64 {
	t.Helper()
	l, err := pki.Load(pki.Files{CA: filepath.Join(ac.ca, "ca.crt"), Cert: filepath.Join(ac.ca, "runner.crt"), Key: filepath.Join(ac.ca, "runner.key")}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: proto.NewTransport(l, name)}
	resp, err := c.Get("https://" + ac.addr[name] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v float64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, metric+" "); ok {
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s %q: %v", metric, rest, err)
			}
		}
	}
	return v
}

// biggest returns the sandbox's users with a home, largest first.
func biggest(c *sandbox.Cluster) []sandbox.User {
	us := usersOf(c)
	sort.Slice(us, func(i, j int) bool { return us[i].Bytes > us[j].Bytes })
	return us
}

// oneMove makes a run folder whose todo moves one user.
func oneMove(t *testing.T, c *sandbox.Cluster, u sandbox.User, to string) string {
	t.Helper()
	run := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(run, 0o755)
	if err := runstate.WriteTodo(filepath.Join(run, runstate.TodoFile), []cluster.Todo{{User: u.Name, From: u.Host, To: to}}); err != nil {
		t.Fatal(err)
	}
	return run
}

// otherHost is a host of c that is not h.
func otherHost(c *sandbox.Cluster, h string) string {
	for _, x := range c.Hosts {
		if x.Name != h {
			return x.Name
		}
	}
	return ""
}
