package plan

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// TestPairSpreadsEverySource: the row and column sums are exact, and each
// source sends each destination its proportional part, S·D/T, to within
// two users, so every source feeds every destination it can.
func TestPairSpreadsEverySource(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		out := rapid.SliceOfN(rapid.IntRange(0, 300), 1, 12).Draw(t, "out")
		total := 0
		for _, n := range out {
			total += n
		}
		nd := rapid.IntRange(1, 12).Draw(t, "dests")
		in := make([]int, nd)
		for left := total; left > 0; {
			d := rapid.IntRange(0, nd-1).Draw(t, "d")
			k := rapid.IntRange(1, left).Draw(t, "k")
			in[d] += k
			left -= k
		}
		from, to := make([]int, len(out)), make([]int, nd)
		for i := range from {
			from[i] = 100 + i
		}
		for j := range to {
			to[j] = 200 + j
		}
		got := make(map[[2]int]int)
		rows, cols := make([]int, len(out)), make([]int, nd)
		for _, f := range pair(from, out, to, in) {
			if f.count <= 0 {
				t.Fatalf("flow %+v", f)
			}
			got[[2]int{f.from - 100, f.to - 200}] += f.count
			rows[f.from-100] += f.count
			cols[f.to-200] += f.count
		}
		for i := range out {
			if rows[i] != out[i] {
				t.Fatalf("source %d sends %d, has %d", i, rows[i], out[i])
			}
			for j := range in {
				want := float64(out[i]) * float64(in[j]) / float64(total)
				if d := math.Abs(float64(got[[2]int{i, j}]) - want); d >= 2 {
					t.Fatalf("source %d (%d) → dest %d (%d of %d): %d, proportional %.2f", i, out[i], j, in[j], total, got[[2]int{i, j}], want)
				}
			}
		}
		for j := range in {
			if cols[j] != in[j] {
				t.Fatalf("dest %d gets %d, lacks %d", j, cols[j], in[j])
			}
		}
	})
}
