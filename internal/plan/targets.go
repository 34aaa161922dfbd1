package plan

import (
	"errors"
	"math/big"
)

// cell is one host in one class of one group, as the solver sees it.
type cell struct {
	host   int      // index into the host list
	have   int      // movable users of the class on the host now
	weight *big.Rat // effective weight: 0 for a draining host
	accept bool     // may receive: accept_new and not drain

	// Filled by solve.
	share  *big.Rat // exact weighted share N·w/W
	held   *big.Rat // the share the rule holds the host to (see doc.go); for a host held to a number, that number
	lo, hi int      // the band the target must lie in
	// least and most bound the targets of the plans with the fewest
	// moves (and, with a tolerance, that leave hosts inside their band
	// alone as far as the class allows); spread picks the target among
	// them, for all the classes of a group at once.
	least, most int
	target      int
}

var errNoReceiver = errors.New("no host may receive")

// solve works out one class of one group of n users: the band of every
// host, and the range [least, most] its target may take in a plan with
// the fewest moves. It sets every target to least and returns how many
// users are still to place, extra = r − Σ least, which spread hands out
// over the whole group. The rule (doc.go has it in words):
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
// B = Σ max(0, lo − have) over all hosts (lo = hi = the held number for
// the first two kinds): every host must shed down to its hi and fill up
// to its lo. Moves = Σ max(0, have − target) = Σ max(0, target − have),
// and each term is at least its part of A (of B), so a plan meets the
// bound exactly when every term does:
//
//   - A ≥ B: a host above hi goes to hi; any other host keeps what it has
//     or gains, up to hi: [max(have, lo), hi];
//   - A < B: a host below lo goes to lo; any other host keeps what it has
//     or loses, down to lo: [lo, min(have, hi)].
//
// Either way the targets start from have clamped into the band and the
// |A − B| users still to place (or take away) fall on the hosts whose
// range is open in that direction. With a tolerance, hosts outside their
// band take them first and the others only what those cannot: a host
// inside its band is left alone when the class allows.
//
// W, the sum of weights, must be positive. solve returns errNoReceiver
// when r > 0 and no accepting host has weight.
func solve(n int, cells []cell, tol int) (extra int, err error) {
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
			c.held = new(big.Rat).SetInt64(int64(c.hi))
			r -= c.hi
		default:
			continue
		}
		c.least, c.most, c.target = c.hi, c.hi, c.hi
	}
	if r > 0 && wAcc.Sign() == 0 {
		return 0, errNoReceiver
	}
	rr := new(big.Rat).SetInt64(int64(r))
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
	}
	// up > 0: A > B, targets rise from the clamp; up < 0: they fall.
	up := r - sum
	free := func(c *cell) bool { return c.accept && c.weight.Sign() > 0 }
	outside := func(c *cell) bool { // already sends (or receives) in the direction the class needs
		if up > 0 {
			return c.have < c.lo
		}
		return c.have > c.hi
	}
	room := 0 // what hosts outside their band can take before one inside is touched
	for i := range cells {
		c := &cells[i]
		if !free(c) {
			continue
		}
		c.least, c.most = c.target, c.target
		switch {
		case up > 0 && c.have <= c.hi:
			c.most = c.hi
		case up < 0 && c.have >= c.lo:
			c.least = c.lo
		}
		if outside(c) {
			room += c.most - c.least
		}
	}
	if tol > 0 && up != 0 {
		need := max(up, -up)
		for i := range cells {
			c := &cells[i]
			if !free(c) {
				continue
			}
			switch {
			case !outside(c) && need <= room: // left alone
				c.least, c.most = c.target, c.target
			case outside(c) && need > room: // all of its room is needed
				if up > 0 {
					c.least = c.most
				} else {
					c.most = c.least
				}
			}
		}
	}
	extra = r
	for i := range cells {
		c := &cells[i]
		if free(c) {
			c.target = c.least
			extra -= c.least
		}
	}
	return extra, nil
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
