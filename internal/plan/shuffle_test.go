package plan

import (
	"fmt"
	"math"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
)

// TestShuffledIsUniform: over many seeds, a user lands in every tenth of
// the list equally often and two users come in either order equally often,
// with enough users for the shuffle to use several buckets.
func TestShuffledIsUniform(t *testing.T) {
	const n, seeds = 5000, 1500
	users := make([]cluster.User, n)
	where := make([]int32, n)
	for i := range users {
		users[i] = cluster.User{Name: fmt.Sprintf("u%05d", i), Host: "a", Status: cluster.StatusOK}
	}
	var tenth [10]int
	before := 0
	for seed := range uint64(seeds) {
		p := &Plan{Hosts: []HostPlan{{Name: "a"}}}
		sorted, row := p.shuffled(users, where, n, seed+1)
		if p.Hosts[0].Have[0] != n {
			t.Fatalf("counted %d users", p.Hosts[0].Have[0])
		}
		seen := make([]bool, n)
		var pos0, pos1 int
		for k, s := range sorted {
			r := row[k]
			if seen[r] || s.User != users[r].Name || s.Host != "a" {
				t.Fatalf("row %d: %+v for user %d", k, s, r)
			}
			seen[r] = true
			switch r {
			case 0:
				pos0 = k
			case 1:
				pos1 = k
			}
		}
		tenth[pos0*10/n]++
		if pos0 < pos1 {
			before++
		}
	}
	// Each count is binomial(seeds, 1/10): sd ≈ 11.6; allow 4.5 sd.
	for i, c := range tenth {
		if math.Abs(float64(c)-seeds/10) > 4.5*math.Sqrt(seeds*0.09) {
			t.Errorf("user 0 fell in tenth %d %d times of %d: %v", i, c, seeds, tenth)
		}
	}
	if math.Abs(float64(before)-seeds/2) > 4.5*math.Sqrt(seeds*0.25) {
		t.Errorf("user 0 came before user 1 %d times of %d", before, seeds)
	}
}
