package plan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
)

// skewedCluster is a survey as it looks after years without balancing:
// three pools of uneven hosts; older hosts hold more users, more idle
// ones and bigger mailboxes; one host is new and empty, one drains, one
// takes no new users (if noNew), weights differ; a few homes are missing.
func skewedCluster(seed uint64, users int, noNew bool) ([]*cluster.Host, []cluster.User) {
	r := rand.New(rand.NewPCG(seed, 1))
	var hosts []*cluster.Host
	add := func(pool string, n int) {
		for i := range n {
			h := &cluster.Host{Name: fmt.Sprintf("%s%02d", pool, i+1), Pool: pool, Root: fmt.Sprintf("/%s%02d", pool, i+1),
				Weight: []float64{1, 1, 2, 0.5, 1.5}[i%5], AcceptNew: true}
			hosts = append(hosts, h)
		}
	}
	add("bp", 10)
	add("cg", 6)
	add("ep", 4)
	hosts[0].Drain = true // bp01
	if noNew {
		hosts[11].AcceptNew = false // cg02
	}
	age := func(h int) float64 { // 1 for the oldest host of a pool, 0 for the newest
		first, last := h, h
		for first > 0 && hosts[first-1].Pool == hosts[h].Pool {
			first--
		}
		for last+1 < len(hosts) && hosts[last+1].Pool == hosts[h].Pool {
			last++
		}
		return 1 - float64(h-first)/float64(last-first)
	}
	var cum []float64
	sum := 0.0
	for h := range hosts {
		if a := age(h); a > 0 { // the newest host of each pool is empty
			sum += 0.3 + 2*a*a
		}
		cum = append(cum, sum)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]cluster.User, users)
	for i := range rows {
		x := r.Float64() * sum
		h := 0
		for cum[h] < x {
			h++
		}
		a := age(h)
		u := cluster.User{Name: fmt.Sprintf("u%06d", i), Host: hosts[h].Name, Pool: hosts[h].Pool,
			Home: hosts[h].Root + fmt.Sprintf("/u%06d", i), Status: cluster.StatusOK}
		if r.Float64() > 0.2+0.4*a {
			u.ConnectS = int64(math.Exp(r.NormFloat64()*1.8 + 8.5))
			u.Sessions = 1 + u.ConnectS/1800
			u.LastLogin = now.Add(-time.Duration(r.Float64()*90*24) * time.Hour)
		}
		if r.Float64() > 0.05 {
			u.Bytes = int64(math.Exp(r.NormFloat64()*1.7 + 16 + 1.5*a))
		}
		if r.Float64() < 0.003 {
			u.Status = cluster.StatusMissingHome
		}
		rows[i] = u
	}
	return hosts, rows
}

// TestSkewedClusterBalances: survey rows → plan → assign → the todo
// carried out on the rows: every accepting host is within one user of its
// share in every class, draining hosts are empty, a host that takes no
// new users kept what the rule lets it keep; and the moves are the least
// possible.
func TestSkewedClusterBalances(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noNew  bool
		across bool
		pick   assign.Policy
	}{
		{"pools", false, false, assign.Random},
		{"pools, no-new host, idle", true, false, assign.Idle},
		{"across pools, small", false, true, assign.Small},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts, users := skewedCluster(11, 30000, tc.noNew)
			p, err := Make(users, hosts, Options{AcrossPools: tc.across, Pick: tc.pick})
			if err != nil {
				t.Fatal(err)
			}
			if p.Stats.Moves != p.Stats.LowerBound || p.Stats.Moves == 0 {
				t.Fatalf("moves %d, lower bound %d", p.Stats.Moves, p.Stats.LowerBound)
			}
			after := apply(t, users, p.Todo)

			// Shares from scratch: N·w/W per group and class.
			group := func(h *cluster.Host) string {
				if tc.across {
					return "all"
				}
				return h.Pool
			}
			weight := map[string]float64{}
			byName := map[string]*cluster.Host{}
			for _, h := range hosts {
				byName[h.Name] = h
				if !h.Drain {
					weight[group(h)] += h.Weight
				}
			}
			type key struct {
				host  string
				class cluster.Class
			}
			count, before := map[key]int{}, map[key]int{}
			classSize := map[string]map[cluster.Class]int{}
			for i, u := range after {
				if u.Status != cluster.StatusOK {
					continue
				}
				c := p.Thresholds.Class(u.ConnectS, u.Bytes)
				count[key{u.Host, c}]++
				before[key{users[i].Host, c}]++
				g := group(byName[u.Host])
				if classSize[g] == nil {
					classSize[g] = map[cluster.Class]int{}
				}
				classSize[g][c]++
			}
			held := map[key]Target{}
			for _, x := range p.Targets {
				held[key{x.Host, x.Class}] = x
			}
			checked := 0
			for _, h := range hosts {
				g := group(h)
				for c, n := range classSize[g] {
					k := key{h.Name, c}
					got := count[k]
					share := float64(n) * h.Weight / weight[g]
					switch {
					case h.Drain:
						if got != 0 {
							t.Errorf("%s %s: drains, but holds %d", h.Name, c, got)
						}
					case !h.AcceptNew:
						want := min(before[k], int(math.Ceil(share-1e-9)))
						if got != want {
							t.Errorf("%s %s: takes no new users: holds %d, want min(had %d, ⌈%.2f⌉)", h.Name, c, got, before[k], share)
						}
					default:
						if tc.noNew {
							share = held[k].Held // the rest after the no-new host, by weight
						}
						if math.Abs(float64(got)-share) >= 1 {
							t.Errorf("%s %s: holds %d, share %.3f", h.Name, c, got, share)
						}
					}
					checked++
				}
			}
			if checked < 100 {
				t.Fatalf("only %d host-class pairs checked", checked)
			}
		})
	}
}
