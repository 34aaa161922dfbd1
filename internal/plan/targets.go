package plan

import (
	"cmp"
	"errors"
	"math/big"
	"slices"
)

// cell is one host in one class of one group, as the solver sees it.
type cell struct {
	host   int      // index into the host list
	have   int      // movable users of the class on the host now
	weight *big.Rat // effective weight: 0 for a draining host
	accept bool     // may receive: accept_new and not drain

	// Filled by solve.
	share  *big.Rat // exact weighted share N·w/W
	held   *big.Rat // the share the rule holds the host to (see doc.go)
	lo, hi int      // the band the target must lie in
	target int
}

var errNoReceiver = errors.New("no host may receive")

// solve sets the targets of one class of one group of n users. The rule
// (doc.go has it in words):
//
//   - a host of weight 0 (draining, or weight = 0) is held to 0;
//   - a host that does not accept new users is held to
//     min(have, ⌈s⌉ + tol), s = n·w/W: it gives away only what lies above
//     its band and never receives;
//   - the accepting hosts share the rest, r = n − Σ those, by weight:
//     s' = r·w/W', each target within [⌊s'⌋ − tol, ⌈s'⌉ + tol], summing
//     to r, with the fewest moves.
//
// The fewest moves are max(A, B), A = Σ max(0, have − hi) and
// B = Σ max(0, lo − have) over the accepting hosts: every host must shed
// down to its hi and fill up to its lo. solve meets that bound: it starts
// from have clamped into each band, which moves exactly A out and B in,
// then closes the gap to r one unit at a time on hosts where the unit
// costs nothing extra (raising a host at or above what it has) or exactly
// the one move the bound already counts (lowering a host at or below what
// it has).
//
// W, the sum of weights, must be positive. solve returns errNoReceiver
// when r > 0 and no accepting host has weight.
func solve(n int, cells []cell, tol int) error {
	w, wAcc := new(big.Rat), new(big.Rat)
	for i := range cells {
		c := &cells[i]
		w.Add(w, c.weight)
		if c.accept && c.weight.Sign() > 0 {
			wAcc.Add(wAcc, c.weight)
		}
	}
	nr := new(big.Rat).SetInt64(int64(n))
	r := n
	for i := range cells {
		c := &cells[i]
		c.share = new(big.Rat).Mul(nr, c.weight)
		c.share.Quo(c.share, w)
		switch {
		case c.weight.Sign() == 0:
			c.held, c.lo, c.hi = new(big.Rat), 0, 0
		case !c.accept:
			_, ceil := floorCeil(c.share)
			c.hi = min(c.have, ceil+tol)
			c.lo = c.hi
			c.held = c.share
			r -= c.hi
		default:
			continue
		}
		c.target = c.hi
	}
	if r > 0 && wAcc.Sign() == 0 {
		return errNoReceiver
	}
	rr := new(big.Rat).SetInt64(int64(r))
	var acc []*cell
	sum := 0
	for i := range cells {
		c := &cells[i]
		if !c.accept || c.weight.Sign() == 0 {
			continue
		}
		c.held = new(big.Rat).Mul(rr, c.weight)
		c.held.Quo(c.held, wAcc)
		floor, ceil := floorCeil(c.held)
		c.lo, c.hi = max(0, floor-tol), ceil+tol
		c.target = min(max(c.have, c.lo), c.hi)
		sum += c.target
		acc = append(acc, c)
	}
	adjust(acc, sum-r, tol)
	return nil
}

// adjust moves the targets by -diff in total without adding a move beyond
// the lower bound. With a tolerance, hosts that already send (or receive)
// take the units first, so that hosts inside their band are left alone;
// then the host furthest from its share, then the first host.
func adjust(acc []*cell, diff, tol int) {
	if diff == 0 {
		return
	}
	dir := -1 // lower targets
	if diff < 0 {
		dir, diff = 1, -diff
	}
	type cand struct {
		c       *cell
		touched bool
		off     float64 // how far the target is on the wrong side of the share
	}
	var cs []cand
	for _, c := range acc {
		s, _ := c.held.Float64()
		var ok, touched bool
		var off float64
		if dir < 0 {
			ok, touched, off = c.target > c.lo && c.target <= c.have, c.have > c.target, float64(c.target)-s
		} else {
			ok, touched, off = c.target < c.hi && c.target >= c.have, c.have < c.target, s-float64(c.target)
		}
		if ok {
			cs = append(cs, cand{c, touched && tol > 0, off})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.touched != b.touched {
			if a.touched {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.off, a.off)
	})
	for diff > 0 {
		progress := false
		for _, x := range cs {
			if diff == 0 {
				break
			}
			if (dir < 0 && x.c.target > x.c.lo) || (dir > 0 && x.c.target < x.c.hi) {
				x.c.target += dir
				diff--
				progress = true
			}
		}
		if !progress {
			panic("plan: targets cannot sum to the class size") // the bands always contain a solution
		}
	}
}

// floorCeil returns ⌊x⌋ and ⌈x⌉ of a non-negative rational.
func floorCeil(x *big.Rat) (int, int) {
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	f := int(q.Int64())
	if m.Sign() == 0 {
		return f, f
	}
	return f, f + 1
}
