package e2e

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory/passwd"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
	"github.com/maildist/maildist/internal/wire"
)

// mainJobHosts: skewed, one host draining, one taking no new users, one
// with twice the weight.
func mainJobHosts() []sandbox.HostSpec {
	return []sandbox.HostSpec{
		{Name: "bp01", Pool: "bp", Weight: 1, AcceptNew: true, Share: 5},
		{Name: "bp02", Pool: "bp", Weight: 1, AcceptNew: false, Share: 3},
		{Name: "bp03", Pool: "bp", Weight: 1, AcceptNew: true, Drain: true, Share: 2},
		{Name: "bp04", Pool: "bp", Weight: 2, AcceptNew: true, Share: 1},
	}
}

// homesNow reads where the directory says every user lives.
func homesNow(t *testing.T, cfg *config.Config) map[string]string {
	t.Helper()
	d, err := wire.Directory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	es, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range es {
		out[e.User] = e.Home
	}
	return out
}

// The main job on real input: survey → plan → assign → run → done on the
// Enron cluster, with the commands an operator runs.
func TestEnronMainJob(t *testing.T) { mainJob(t, "passwd") }

// The same round with the directory in SQL, as most sites keep it.
func TestEnronMainJobPostgres(t *testing.T) { mainJob(t, "postgres") }
func TestEnronMainJobSQLite(t *testing.T)   { mainJob(t, "sqlite") }

// toSQL moves a sandbox's directory into a fresh database of the default
// schema and points the config at it.
func toSQL(t *testing.T, c *sandbox.Cluster, driver string) {
	t.Helper()
	pw, err := passwd.Open(c.Passwd, passwd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := pw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster()
	dsn := sqltest.Database(t, driver)
	sqltest.Fill(t, driver, dsn, es, func(home string) string {
		if h, ok := cl.HostOf(home); ok {
			return h.Name
		}
		return ""
	})
	text, _ := os.ReadFile(c.Config)
	old := "[directory]\ntype = \"passwd\"\npath = \"etc/passwd\"\n"
	if !strings.Contains(string(text), old) {
		t.Fatalf("the sandbox config has no passwd directory table:\n%s", text)
	}
	os.WriteFile(c.Config, []byte(strings.Replace(string(text), old, sqltest.DirectoryTOML(driver, dsn), 1)), 0o644)
	// The passwd file goes away: nothing may read it any more.
	os.Rename(c.Passwd, c.Passwd+".was")
}

func mainJob(t *testing.T, dirKind string) {
	opt := sandboxDefaults()
	opt.Hosts = mainJobHosts()
	c := enron(t, opt)
	passwdBefore, _ := os.ReadFile(c.Passwd)
	if dirKind != "passwd" {
		toSQL(t, c, dirKind)
	}
	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Directory.Type != map[string]string{"passwd": "passwd"}[dirKind] && dirKind == "passwd" {
		t.Fatalf("directory type %s", cfg.Directory.Type)
	}
	before := map[string]map[string]fileFact{}
	for _, u := range usersOf(c) {
		before[u.Name] = facts(t, c.RealPath(u.Home))
	}
	run := filepath.Join(t.TempDir(), "run")

	must(t, c.Config, nil, "survey", run)
	must(t, c.Config, nil, "plan", run, "--seed", "11")
	must(t, c.Config, nil, "assign", run)
	r := must(t, c.Config, nil, "run", run, "--parallel", "3", "--per-host", "2", "--progress", "lines")
	t.Logf("run:\n%s", r.stdout)
	must(t, c.Config, nil, "done", run)
	st := must(t, c.Config, nil, "status", run)
	if !strings.Contains(st.stdout, "done has run") {
		t.Errorf("status does not say done ran:\n%s", st.stdout)
	}

	raw, err := runstate.ReadRaw(filepath.Join(run, runstate.RawFile))
	if err != nil {
		t.Fatal(err)
	}
	sorted, err := runstate.ReadSort(filepath.Join(run, runstate.SortFile))
	if err != nil {
		t.Fatal(err)
	}
	moves, err := runstate.ReadMoves(filepath.Join(run, runstate.MovesFile))
	if err != nil {
		t.Fatal(err)
	}
	class := map[string]cluster.Class{}
	for _, s := range sorted {
		class[s.User] = s.Class
	}
	now := homesNow(t, cfg)
	cl := cfg.Cluster()
	type hc struct {
		host  string
		class cluster.Class
	}
	have, final := map[hc]int{}, map[hc]int{}
	for _, u := range raw {
		if u.Status != cluster.StatusOK {
			continue
		}
		c, ok := class[u.Name]
		if !ok {
			t.Fatalf("%s has no class in sort.tsv", u.Name)
		}
		have[hc{u.Host, c}]++
		h, ok := cl.HostOf(now[u.Name])
		if !ok {
			t.Fatalf("%s: home %s on no host", u.Name, now[u.Name])
		}
		final[hc{h.Name, c}]++
	}
	// The run carried out exactly the plan.
	want := map[hc]int{}
	for k, n := range have {
		want[k] = n
	}
	for _, m := range moves {
		want[hc{m.From, m.Class}] -= m.Count
		want[hc{m.To, m.Class}] += m.Count
	}
	for k, n := range want {
		if final[k] != n {
			t.Errorf("%s %s: %d users after the run, the plan said %d", k.host, k.class, final[k], n)
		}
	}
	for k, n := range final {
		if want[k] != n {
			t.Errorf("%s %s: %d users after the run, the plan said %d", k.host, k.class, n, want[k])
		}
	}
	// And the plan is balanced, by the rule in package plan's doc, checked
	// here independently: the draining host is empty, the host that takes
	// no one new received no one, every other host is within one user of
	// its weighted share of what is left, in every class.
	classes := map[cluster.Class]bool{}
	for k := range have {
		classes[k.class] = true
	}
	hosts := cfg.Hosts
	for c := range classes {
		n := 0
		for _, h := range hosts {
			n += have[hc{h.Name, c}]
		}
		var W, Wa float64
		for _, h := range hosts {
			W += h.EffectiveWeight()
		}
		rest := float64(n)
		for _, h := range hosts {
			k := hc{h.Name, c}
			switch {
			case h.Drain:
				if final[k] != 0 {
					t.Errorf("draining %s still holds %d users of %s", h.Name, final[k], c)
				}
			case !h.AcceptNew:
				if final[k] > have[k] {
					t.Errorf("%s takes no new users but went from %d to %d in %s", h.Name, have[k], final[k], c)
				}
				share := float64(n) * h.EffectiveWeight() / W
				if final[k] != min(have[k], int(math.Ceil(share))) {
					t.Errorf("%s (no new users) holds %d of %s, want min(have %d, ⌈%.2f⌉)", h.Name, final[k], c, have[k], share)
				}
				rest -= float64(final[k])
			default:
				Wa += h.EffectiveWeight()
			}
		}
		for _, h := range hosts {
			if h.Drain || !h.AcceptNew {
				continue
			}
			share := rest * h.EffectiveWeight() / Wa
			if got := float64(final[hc{h.Name, c}]); got < math.Floor(share) || got > math.Ceil(share) {
				t.Errorf("%s holds %v users of %s, share %.2f", h.Name, got, c, share)
			}
		}
	}

	// Every message of every user is in the user's home now, byte for
	// byte, with its metadata; the passwd file points at the right homes
	// and changed nowhere else.
	moved := 0
	for _, u := range usersOf(c) {
		home := now[u.Name]
		h, _ := cl.HostOf(home)
		if home != cl.HomeFor(u.Name, h) {
			t.Errorf("%s: home %s, want the layout's %s", u.Name, home, cl.HomeFor(u.Name, h))
		}
		if h.Name != u.Host {
			moved++
		}
		got := facts(t, filepath.Join(h.FSRoot, home))
		if len(got) != len(before[u.Name]) {
			t.Errorf("%s: %d entries now, %d before", u.Name, len(got), len(before[u.Name]))
		}
		for p, w := range before[u.Name] {
			if got[p] != w {
				t.Errorf("%s: %s differs after the move", u.Name, p)
			}
		}
	}
	lines := strings.Split(string(passwdBefore), "\n")
	after, _ := os.ReadFile(c.Passwd)
	if dirKind != "passwd" {
		// The passwd file was not touched; the table holds the truth, and
		// its other columns (uid, gid) must be as they were.
		after = passwdBefore
		d, _ := wire.Directory(cfg)
		es, _ := d.List(context.Background())
		d.Close()
		for _, e := range es {
			if u, ok := c.User(e.User); ok && (e.UID != u.UID || e.GID != u.GID) {
				t.Errorf("%s: ids %d:%d, were %d:%d", e.User, e.UID, e.GID, u.UID, u.GID)
			}
		}
	}
	for i, l := range strings.Split(string(after), "\n") {
		if dirKind != "passwd" {
			break
		}
		f := strings.Split(lines[i], ":")
		if len(f) > 5 {
			f[5] = now[f[0]]
		}
		if l != strings.Join(f, ":") {
			t.Errorf("passwd line %d: %q, want only the home changed in %q", i+1, l, lines[i])
		}
	}
	// Nothing is left behind on any host.
	for _, h := range hosts {
		ents, _ := os.ReadDir(filepath.Join(h.FSRoot, h.Root))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			if strings.HasSuffix(n, ".moving") {
				t.Errorf("%s: held home %s left", h.Name, n)
			}
			if strings.HasPrefix(n, ".maildist-") {
				if sub, _ := os.ReadDir(filepath.Join(h.FSRoot, h.Root, n)); len(sub) > 0 {
					t.Errorf("%s: %s holds %d entries", h.Name, n, len(sub))
				}
			}
		}
		for _, other := range hosts {
			if other.Name != h.Name {
				if _, err := os.Stat(filepath.Join(h.FSRoot, other.Root)); err == nil {
					t.Errorf("%s: stub folder %s left", h.Name, other.Root)
				}
			}
		}
	}
	t.Logf("%d users moved; per host now: %v", moved, countHosts(cl, now))
}

func countHosts(cl *cluster.Cluster, homes map[string]string) map[string]int {
	n := map[string]int{}
	for _, h := range homes {
		if hh, ok := cl.HostOf(h); ok {
			n[hh.Name]++
		}
	}
	return n
}
