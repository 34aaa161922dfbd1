package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/runstate"
)

// planFixture is a run folder with a raw.tsv of three pools' worth of
// users, piled on the first hosts, and a config naming the hosts.
type planFixture struct {
	dir, run, config string
	users            []cluster.User
}

const fixtureHosts = `
[[host]]
name = "bp01"
pool = "bp"
root = "/bp01"
drain = true

[[host]]
name = "bp02"
pool = "bp"
root = "/bp02"

[[host]]
name = "bp03"
pool = "bp"
root = "/bp03"
weight = 2

[[host]]
name = "cg01"
pool = "cg"
root = "/cg01"
accept_new = false

[[host]]
name = "cg02"
pool = "cg"
root = "/cg02"

[[host]]
name = "cg03"
pool = "cg"
root = "/cg03"
`

func newPlanFixture(t *testing.T) *planFixture {
	t.Helper()
	f := &planFixture{dir: t.TempDir()}
	f.run = filepath.Join(f.dir, "runs", "07")
	if err := os.MkdirAll(f.run, 0o755); err != nil {
		t.Fatal(err)
	}
	f.config = filepath.Join(f.dir, "maildist.toml")
	cfg := "domain = \"example.edu\"\n[directory]\npath = \"passwd\"\n[delivery]\nstub = \"none\"\n" + fixtureHosts
	if err := os.WriteFile(f.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := []string{"bp01", "bp01", "bp01", "bp02", "bp02", "cg01", "cg01", "cg01", "cg01", "cg02"}
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range 600 {
		h := hosts[(i*7+i/13)%len(hosts)]
		u := cluster.User{Name: fmt.Sprintf("u%04d", i), Host: h, Pool: h[:2], Home: "/" + h + fmt.Sprintf("/u%04d", i),
			ConnectS: int64((i * 37) % 5000), Sessions: 1, Bytes: int64((i*7919)%100000) * 1000, Messages: 3, Status: "ok"}
		if i%5 != 0 {
			u.LastLogin = base.Add(time.Duration(i) * time.Hour)
		}
		if i%97 == 0 {
			u.Status = cluster.StatusMissingHome
		}
		f.users = append(f.users, u)
	}
	if err := runstate.WriteRaw(filepath.Join(f.run, runstate.RawFile), f.users); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *planFixture) main(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"--config", f.config}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanThenAssign(t *testing.T) {
	f := newPlanFixture(t)
	code, out, errs := f.main(t, "plan", f.run, "--json", "--pick", "idle", "--svg", filepath.Join(f.dir, "plan.svg"))
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errs)
	}
	var sum struct {
		Run   string `json:"run"`
		Seed  uint64 `json:"seed"`
		Pick  string `json:"pick"`
		Stats struct {
			Moves      int `json:"moves"`
			LowerBound int `json:"lower_bound"`
			Unmoved    int `json:"unmoved"`
		} `json:"stats"`
		Hosts []struct {
			Name  string `json:"name"`
			After struct {
				Users int   `json:"users"`
				Bytes int64 `json:"bytes"`
			} `json:"after"`
		} `json:"hosts"`
		Unmoved []struct{ User, Status string } `json:"unmoved"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, out)
	}
	if sum.Stats.Moves == 0 || sum.Stats.Moves != sum.Stats.LowerBound || sum.Pick != "idle" || sum.Stats.Unmoved != 7 || len(sum.Unmoved) != 7 {
		t.Fatalf("plan summary: %+v", sum)
	}
	for _, name := range []string{runstate.MovesFile, runstate.SortFile, reportFile, planOptsFile} {
		if _, err := os.Stat(filepath.Join(f.run, name)); err != nil {
			t.Fatal(err)
		}
	}
	svg, err := os.ReadFile(filepath.Join(f.dir, "plan.svg"))
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("--svg: %v %.40q", err, svg)
	}
	report, _ := os.ReadFile(filepath.Join(f.run, reportFile))
	for _, want := range []string{"<!DOCTYPE html>", "maildist plan: 07", "bp01", "<svg"} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, never := range []string{"<script", "http://", "https://"} {
		if bytes.Contains(bytes.ReplaceAll(report, []byte(`xmlns="http://www.w3.org/2000/svg"`), nil), []byte(never)) {
			t.Errorf("report.html is not self-contained: it has %q", never)
		}
	}

	// assign takes pick and seed from plan.json, so the todo it writes
	// moves exactly the users the plan counted.
	code, out, errs = f.main(t, "assign", f.run)
	if code != 0 {
		t.Fatalf("assign: exit %d\n%s", code, errs)
	}
	if !strings.Contains(out, fmt.Sprintf("%d users to move (pick idle, seed %d)", sum.Stats.Moves, sum.Seed)) {
		t.Fatalf("assign said %q", out)
	}
	todo, err := runstate.ReadTodo(filepath.Join(f.run, runstate.TodoFile))
	if err != nil || len(todo) != sum.Stats.Moves {
		t.Fatalf("todo.tsv: %d rows, %v", len(todo), err)
	}
	users, bytesOn := map[string]int{}, map[string]int64{}
	at := map[string]int{}
	for i, u := range f.users {
		at[u.Name] = i
	}
	for _, x := range todo {
		u := f.users[at[x.User]]
		if u.Host != x.From || u.Status != "ok" {
			t.Fatalf("todo moves %+v, row %+v", x.Todo, u)
		}
		users[x.From]--
		users[x.To]++
		bytesOn[x.From] -= u.Bytes
		bytesOn[x.To] += u.Bytes
	}
	for _, u := range f.users {
		users[u.Host]++
		bytesOn[u.Host] += u.Bytes
	}
	for _, h := range sum.Hosts {
		if users[h.Name] != h.After.Users || bytesOn[h.Name] != h.After.Bytes {
			t.Errorf("%s after the todo: %d users, %d bytes; the plan said %d, %d", h.Name, users[h.Name], bytesOn[h.Name], h.After.Users, h.After.Bytes)
		}
	}
	stay := 0
	for _, u := range f.users {
		if u.Host == "bp01" && u.Status != "ok" {
			stay++
		}
	}
	if users["bp01"] != stay || stay == 0 {
		t.Errorf("bp01 drains but keeps %d users; %d are not ok", users["bp01"], stay)
	}

	// Same survey, same files.
	first := readFiles(t, f.run, runstate.MovesFile, runstate.SortFile, reportFile, runstate.TodoFile)
	if code, _, errs := f.main(t, "plan", f.run, "--pick", "idle"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := f.main(t, "assign", f.run); code != 0 {
		t.Fatal(errs)
	}
	if again := readFiles(t, f.run, runstate.MovesFile, runstate.SortFile, reportFile, runstate.TodoFile); !equalFiles(first, again) {
		t.Fatal("planning the same survey again wrote different files")
	}

	// Another seed for assign alone: told on stderr that it differs.
	code, _, errs = f.main(t, "assign", f.run, "--seed", "5")
	if code != 0 || !strings.Contains(errs, "differs") {
		t.Fatalf("assign --seed 5: exit %d, %q", code, errs)
	}
}

func readFiles(t *testing.T, dir string, names ...string) map[string][]byte {
	m := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		m[n] = b
	}
	return m
}

func equalFiles(a, b map[string][]byte) bool {
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			return false
		}
	}
	return len(a) == len(b)
}

func TestPlanTable(t *testing.T) {
	f := newPlanFixture(t)
	code, out, errs := f.main(t, "plan", f.run, "--thresholds", "c=10m,30m,1h:d=10K,30K,60K", "--tolerance", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"pool bp: 3 hosts,", "HOST  FLAGS", "bp01  drain", "cg01  no-new",
		"classes c=10m,30m,1h:d=10K,30K,60K; pick random;", "tolerance 1",
		"cg01: accept_new = false: receives nobody", "next: maildist assign",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestPlanHostsFile(t *testing.T) {
	f := newPlanFixture(t)
	// A temporary weighting: bp02 drains too, for this plan only.
	hosts := filepath.Join(f.dir, "weights.toml")
	os.WriteFile(hosts, []byte(strings.Replace(fixtureHosts, "name = \"bp02\"\npool = \"bp\"\nroot = \"/bp02\"\n", "name = \"bp02\"\npool = \"bp\"\nroot = \"/bp02\"\ndrain = true\n", 1)), 0o644)
	code, out, errs := f.main(t, "plan", f.run, "--hosts", hosts, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var sum struct {
		Hosts []struct {
			Name    string
			Drain   bool
			Unmoved int
			After   struct{ Users int }
		}
	}
	json.Unmarshal([]byte(out), &sum)
	for _, h := range sum.Hosts {
		if h.Drain && h.After.Users != h.Unmoved {
			t.Errorf("%s drains but keeps %d users (%d not ok)", h.Name, h.After.Users, h.Unmoved)
		}
		if h.Name == "bp02" && !h.Drain {
			t.Error("--hosts was not used")
		}
	}
}

// A hosts file that would plan moves run refuses is refused by plan: a
// host the config lacks, a host the config drains or keeps from new
// users made to receive, a root moved.
func TestPlanHostsFileAgainstConfig(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"unknown host", "", "\n[[host]]\nname = \"bp99\"\npool = \"bp\"\nroot = \"/bp99\"\nweight = 5\n",
			[]string{"weights.toml:36: host bp99 is not in ", "maildist.toml: run moves users only between the config's hosts"}},
		{"undrained", "root = \"/bp01\"\ndrain = true\n", "root = \"/bp01\"\ndrain = false\n",
			[]string{"weights.toml:6: host bp01: drain = false here, but ", "maildist.toml:11 drains it: run refuses moves into a draining host"}},
		{"drain left out", "root = \"/bp01\"\ndrain = true\n", "root = \"/bp01\"\n",
			[]string{"weights.toml:3: host bp01 does not drain here (no drain = true), but "}},
		{"accepts", "root = \"/cg01\"\naccept_new = false\n", "root = \"/cg01\"\naccept_new = true\n",
			[]string{"weights.toml:23: host cg01: accept_new = true here, but ", "maildist.toml:28 has accept_new = false"}},
		{"root", "root = \"/cg02\"", "root = \"/srv/cg02\"",
			[]string{"weights.toml:28: host cg02: root /srv/cg02, but /cg02 in "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPlanFixture(t)
			text := fixtureHosts
			if tc.from == "" {
				text += tc.to
			} else {
				text = strings.Replace(text, tc.from, tc.to, 1)
			}
			hosts := filepath.Join(f.dir, "weights.toml")
			os.WriteFile(hosts, []byte(text), 0o644)
			code, _, errs := f.main(t, "plan", f.run, "--hosts", hosts)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s", code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if _, err := os.Stat(filepath.Join(f.run, runstate.MovesFile)); err == nil {
				t.Error("a refused hosts file made a plan")
			}
		})
	}
}

// With no config at all, a hosts file is taken as it is, with a warning.
func TestPlanHostsFileNoConfig(t *testing.T) {
	f := newPlanFixture(t)
	hosts := filepath.Join(f.dir, "weights.toml")
	os.WriteFile(hosts, []byte(fixtureHosts), 0o644)
	os.Remove(f.config)
	code, _, errs := f.main(t, "plan", f.run, "--hosts", hosts)
	if code != 0 || !strings.Contains(errs, "warning: no config to check "+hosts+" against") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *planFixture)
		args  []string
		code  int
		want  []string
	}{
		{name: "no raw.tsv", setup: func(f *planFixture) { os.Remove(filepath.Join(f.run, runstate.RawFile)) },
			code: 1, want: []string{"raw.tsv: no such file", "hint: run `maildist survey"}},
		{name: "bad line", setup: func(f *planFixture) {
			p := filepath.Join(f.run, runstate.RawFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, "zed\tbp02\tbp\t/bp02/zed\tmany\t1\t\t1\t1\tok\n"...), 0o644)
		}, code: 1, want: []string{"raw.tsv:602: connect_s \"many\" is not a count", "no plan was made"}},
		{name: "unknown host", setup: func(f *planFixture) {
			f.users[3].Host = "bp99"
			f.users[4].Host = "bp99"
			runstate.WriteRaw(filepath.Join(f.run, runstate.RawFile), f.users)
		}, code: 1, want: []string{"raw.tsv names hosts not in the host list: bp99 (2 users)", "hint: add them to"}},
		{name: "pool all drains", setup: func(f *planFixture) {
			cfg, _ := os.ReadFile(f.config)
			cfg = bytes.ReplaceAll(cfg, []byte("root = \"/bp02\"\n"), []byte("root = \"/bp02\"\ndrain = true\n"))
			cfg = bytes.ReplaceAll(cfg, []byte("root = \"/bp03\"\nweight = 2\n"), []byte("root = \"/bp03\"\nweight = 0\n"))
			os.WriteFile(f.config, cfg, 0o644)
		}, code: 1, want: []string{"pool bp: every host drains or has weight 0", "hint: give some host"}},
		{name: "every host drains", setup: func(f *planFixture) {
			cfg, _ := os.ReadFile(f.config)
			for _, h := range []string{"bp02", "bp03", "cg01", "cg02", "cg03"} {
				cfg = bytes.ReplaceAll(cfg, []byte("root = \"/"+h+"\"\n"), []byte("root = \"/"+h+"\"\ndrain = true\n"))
			}
			os.WriteFile(f.config, cfg, 0o644)
		}, code: 1, want: []string{"pool bp: every host drains", "pool cg: every host drains",
			"hint: every host drains, has weight 0 or takes no new users, so the users have nowhere to go: give at least one host weight > 0, drain = false and accept_new = true in the config"}},
		{name: "user twice", setup: func(f *planFixture) {
			f.users[10].Name = f.users[3].Name
			f.users[40].Name = f.users[3].Name
			runstate.WriteRaw(filepath.Join(f.run, runstate.RawFile), f.users)
		}, code: 1, want: []string{"raw.tsv:12: user u0003 is listed twice: here on bp01, and on line 5 on bp01",
			"raw.tsv:42: user u0003 is listed twice: here on bp02, and on line 5 on bp01"}},
		{name: "no receiver", setup: func(f *planFixture) {
			cfg, _ := os.ReadFile(f.config)
			cfg = bytes.ReplaceAll(cfg, []byte("root = \"/cg02\"\n"), []byte("root = \"/cg02\"\naccept_new = false\n"))
			cfg = bytes.ReplaceAll(cfg, []byte("root = \"/cg03\"\n"), []byte("root = \"/cg03\"\naccept_new = false\n"))
			os.WriteFile(f.config, cfg, 0o644)
		}, code: 1, want: []string{"pool cg: no host may receive: ", "must leave cg01, but no host of the pool has accept_new = true"}},
		{name: "bad thresholds", args: []string{"--thresholds", "c=3,2,1"}, code: 2, want: []string{"thresholds: c: bounds must increase"}},
		{name: "bad pick", args: []string{"--pick", "oldest"}, code: 2, want: []string{`--pick: pick "oldest"`}},
		{name: "negative tolerance", args: []string{"--tolerance", "-1"}, code: 2, want: []string{"must not be negative"}},
		{name: "no run", args: []string{"extra"}, code: 2, want: []string{"plan needs the run folder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPlanFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			code, _, errs := f.main(t, append([]string{"plan", f.run}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, errs)
			}
			if tc.name == "every host drains" && strings.Contains(errs, "--across-pools") {
				t.Errorf("the hint offers --across-pools, which cannot help:\n%s", errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if tc.code != 0 {
				if _, err := os.Stat(filepath.Join(f.run, runstate.MovesFile)); err == nil {
					t.Error("a failed plan wrote moves.tsv")
				}
			}
		})
	}
}

// A raw.tsv pool column that disagrees with the config is not silently
// ignored: the plan goes by the config and says which lines differ.
func TestPlanPoolColumn(t *testing.T) {
	f := newPlanFixture(t)
	n := 0
	for i := range f.users {
		if f.users[i].Host == "bp02" && n < 13 {
			f.users[i].Pool = "cg"
			n++
		}
	}
	runstate.WriteRaw(filepath.Join(f.run, runstate.RawFile), f.users)
	code, _, errs := f.main(t, "plan", f.run)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	first := 0
	for i, u := range f.users {
		if u.Pool == "cg" && u.Host == "bp02" {
			first = i + 2 // the header is line 1
			break
		}
	}
	for _, want := range []string{
		fmt.Sprintf(`warning: %s:%d: pool "cg", but the config puts host bp02 in pool "bp"; the plan goes by the config`, filepath.Join(f.run, runstate.RawFile), first),
		"warning: and 3 more lines like it in ",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestAssignErrors(t *testing.T) {
	f := newPlanFixture(t)
	if code, _, errs := f.main(t, "assign", f.run); code != 1 || !strings.Contains(errs, "run `maildist plan") {
		t.Fatalf("assign before plan: exit %d, %s", code, errs)
	}
	if code, _, errs := f.main(t, "plan", f.run); code != 0 {
		t.Fatal(errs)
	}
	// A sort.tsv that lost users cannot fill the moves.
	p := filepath.Join(f.run, runstate.SortFile)
	b, _ := os.ReadFile(p)
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(p, []byte(strings.Join(lines[:len(lines)/3], "")), 0o644)
	code, _, errs := f.main(t, "assign", f.run)
	if code != 1 || !strings.Contains(errs, "the files are not from one plan") {
		t.Fatalf("short sort.tsv: exit %d, %s", code, errs)
	}
	// Without plan.json the files are taken as they are, and found short.
	os.Remove(filepath.Join(f.run, planOptsFile))
	code, _, errs = f.main(t, "assign", f.run)
	if code != 1 || !strings.Contains(errs, "is missing") || !strings.Contains(errs, "but sort.tsv lists only") {
		t.Fatalf("short sort.tsv, no plan.json: exit %d, %s", code, errs)
	}
	if code, _, errs := f.main(t, "assign", f.run, "--pick", "big"); code != 2 || !strings.Contains(errs, "--pick") {
		t.Fatalf("bad pick: exit %d, %s", code, errs)
	}
}
