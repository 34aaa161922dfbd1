package assign

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/maildist/maildist/internal/cluster"
)

// Policy says which of a host's users of a class go when only some must.
type Policy string

// The policies.
const (
	Random Policy = "random" // in sort.tsv order, which is random (the seed's way)
	Idle   Policy = "idle"   // least recently active first: fewer refusals for live sessions
	Small  Policy = "small"  // fewest bytes first: the quickest moves
)

// Policies lists the policies in the order help text shows them.
var Policies = []Policy{Random, Idle, Small}

// ParsePolicy reads a --pick value; "" is Random.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return Random, nil
	case Random, Idle, Small:
		return p, nil
	}
	return "", fmt.Errorf("pick %q: want random, idle or small", s)
}

// Options are what Make needs besides the files.
type Options struct {
	Pick Policy // "" is Random
	Seed uint64 // the same seed gives the same todo

	// Rows, if set, gives for each entry of sorted the index of its row in
	// users, sparing idle and small a search by name. It must match.
	Rows []int32
}

// ErrShort is wrapped when sort.tsv has fewer users of a host and class
// than moves.tsv asks for.
var ErrShort = errors.New("not enough users")

// ErrTwice is wrapped when sort.tsv would hand out the same user twice.
var ErrTwice = errors.New("user listed twice")

// classes is the number of classes cXdY, X and Y from 0 to 4.
const classes = 25

func classIndex(c cluster.Class) int { return c.C*5 + c.D }

func validClass(c cluster.Class) bool { return c.C >= 0 && c.C <= 4 && c.D >= 0 && c.D <= 4 }

type key struct {
	host  string
	class cluster.Class
}

// bucket is one source host and class: how many must go, to where, and
// the users that may go.
type bucket struct {
	key
	need  int
	dests []string // one entry per user to send, in moves order
	cands []int32  // indexes into sorted
}

// Make turns move counts into concrete moves: for each (from, class) it
// takes users of that host and class from sorted by the policy, deals
// them to the destinations at random, and returns every move in a random
// order, so that runners working through the list fill the destinations
// evenly and each in its own order. users gives the activity and size the
// idle and small policies sort by; Random does not look at it.
//
// Make is pure: the same arguments give the same todo.
func Make(moves []cluster.MoveCount, sorted []cluster.Sorted, users []cluster.User, opt Options) ([]cluster.Todo, error) {
	todo, _, err := MakeIndexed(moves, sorted, users, opt)
	return todo, err
}

// MakeIndexed is Make that also says, for each todo row, the index in
// sorted of the user it moves, for callers that keep more about each
// sorted user than its name.
func MakeIndexed(moves []cluster.MoveCount, sorted []cluster.Sorted, users []cluster.User, opt Options) ([]cluster.Todo, []int32, error) {
	pick, err := ParsePolicy(string(opt.Pick))
	if err != nil {
		return nil, nil, err
	}
	// Buckets are found by source host number and class, so that the walk
	// over a million sort rows hashes only the host name, in a small map.
	source := map[string]int{}
	var slots []*bucket // [source*25 + class]
	var order []*bucket
	var bad []error
	total := 0
	for _, m := range moves {
		if m.Count == 0 {
			continue
		}
		switch {
		case m.Count < 0:
			bad = append(bad, fmt.Errorf("move %s %s→%s: negative count %d", m.Class, m.From, m.To, m.Count))
			continue
		case m.From == m.To:
			bad = append(bad, fmt.Errorf("move %s %s→%s: from and to are the same host", m.Class, m.From, m.To))
			continue
		case m.From == "" || m.To == "":
			bad = append(bad, fmt.Errorf("move %s %q→%q: from and to must name hosts", m.Class, m.From, m.To))
			continue
		case !validClass(m.Class):
			bad = append(bad, fmt.Errorf("move %s→%s: class %+v out of range", m.From, m.To, m.Class))
			continue
		}
		si, ok := source[m.From]
		if !ok {
			si = len(source)
			source[m.From] = si
			slots = append(slots, make([]*bucket, classes)...)
		}
		b := slots[si*classes+classIndex(m.Class)]
		if b == nil {
			b = &bucket{key: key{m.From, m.Class}}
			slots[si*classes+classIndex(m.Class)] = b
			order = append(order, b)
		}
		b.need += m.Count
		for range m.Count {
			b.dests = append(b.dests, m.To)
		}
		total += m.Count
	}
	if len(bad) > 0 {
		return nil, nil, errors.Join(bad...)
	}

	// Candidates, in sort.tsv order. Random needs only the first `need`.
	for i := range sorted {
		s := &sorted[i]
		si, ok := source[s.Host]
		if !ok || !validClass(s.Class) {
			continue
		}
		b := slots[si*classes+classIndex(s.Class)]
		if b == nil || (pick == Random && len(b.cands) == b.need) {
			continue
		}
		b.cands = append(b.cands, int32(i))
	}
	for _, b := range order {
		if len(b.cands) < b.need {
			bad = append(bad, fmt.Errorf("%d %s users must leave %s but sort.tsv lists only %d: %w",
				b.need, b.class, b.host, len(b.cands), ErrShort))
		}
	}
	if len(bad) > 0 {
		return nil, nil, errors.Join(bad...)
	}

	if pick != Random {
		if err := rank(pick, order, sorted, users, opt.Rows); err != nil {
			return nil, nil, err
		}
	}

	rng := NewRand(opt.Seed, "deal")
	todo := make([]cluster.Todo, 0, total)
	index := make([]int32, 0, total)
	for _, b := range order {
		rng.Shuffle(len(b.dests), func(i, j int) { b.dests[i], b.dests[j] = b.dests[j], b.dests[i] })
		for i, to := range b.dests {
			c := b.cands[i]
			todo = append(todo, cluster.Todo{User: sorted[c].User, From: b.host, To: to, Class: b.class})
			index = append(index, c)
		}
	}
	if dups := twice(todo); len(dups) > 0 {
		for _, u := range dups {
			bad = append(bad, fmt.Errorf("user %s: %w in sort.tsv", u, ErrTwice))
		}
		return nil, nil, errors.Join(bad...)
	}
	NewRand(opt.Seed, "todo").Shuffle(len(todo), func(i, j int) {
		todo[i], todo[j] = todo[j], todo[i]
		index[i], index[j] = index[j], index[i]
	})
	return todo, index, nil
}

// twice returns the users the todo holds more than once (up to ten). It
// sorts hashes of the names and compares names only where hashes meet,
// which is much cheaper than a map of every name.
func twice(todo []cluster.Todo) []string {
	seed := maphash.MakeSeed()
	hs := make([]uint64, len(todo))
	for i := range todo {
		hs[i] = maphash.String(seed, todo[i].User)
	}
	slices.Sort(hs)
	clash := map[uint64]bool{}
	for i := 1; i < len(hs); i++ {
		if hs[i] == hs[i-1] {
			clash[hs[i]] = true
		}
	}
	if len(clash) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for i := range todo {
		u := todo[i].User
		if !clash[maphash.String(seed, u)] {
			continue
		}
		if seen[u] && len(dups) < 10 && !slices.Contains(dups, u) {
			dups = append(dups, u)
		}
		seen[u] = true
	}
	return dups
}

// rank orders each bucket's candidates by the policy, ties kept in
// sort.tsv order. A candidate's row of users is rows[i] when the caller
// gave rows, else found by name.
func rank(pick Policy, order []*bucket, sorted []cluster.Sorted, users []cluster.User, rows []int32) error {
	type cand struct {
		k1, k2 int64 // the sort keys
		i      int32 // index in sorted
	}
	var cs []cand
	for _, b := range order {
		for _, c := range b.cands {
			cs = append(cs, cand{i: c})
		}
	}
	keys := func(c *cand, u *cluster.User) {
		switch pick {
		case Idle:
			c.k1 = -1 << 62 // never logged in: the most idle of all
			if !u.LastLogin.IsZero() {
				c.k1 = u.LastLogin.Unix()
			}
			c.k2 = u.ConnectS
		case Small:
			c.k1 = u.Bytes
		}
	}
	var missing []string
	if rows != nil {
		for j := range cs {
			c := &cs[j]
			r := rows[c.i]
			if r < 0 || int(r) >= len(users) || users[r].Name != sorted[c.i].User {
				return fmt.Errorf("assign: rows[%d] does not point at user %s", c.i, sorted[c.i].User)
			}
			keys(c, &users[r])
		}
	} else {
		slot := make(map[string]int32, len(cs))
		for j := range cs {
			slot[sorted[cs[j].i].User] = int32(j)
		}
		found := make([]bool, len(cs))
		for i := range users {
			if j, ok := slot[users[i].Name]; ok {
				keys(&cs[j], &users[i])
				found[j] = true
			}
		}
		for j, ok := range found {
			if !ok {
				missing = append(missing, sorted[cs[j].i].User)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		more := ""
		if len(missing) > 10 {
			more = fmt.Sprintf(" and %d more", len(missing)-10)
			missing = missing[:10]
		}
		return fmt.Errorf("pick %s needs the raw.tsv row of every candidate, but %s%s have none", pick, strings.Join(missing, ", "), more)
	}
	less := func(x, y *cand) bool {
		if x.k1 != y.k1 {
			return x.k1 < y.k1
		}
		if x.k2 != y.k2 {
			return x.k2 < y.k2
		}
		return x.i < y.i
	}
	for _, b := range order {
		part := cs[:len(b.cands)]
		cs = cs[len(b.cands):]
		// Only the first `need` go: bring them to the front, then order them.
		firstK(part, b.need, less)
		part = part[:b.need]
		slices.SortFunc(part, func(x, y cand) int {
			if less(&x, &y) {
				return -1
			}
			return 1 // keys are unique: i breaks every tie
		})
		b.cands = b.cands[:b.need]
		for j := range part {
			b.cands[j] = part[j].i
		}
	}
	return nil
}

// firstK reorders v so that its k least elements (by less, a strict
// total order) come first, in no particular order: quickselect.
func firstK[T any](v []T, k int, less func(x, y *T) bool) {
	lo, hi := 0, len(v)
	for budget := 64; hi-lo > 1 && k > lo && k < hi; budget-- {
		if budget == 0 { // the pivots keep going wrong: sort what is left
			slices.SortFunc(v[lo:hi], func(x, y T) int {
				if less(&x, &y) {
					return -1
				}
				if less(&y, &x) {
					return 1
				}
				return 0
			})
			return
		}
		// Median of three as the pivot, moved to the end.
		m := lo + (hi-lo)/2
		if less(&v[m], &v[lo]) {
			v[m], v[lo] = v[lo], v[m]
		}
		if less(&v[hi-1], &v[lo]) {
			v[hi-1], v[lo] = v[lo], v[hi-1]
		}
		if less(&v[m], &v[hi-1]) {
			v[m], v[hi-1] = v[hi-1], v[m]
		}
		p := hi - 1
		store := lo
		for i := lo; i < p; i++ {
			if less(&v[i], &v[p]) {
				v[i], v[store] = v[store], v[i]
				store++
			}
		}
		v[store], v[p] = v[p], v[store]
		switch {
		case store == k || store+1 == k:
			return
		case store > k:
			hi = store
		default:
			lo = store + 1
		}
	}
}
