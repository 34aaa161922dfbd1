package plan

// flow is a count of users of one class going from one host to another.
type flow struct{ from, to, count int }

// pair splits the sources' surpluses over the destinations' deficits
// (both sum to the same total T) so that each source feeds every
// destination in proportion to its deficit, as near as whole users allow.
//
// The T users to place form a line. The destinations take turns along it
// by smooth weighted round robin (at each step every destination gains
// its deficit and the one with the most, less T, takes the step), which
// spreads each destination evenly along the whole line: any stretch of
// length L holds L·deficit/T of it to within less than two users. Each
// source then takes one stretch, as long as its surplus. So a source of
// surplus S feeds each destination S·deficit/T users, less than two off
// (TestPairSpreadsEverySource), and the row and column sums come out exact.
func pair(from, out, to, in []int) []flow {
	total := 0
	for _, n := range in {
		total += n
	}
	counts := make([]int, len(from)*len(to))
	cur := make([]int, len(to))
	s, left := 0, 0
	for left == 0 && s < len(from) {
		left = out[s]
		if left == 0 {
			s++
		}
	}
	for range total {
		best := 0
		for d, n := range in {
			cur[d] += n
			if cur[d] > cur[best] {
				best = d
			}
		}
		cur[best] -= total
		counts[s*len(to)+best]++
		left--
		for left == 0 && s+1 < len(from) {
			s++
			left = out[s]
		}
	}
	var fl []flow
	for i := range from {
		for j := range to {
			if n := counts[i*len(to)+j]; n > 0 {
				fl = append(fl, flow{from[i], to[j], n})
			}
		}
	}
	return fl
}
