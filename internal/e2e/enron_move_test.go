package e2e

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/wire"
)

// Enron users of every size, from the smallest mailbox to the largest, are
// moved to another host with the engine the commands use. Afterwards every
// file of every moved home is on the new host with the same name,
// contents, mode, owner and mtime; every other home is untouched; the
// passwd file changed in the moved users' home fields and nowhere else;
// done leaves no stub and no trash.
func TestEnronMoveUsersOfEverySize(t *testing.T) {
	c := enron(t, sandboxDefaults())
	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	e, dir, err := wire.Engine(cfg, wire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	passwdBefore, _ := os.ReadFile(c.Passwd)

	all := append([]sandboxUser(nil), usersOf(c)...)
	sort.Slice(all, func(i, j int) bool { return all[i].Bytes < all[j].Bytes })
	// Every tenth user by size, and the three largest.
	var users []sandboxUser
	for i := range all {
		if i%10 == 0 || i >= len(all)-3 {
			users = append(users, all[i])
		}
	}
	t.Logf("moving %d of %d users, mailboxes from %d to %d bytes", len(users), len(all), users[0].Bytes, users[len(users)-1].Bytes)
	untouched := map[string]map[string]fileFact{}
	for _, u := range all {
		untouched[u.Name] = facts(t, c.RealPath(u.Home))
	}

	before := untouched
	hosts := cfg.Hosts
	next := func(h string) string {
		for i, x := range hosts {
			if x.Name == h {
				return hosts[(i+1)%len(hosts)].Name
			}
		}
		return ""
	}
	start := time.Now()
	var bytes int64
	for _, u := range users {
		r := e.Move(context.Background(), move.Request{User: u.Name, To: next(u.Host)})
		if r.Outcome != move.OutcomeMoved {
			t.Fatalf("move %s: %v", u.Name, r)
		}
		bytes += r.Bytes
	}
	el := time.Since(start)
	t.Logf("moved %d users, %d MB, in %v (%.1f MB/s, verification included)", len(users), bytes>>20, el.Round(time.Millisecond), float64(bytes)/1e6/el.Seconds())

	passwdAfter, _ := os.ReadFile(c.Passwd)
	wantLines := strings.Split(string(passwdBefore), "\n")
	gotLines := strings.Split(string(passwdAfter), "\n")
	if len(wantLines) != len(gotLines) {
		t.Fatalf("passwd has %d lines, had %d", len(gotLines), len(wantLines))
	}
	moved := map[string]string{}
	for _, u := range users {
		moved[u.Home] = cfg.Cluster().HomeFor(u.Name, mustHost(t, cfg, next(u.Host)))
	}
	for i := range wantLines {
		f := strings.Split(wantLines[i], ":")
		if len(f) >= 6 {
			if nh, ok := moved[f[5]]; ok {
				f[5] = nh
			}
		}
		if w := strings.Join(f, ":"); gotLines[i] != w {
			t.Errorf("passwd line %d = %q, want %q", i+1, gotLines[i], w)
		}
	}

	if _, err := e.Done(context.Background(), move.DoneOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		newHome := moved[u.Home]
		to := mustHost(t, cfg, next(u.Host))
		got := facts(t, to.FSRoot+newHome)
		want := before[u.Name]
		if len(got) != len(want) {
			t.Errorf("%s: %d entries, want %d", u.Name, len(got), len(want))
		}
		for p, w := range want {
			g, ok := got[p]
			if !ok {
				t.Errorf("%s: %s missing after the move", u.Name, p)
				continue
			}
			if g != w {
				t.Errorf("%s: %s differs: %+v, want %+v", u.Name, p, g, w)
			}
		}
		from := mustHost(t, cfg, u.Host)
		for _, p := range []string{u.Home, u.Home + ".moving", newHome} {
			if _, err := os.Lstat(from.FSRoot + p); err == nil {
				t.Errorf("%s: %s is still on %s after done", u.Name, p, u.Host)
			}
		}
	}
	for _, u := range all {
		if _, ok := moved[u.Home]; ok {
			continue
		}
		if got := facts(t, c.RealPath(u.Home)); len(got) != len(untouched[u.Name]) {
			t.Errorf("%s was not moved, but its home changed", u.Name)
		} else {
			for p, w := range untouched[u.Name] {
				if got[p] != w {
					t.Errorf("%s was not moved, but %s changed", u.Name, p)
				}
			}
		}
	}
	for _, h := range hosts {
		for _, d := range []string{"/.maildist-trash", "/.maildist-staging"} {
			ents, _ := os.ReadDir(h.FSRoot + h.Root + d)
			if len(ents) > 0 {
				t.Errorf("%s%s holds %d entries after done", h.Name, d, len(ents))
			}
		}
	}
}

func mustHost(t *testing.T, cfg *config.Config, name string) *cluster.Host {
	t.Helper()
	h, ok := cfg.Cluster().Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return h
}
