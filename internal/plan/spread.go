package plan

import (
	"math/big"
)

// spread chooses the targets of the accepting hosts of one group among
// those solve left open, for all the classes of the group at once.
//
// solve leaves every target at the least it may be and, in each class k,
// extra[k] users still to place, each on a host whose target may still
// rise (cell.most). Every way of placing them moves the same, least,
// number of users; spread picks the one that brings each host's total
// T, the sum of its targets, nearest its total share g, the sum of the
// shares the rule holds it to (cell.held). It minimises Σ (T − g)² by
// successive shortest paths: one user at a time, it goes to the host
// with the lowest T − g that can still take one, either directly (a
// class with users left to place has room on the host) or through a
// chain of exchanges (a class with users left places one on host h1,
// which gives up one of another class it had been given to host h2, and
// so on). The exchanges cost nothing, so the shortest path ends at the
// cheapest reachable host and a breadth-first search finds it. The
// totals such a flow can reach form an M-convex set (the integer points
// of a base polyhedron), on which a separable convex function like this
// one has no local minimum that is not global (Murota, Discrete Convex
// Analysis, 2003): no pass of one user from a host to another lowers it.
// That minimum also has the smallest largest excess T − g of all the
// plans with the fewest moves: any plan that gives the furthest host h
// less gives some host j more, one that h could pass a user to, and
// j was at most one below h. The same holds for the largest shortfall.
// doc.go gives the bound the totals reach.
//
// Ties go to the host with the fewest bytes against its byte share, then
// to the host listed first. Then, with the totals fixed, pairs of hosts
// swap one user of one class for one of another where that brings their
// bytes nearer their byte shares (balanceBytes). Which users go is
// decided later, by assign, so bytes are estimates: a host keeps users
// of a class at the mean size of its own users of the class, and
// receives them at the mean size of the group's; its byte share is the
// sum over the classes of its held share times that group mean.
//
// cls holds the group's classes with users (nil for none), each a cell a
// member host, in the same member order; hostBytes the bytes of each
// member's movable users of each class.
func spread(cls [][]cell, extra []int, hostBytes [][NumClasses]int64) {
	var first []cell
	for _, cells := range cls {
		if cells != nil {
			first = cells
			break
		}
	}
	if first == nil {
		return
	}
	// The hosts whose targets are free: accepting, with weight.
	var hosts []int // member indexes
	for i, c := range first {
		if c.accept && c.weight.Sign() > 0 {
			hosts = append(hosts, i)
		}
	}
	m := len(hosts)
	if m == 0 {
		return
	}
	var ks []int // classes with users
	for k, cells := range cls {
		if cells != nil {
			ks = append(ks, k)
		}
	}
	nk := len(ks)

	// Per host: total now and total share, bytes now (estimated) and byte
	// share; per class and host: room left above the target, what was
	// given above least (what an exchange may take back), and the bytes a
	// user more or less brings.
	total := make([]int, m)
	bytes := make([]float64, m)
	goal := make([]float64, m)
	byteGoal := make([]float64, m)
	room := make([]int, nk*m)
	given := make([]int, nk*m)
	val := make([]float64, nk*m)
	left := make([]int, nk) // users still to place in the class
	sums := make([]big.Rat, m)
	for a, k := range ks {
		cells := cls[k]
		n, size := 0, int64(0)
		for i, c := range cells {
			n += c.have
			size += hostBytes[i][k]
		}
		mean := float64(size) / float64(n)
		left[a] = extra[k]
		for j, i := range hosts {
			c := &cells[i]
			own := mean
			if c.have > 0 {
				own = float64(hostBytes[i][k]) / float64(c.have)
			}
			// The range [least, most] lies on one side of have: a host
			// that receives in the class gets users of the group's mean
			// size; one that sends keeps users of its own.
			v := mean
			if c.least < c.have {
				v = own
			}
			val[a*m+j] = v
			total[j] += c.target
			if c.target <= c.have {
				bytes[j] += float64(c.target) * own
			} else {
				bytes[j] += float64(hostBytes[i][k]) + float64(c.target-c.have)*mean
			}
			h, _ := c.held.Float64()
			byteGoal[j] += h * mean
			sums[j].Add(&sums[j], c.held)
			room[a*m+j] = c.most - c.target
		}
	}
	for j := range hosts {
		goal[j], _ = sums[j].Float64()
	}
	dev := func(j int) float64 { return float64(total[j]) - goal[j] }
	const eps = 1e-7 // totals are whole, goals exact to far less

	// Successive shortest paths, one user at a time.
	units := 0
	for _, n := range left {
		units += n
	}
	seenK := make([]bool, nk)
	seenH := make([]bool, m)
	viaK := make([]int, m)  // the class a host was reached from
	viaH := make([]int, nk) // the host a class was reached from, -1 for a class with users left
	queue := make([]int, 0, nk+m)
	for ; units > 0; units-- {
		clear(seenK)
		clear(seenH)
		queue = queue[:0]
		for a := range ks {
			if left[a] > 0 {
				seenK[a], viaH[a] = true, -1
				queue = append(queue, a)
			}
		}
		best := -1
		for q := 0; q < len(queue); q++ {
			if x := queue[q]; x < nk { // a class: on to the hosts with room in it
				for j := range m {
					if !seenH[j] && room[x*m+j] > 0 {
						seenH[j], viaK[j] = true, x
						queue = append(queue, nk+j)
						if best < 0 || better(dev(j), bytes[j]-byteGoal[j], j, dev(best), bytes[best]-byteGoal[best], best, eps) {
							best = j
						}
					}
				}
			} else { // a host: on to the classes it was given one of
				j := x - nk
				for a := range nk {
					if !seenK[a] && given[a*m+j] > 0 {
						seenK[a], viaH[a] = true, j
						queue = append(queue, a)
					}
				}
			}
		}
		if best < 0 {
			panic("plan: no host can take the users a class has left") // solve's ranges always hold them
		}
		total[best]++
		for j := best; ; {
			a := viaK[j]
			room[a*m+j]--
			given[a*m+j]++
			bytes[j] += val[a*m+j]
			cls[ks[a]][hosts[j]].target++
			h := viaH[a]
			if h < 0 {
				left[a]--
				break
			}
			room[a*m+h]++
			given[a*m+h]--
			bytes[h] -= val[a*m+h]
			cls[ks[a]][hosts[h]].target--
			j = h
		}
	}
	balanceBytes(cls, ks, hosts, val, bytes, byteGoal)
}

// better orders candidate hosts for the next user: the lowest total
// against its share, then the lowest bytes against its byte share, then
// the first.
func better(d1, b1 float64, j1 int, d2, b2 float64, j2 int, eps float64) bool {
	if d1 < d2-eps {
		return true
	}
	if d1 > d2+eps {
		return false
	}
	if b1 != b2 {
		return b1 < b2
	}
	return j1 < j2
}

// balanceBytes swaps users between pairs of hosts without changing any
// host's total or any class's sum: host i takes one user fewer of class
// a and one more of class b, host j the reverse, each target staying
// within [least, most], where the swap lowers the sum of the squares of
// the hosts' bytes against their byte shares. What a swap does to that
// sum is the part of i plus the part of j, so for each pair of classes
// the best swap is between the best i and the best other j. Each swap
// lowers the sum, so the passes end; they stop when one swaps nothing,
// or after a fixed number, so that the time stays bounded.
func balanceBytes(cls [][]cell, ks, hosts []int, val, bytes, byteGoal []float64) {
	m := len(hosts)
	if m < 2 {
		return
	}
	nk := len(ks)
	// gain is how much the square of host x's bytes against its share
	// falls when they change by d.
	gain := func(x int, d float64) float64 {
		o := bytes[x] - byteGoal[x]
		return o*o - (o+d)*(o+d)
	}
	const passes = 8
	for range passes {
		swapped := false
		for a := range nk {
			for b := range nk {
				if a == b {
					continue
				}
				ca, cb := cls[ks[a]], cls[ks[b]]
				// The two best of each side, in case one host is the best of both.
				var is, js [2]int
				var ig, jg [2]float64
				is, js = [2]int{-1, -1}, [2]int{-1, -1}
				keep := func(x int, g float64, best *[2]int, bg *[2]float64) {
					switch {
					case best[0] < 0 || g > bg[0]:
						best[1], bg[1] = best[0], bg[0]
						best[0], bg[0] = x, g
					case best[1] < 0 || g > bg[1]:
						best[1], bg[1] = x, g
					}
				}
				for x := range m {
					xa, xb := &ca[hosts[x]], &cb[hosts[x]]
					if xa.target > xa.least && xb.target < xb.most {
						keep(x, gain(x, val[b*m+x]-val[a*m+x]), &is, &ig)
					}
					if xa.target < xa.most && xb.target > xb.least {
						keep(x, gain(x, val[a*m+x]-val[b*m+x]), &js, &jg)
					}
				}
				if is[0] < 0 || js[0] < 0 {
					continue
				}
				i, j, g := is[0], js[0], ig[0]+jg[0]
				if i == j {
					i, j, g = -1, -1, 0
					if is[1] >= 0 {
						i, j, g = is[1], js[0], ig[1]+jg[0]
					}
					if js[1] >= 0 && (i < 0 || ig[0]+jg[1] > g) {
						i, j, g = is[0], js[1], ig[0]+jg[1]
					}
					if i < 0 {
						continue
					}
				}
				oi, oj := bytes[i]-byteGoal[i], bytes[j]-byteGoal[j]
				if g <= 1e-9*(oi*oi+oj*oj+1) {
					continue
				}
				ca[hosts[i]].target--
				cb[hosts[i]].target++
				ca[hosts[j]].target++
				cb[hosts[j]].target--
				bytes[i] += val[b*m+i] - val[a*m+i]
				bytes[j] += val[a*m+j] - val[b*m+j]
				swapped = true
			}
		}
		if !swapped {
			return
		}
	}
}
