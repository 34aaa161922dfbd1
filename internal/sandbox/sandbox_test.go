package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
)

func TestBuildGenerated(t *testing.T) {
	c := build(t, Options{Seed: 1})
	st := checkCluster(t, c)

	if got := len(c.Users); got != 41 {
		t.Errorf("%d users, want 40 with homes and 1 without", got)
	}
	missing := 0
	for _, u := range c.Users {
		if u.Status == cluster.StatusMissingHome {
			missing++
		}
	}
	if missing != 1 {
		t.Errorf("%d users without a home, want 1", missing)
	}
	t.Logf("%d messages, %d bytes; flags %v; folders %v; per host %v", st.messages, st.bytes, st.flags, st.folders, st.perHost)

	// What a realistic store has, and the tests of other packages lean on.
	for _, f := range []string{"new", ":2,", ":2,S", ":2,RS", ":2,FS"} {
		if st.flags[f] == 0 {
			t.Errorf("no message with flags %q", f)
		}
	}
	for _, f := range []string{".Sent", ".Archive"} {
		if st.folders[f] == 0 {
			t.Errorf("no user has a %s folder", f)
		}
	}
	if st.keywords == 0 || st.noMsgID == 0 || st.multipart == 0 || st.noDate == 0 || st.empty == 0 {
		t.Errorf("keywords %d, without Message-ID %d, multipart %d, without a Date %d, empty Maildirs %d: want some of each",
			st.keywords, st.noMsgID, st.multipart, st.noDate, st.empty)
	}
	counts := slices.Sorted(func(yield func(int) bool) {
		for _, n := range st.perUser {
			if !yield(n) {
				return
			}
		}
	})
	if median, most := counts[len(counts)/2], counts[len(counts)-1]; most < 5*median {
		t.Errorf("mailbox sizes are not skewed: median %d, largest %d", median, most)
	}
	if st.perHost["bp01"] <= st.perHost["bp04"] {
		t.Errorf("users per host %v: want bp01 (share 4) fuller than bp04 (share 1)", st.perHost)
	}
}

func TestDeterministic(t *testing.T) {
	opt := Options{Seed: 7, Users: 12, Layout: "{root}/{hash2}/{user}"}
	a, b := build(t, opt), build(t, opt)
	la, lb := listing(t, a.Dir), listing(t, b.Dir)
	if !slices.Equal(la, lb) {
		for i := range min(len(la), len(lb)) {
			if la[i] != lb[i] {
				t.Fatalf("two builds differ, first at\n%s\n%s", la[i], lb[i])
			}
		}
		t.Fatalf("two builds differ: %d entries and %d", len(la), len(lb))
	}
	if !slices.EqualFunc(a.Users, b.Users, func(x, y User) bool { return x == y }) {
		t.Error("two builds return different users")
	}
	opt.Seed = 8
	if lc := listing(t, build(t, opt).Dir); slices.Equal(la, lc) {
		t.Error("another seed made the same cluster")
	}
}

func TestHash2Layout(t *testing.T) {
	c := build(t, Options{Seed: 3, Users: 8, Layout: "{root}/d{hash2}/{user}"})
	checkCluster(t, c)
	for _, u := range c.Users {
		if want := "/" + u.Host + "/d" + cluster.Hash2(u.Name) + "/" + u.Name; u.Home != want {
			t.Errorf("user %s: home %s, want %s", u.Name, u.Home, want)
		}
	}
}

func TestHosts(t *testing.T) {
	hosts := []HostSpec{
		{Name: "cg1", Pool: "cg", Weight: 2, AcceptNew: true, Share: 1},
		{Name: "cg2", Pool: "cg", Weight: 1.5, AcceptNew: false, Share: 1},
		{Name: "old", Weight: 1, Drain: true, Share: 2},
		{Name: "new", Pool: "cg", Weight: 1, AcceptNew: true}, // starts empty
	}
	c := build(t, Options{Seed: 5, Users: 20, MissingHomes: -1, Hosts: hosts, Domain: "mail.example.org", UIDBase: 7000})
	st := checkCluster(t, c)
	if len(c.Users) != 20 {
		t.Errorf("%d users, want 20 and none without a home", len(c.Users))
	}
	want := map[string]int{"cg1": 5, "cg2": 5, "old": 10}
	for h, n := range want {
		if st.perHost[h] != n {
			t.Errorf("users per host %v, want %v", st.perHost, want)
			break
		}
	}
	if c.Users[0].UID != 7000 || c.Users[19].GID != 7019 {
		t.Errorf("uids start at %d, end at gid %d", c.Users[0].UID, c.Users[19].GID)
	}
	if got := c.RealPath("/nowhere/x"); got != "" {
		t.Errorf("RealPath of a path no host holds = %q", got)
	}
	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "mail.example.org" || cfg.Hosts[2].Pool != "default" || !cfg.Hosts[2].Drain || cfg.Hosts[1].AcceptNew {
		t.Errorf("config: %+v %+v %+v", cfg.Domain, *cfg.Hosts[1], *cfg.Hosts[2])
	}
}

func TestOptionsRefused(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"no dir", Options{}, "Dir is required"},
		{"dir not empty", Options{Dir: full}, "not empty"},
		{"negative users", Options{Users: -1}, "Users"},
		{"bad missing", Options{MissingHomes: -2}, "MissingHomes"},
		{"bad host name", Options{Hosts: []HostSpec{{Name: "a/b"}}}, "not a plain name"},
		{"two hosts one name", Options{Hosts: []HostSpec{{Name: "a"}, {Name: "a"}}}, "twice"},
		{"negative share", Options{Hosts: []HostSpec{{Name: "a", Share: -1}}}, "share"},
		{"layout", Options{Layout: "/srv/{user}"}, "layout"},
		{"layout braces", Options{Layout: "{root}/{x}/{user}"}, "layout"},
		{"layout colon", Options{Layout: "{root}/a:b/{user}"}, "layout"},
		{"layout up", Options{Layout: "{root}/../{user}"}, "layout"},
		{"log days", Options{LogDays: -1}, "LogDays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opt.Dir == "" && tc.name != "no dir" {
				tc.opt.Dir = filepath.Join(t.TempDir(), "s")
			}
			_, err := Build(context.Background(), tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestProgressAndCancel(t *testing.T) {
	for _, opt := range []Options{{Seed: 2, Users: 10}, {Corpus: writeSmallCorpusTar(t, []string{"bob", "alice"})}} {
		var calls [][2]int
		opt.Progress = func(done, total int) { calls = append(calls, [2]int{done, total}) }
		build(t, opt)
		if len(calls) == 0 {
			t.Fatal("Progress was never called")
		}
		for i, c := range calls {
			if c[0] > c[1] || i > 0 && c[0] < calls[i-1][0] {
				t.Fatalf("progress calls %v: done must not decrease nor pass total", calls)
			}
		}
		if last := calls[len(calls)-1]; last[0] != last[1] {
			t.Errorf("last progress call %v: want done == total", last)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, Options{Dir: filepath.Join(t.TempDir(), "s"), Seed: 2})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Build with a cancelled context = %v", err)
	}
}
