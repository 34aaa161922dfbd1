package plan

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
)

// genCluster draws a small cluster: up to three pools of up to five hosts,
// with weights, draining and non-accepting hosts, and up to 80 users whose
// connect times and sizes fall on few values, so that classes repeat.
func genCluster(t *rapid.T) ([]*cluster.Host, []cluster.User) {
	pools := rapid.IntRange(1, 3).Draw(t, "pools")
	var hosts []*cluster.Host
	for p := range pools {
		for h := range rapid.IntRange(1, 5).Draw(t, "hosts") {
			name := fmt.Sprintf("p%dh%d", p, h)
			w := rapid.SampledFrom([]float64{0, 0.5, 1, 1, 1, 1.5, 2, 3, 0.1, 0.7}).Draw(t, name+".weight")
			hosts = append(hosts, &cluster.Host{Name: name, Pool: fmt.Sprintf("p%d", p), Root: "/" + name,
				Weight:    w,
				AcceptNew: rapid.IntRange(0, 4).Draw(t, name+".accept") > 0,
				Drain:     rapid.IntRange(0, 6).Draw(t, name+".drain") == 0})
		}
	}
	n := rapid.IntRange(0, 80).Draw(t, "users")
	users := make([]cluster.User, n)
	for i := range users {
		h := hosts[rapid.IntRange(0, len(hosts)-1).Draw(t, "host")]
		status := cluster.StatusOK
		if rapid.IntRange(0, 15).Draw(t, "status") == 0 {
			status = cluster.StatusMissingHome
		}
		users[i] = cluster.User{Name: fmt.Sprintf("u%03d", i), Host: h.Name, Pool: h.Pool, Home: h.Root + "/u",
			ConnectS: rapid.SampledFrom([]int64{0, 10, 100, 1000}).Draw(t, "c"),
			Bytes:    rapid.SampledFrom([]int64{0, 5, 50}).Draw(t, "d"),
			Status:   status}
	}
	return hosts, users
}

func genOptions(t *rapid.T) Options {
	return Options{
		AcrossPools: rapid.Bool().Draw(t, "across"),
		Tolerance:   rapid.IntRange(0, 2).Draw(t, "tolerance"),
		Pick:        rapid.SampledFrom(assign.Policies).Draw(t, "pick"),
		Seed:        rapid.Uint64().Draw(t, "seed"),
	}
}

// band is the test's own reading of the rule in doc.go, for one class of
// one group: the least and most each host may hold, and for a host that
// accepts new users the share it is held to.
type band struct {
	lo, hi int
	held   *big.Rat // nil for a host held to a number (drain, weight 0, accept_new = false)
}

func rat(f float64) *big.Rat { return new(big.Rat).SetFloat64(f) }

func floorCeilTest(x *big.Rat) (int, int) {
	f := new(big.Int).Div(x.Num(), x.Denom()) // Euclidean: floor for x ≥ 0
	fl := int(f.Int64())
	if new(big.Rat).SetInt(f).Cmp(x) == 0 {
		return fl, fl
	}
	return fl, fl + 1
}

// bands computes the rule's bands from scratch. ok is false when the rule
// has no solution (users to place, no accepting host with weight).
func bands(n int, have []int, hosts []*cluster.Host, tol int) (bs []band, ok bool) {
	w := func(h *cluster.Host) *big.Rat {
		if h.Drain {
			return new(big.Rat)
		}
		return rat(h.Weight)
	}
	total, acc := new(big.Rat), new(big.Rat)
	for _, h := range hosts {
		total.Add(total, w(h))
		if h.AcceptNew && !h.Drain {
			acc.Add(acc, w(h))
		}
	}
	bs = make([]band, len(hosts))
	rest := n
	for i, h := range hosts {
		if w(h).Sign() == 0 || h.AcceptNew {
			continue
		}
		s := new(big.Rat).Quo(new(big.Rat).Mul(big.NewRat(int64(n), 1), w(h)), total)
		_, c := floorCeilTest(s)
		keep := min(have[i], c+tol)
		bs[i] = band{lo: keep, hi: keep}
		rest -= keep
	}
	if rest > 0 && acc.Sign() == 0 {
		return nil, false
	}
	for i, h := range hosts {
		if w(h).Sign() == 0 || !h.AcceptNew {
			continue
		}
		s := new(big.Rat).Quo(new(big.Rat).Mul(big.NewRat(int64(rest), 1), w(h)), acc)
		f, c := floorCeilTest(s)
		bs[i] = band{lo: max(0, f-tol), hi: c + tol, held: s}
	}
	return bs, true
}

// fewestMoves tries every vector of targets inside the bands that sums to
// n and returns the least Σ max(0, have − target).
func fewestMoves(n int, have []int, bs []band) int {
	best := -1
	var walk func(i, left, moves int)
	walk = func(i, left, moves int) {
		if i == len(bs) {
			if left == 0 && (best < 0 || moves < best) {
				best = moves
			}
			return
		}
		for t := bs[i].lo; t <= bs[i].hi && t <= left; t++ {
			walk(i+1, left-t, moves+max(0, have[i]-t))
		}
	}
	walk(0, n, 0)
	return best
}

type groupClass struct {
	group string
	class cluster.Class
}

func groupName(h *cluster.Host, across bool) string {
	if across {
		return "all"
	}
	return h.Pool
}

// classCounts counts the movable users of each group, class and host.
func classCounts(p *Plan, users []cluster.User) map[groupClass]map[string]int {
	out := map[groupClass]map[string]int{}
	for _, u := range users {
		if u.Status != cluster.StatusOK || u.Host == "" {
			continue
		}
		var g string
		for _, h := range p.Hosts {
			if h.Name == u.Host {
				g = h.Group
			}
		}
		k := groupClass{g, p.Thresholds.Class(u.ConnectS, u.Bytes)}
		if out[k] == nil {
			out[k] = map[string]int{}
		}
		out[k][u.Host]++
	}
	return out
}

// apply carries the todo out on the rows.
func apply(t interface{ Fatalf(string, ...any) }, users []cluster.User, todo []cluster.Todo) []cluster.User {
	out := append([]cluster.User(nil), users...)
	at := map[string]int{}
	for i, u := range out {
		at[u.Name] = i
	}
	for _, m := range todo {
		i, ok := at[m.User]
		if !ok {
			t.Fatalf("todo moves %s, who is not in the rows", m.User)
		}
		if out[i].Host != m.From {
			t.Fatalf("todo moves %s from %s, but the user is on %s", m.User, m.From, out[i].Host)
		}
		out[i].Host = m.To
		out[i].Home = "/" + m.To + "/" + m.User
	}
	return out
}

func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hosts, users := genCluster(t)
		opt := genOptions(t)
		p, err := Make(users, hosts, opt)

		hostOf := map[string]*cluster.Host{}
		for _, h := range hosts {
			hostOf[h.Name] = h
		}
		// The groups, and the counts the test expects, from scratch.
		members := map[string][]*cluster.Host{}
		for _, h := range hosts {
			g := groupName(h, opt.AcrossPools)
			members[g] = append(members[g], h)
		}
		th := Thresholds{}
		if p != nil {
			th = p.Thresholds
		}
		counts := map[groupClass][]int{}
		groupUsers := map[string]int{}
		for _, u := range users {
			if u.Status != cluster.StatusOK {
				continue
			}
			h := hostOf[u.Host]
			g := groupName(h, opt.AcrossPools)
			k := groupClass{g, th.Class(u.ConnectS, u.Bytes)}
			if counts[k] == nil {
				counts[k] = make([]int, len(members[g]))
			}
			for i, m := range members[g] {
				if m == h {
					counts[k][i]++
				}
			}
			groupUsers[g]++
		}

		if err != nil {
			// Only the documented impossible cases may fail.
			switch {
			case errors.Is(err, ErrNoWeight):
				found := false
				for g, hs := range members {
					sum := 0.0
					for _, h := range hs {
						if !h.Drain {
							sum += h.Weight
						}
					}
					found = found || (sum == 0 && groupUsers[g] > 0)
				}
				if !found {
					t.Fatalf("ErrNoWeight but every group with users has weight: %v", err)
				}
			case errors.Is(err, ErrNoReceiver):
				found := false
				for g, hs := range members {
					recv := false
					for _, h := range hs {
						recv = recv || (h.AcceptNew && !h.Drain && h.Weight > 0)
					}
					found = found || (!recv && groupUsers[g] > 0)
				}
				if !found {
					t.Fatalf("ErrNoReceiver but every group with users has a host that may receive: %v", err)
				}
			default:
				t.Fatalf("Make: %v", err)
			}
			return
		}

		// Every target inside the rule's band, and moves = Σ max(0, have − target)
		// = the brute-force least = max(A, B).
		targets := map[groupClass]map[string]Target{}
		for _, x := range p.Targets {
			k := groupClass{x.Group, x.Class}
			if targets[k] == nil {
				targets[k] = map[string]Target{}
			}
			targets[k][x.Host] = x
		}
		lower := 0
		for k, have := range counts {
			n := 0
			for _, c := range have {
				n += c
			}
			bs, ok := bands(n, have, members[k.group], opt.Tolerance)
			if !ok {
				t.Fatalf("%v: the rule has no solution, but Make did not fail", k)
			}
			sum, out := 0, 0
			var a, b int
			for i, h := range members[k.group] {
				x, found := targets[k][h.Name]
				if !found {
					t.Fatalf("%v: no target for %s", k, h.Name)
				}
				if x.Have != have[i] {
					t.Fatalf("%v %s: have %d, counted %d", k, h.Name, x.Have, have[i])
				}
				if x.Target < bs[i].lo || x.Target > bs[i].hi {
					t.Fatalf("%v %s: target %d outside the band [%d, %d]", k, h.Name, x.Target, bs[i].lo, bs[i].hi)
				}
				sum += x.Target
				out += max(0, have[i]-x.Target)
				a += max(0, have[i]-bs[i].hi)
				b += max(0, bs[i].lo-have[i])
			}
			if sum != n {
				t.Fatalf("%v: targets sum to %d, class has %d", k, sum, n)
			}
			least := fewestMoves(n, have, bs)
			if out != least || least != max(a, b) {
				t.Fatalf("%v: plan moves %d, brute force least %d, max(A,B) = %d", k, out, least, max(a, b))
			}
			lower += least
		}
		// Among the plans with the fewest moves, the totals nearest the shares.
		checkTotals(t, members, counts, targets, opt.Tolerance)
		moved := 0
		for _, m := range p.Moves {
			moved += m.Count
			from, to := hostOf[m.From], hostOf[m.To]
			if to.Drain || !to.AcceptNew || to.Weight == 0 {
				t.Fatalf("move into %s (drain %v, accept_new %v, weight %v)", to.Name, to.Drain, to.AcceptNew, to.Weight)
			}
			if !opt.AcrossPools && from.Pool != to.Pool {
				t.Fatalf("move %s→%s mixes pools", from.Name, to.Name)
			}
		}
		if moved != lower || p.Stats.Moves != lower || p.Stats.LowerBound != lower {
			t.Fatalf("moves.tsv sums to %d, stats say %d (bound %d), the least is %d", moved, p.Stats.Moves, p.Stats.LowerBound, lower)
		}

		// The todo: each user once, from where the user is, of the user's
		// class, counts as in moves, never a user whose status is not ok.
		checkTodo(t, p, users)

		// Carried out, every host holds its targets; planning again moves nobody.
		after := apply(t, users, p.Todo)
		for k, byHost := range classCounts(p, after) {
			for h, n := range byHost {
				if x := targets[k][h]; x.Target != n {
					t.Fatalf("%v %s: holds %d after the todo, target %d", k, h, n, x.Target)
				}
			}
		}
		again, err := Make(after, hosts, opt)
		if err != nil {
			t.Fatalf("plan the result: %v", err)
		}
		if len(again.Moves) != 0 {
			t.Fatalf("planning the result moves %d more: %v", again.Stats.Moves, again.Moves)
		}

		// Same input, same plan.
		twin, err := Make(users, hosts, opt)
		if err != nil || !reflect.DeepEqual(p, twin) {
			t.Fatalf("a second Make with the same seed differs (err %v)", err)
		}
	})
}

func checkTodo(t *rapid.T, p *Plan, users []cluster.User) {
	at := map[string]cluster.User{}
	for _, u := range users {
		at[u.Name] = u
	}
	seen := map[string]bool{}
	got := map[cluster.MoveCount]int{}
	for _, m := range p.Todo {
		if seen[m.User] {
			t.Fatalf("todo moves %s twice", m.User)
		}
		seen[m.User] = true
		u := at[m.User]
		if u.Status != cluster.StatusOK {
			t.Fatalf("todo moves %s whose status is %s", m.User, u.Status)
		}
		if u.Host != m.From || p.Thresholds.Class(u.ConnectS, u.Bytes) != m.Class {
			t.Fatalf("todo row %+v does not match the user %+v", m, u)
		}
		got[cluster.MoveCount{Class: m.Class, From: m.From, To: m.To}]++
	}
	for _, m := range p.Moves {
		k := m
		k.Count = 0
		if got[k] != m.Count {
			t.Fatalf("moves.tsv says %d for %v, todo has %d", m.Count, k, got[k])
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Fatalf("todo rows not in moves.tsv: %v", got)
	}
}
