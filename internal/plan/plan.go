package plan

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
)

// Options are the choices of one plan.
type Options struct {
	AcrossPools bool          // one group of all hosts instead of one a pool
	Tolerance   int           // K: widen every band by K users on each side
	Thresholds  Thresholds    // axes not Set come from the data
	Pick        assign.Policy // which users go; "" is random
	Seed        uint64        // 0: derived from the rows, so the same survey gives the same plan
}

// Plan is what Make decided, and why, with the numbers the report shows.
type Plan struct {
	Options    Options    // as used: Seed and Pick filled in
	Thresholds Thresholds // as used: quartiles filled in
	Groups     []Group
	Hosts      []HostPlan // in the order of the host list
	Targets    []Target   // every host of a group, for every class the group has users of
	Moves      []cluster.MoveCount
	Sort       []cluster.Sorted // every movable user, in random order
	Todo       []cluster.Todo   // what assign makes of Moves and Sort with the same pick and seed
	Unmoved    []Unmoved        // users the plan leaves where they are, and why
	Reasons    []Reason
	Stats      Stats

	exactOK bool // HostPlan.exact is set
}

// Group is a set of hosts balanced together: a pool, or every host.
type Group struct {
	Name       string
	Hosts      []string
	Users      int // movable users
	Moves      int
	LowerBound int
}

// Load is what a host carries.
type Load struct {
	Users    int // every row on the host, movable or not
	Bytes    int64
	ConnectS int64
}

// HostPlan is one host before and after the plan.
type HostPlan struct {
	Name      string
	Pool      string
	Group     string
	Weight    float64 // as configured
	AcceptNew bool
	Drain     bool
	Share     float64 // the host's part of its group's weight, 0–1
	Held      float64 // Σ over the classes of Target.Held: the total of movable users the plan brings it near (doc.go, "The totals"); for a host that drains or takes no new users, the number it is held to
	// ShareUsers is the users the host's weight alone gives it: Share of
	// its group's movable users, plus its users that never move. Goal is
	// the users the plan can bring it to: Held plus those that never move.
	// The two differ when a host of the group takes no new users (it keeps
	// what its classes let it, and the hosts that accept share the rest).
	// Σ ShareUsers = Σ Goal = the group's users.
	ShareUsers, Goal float64
	Before           Load
	After            Load
	Unmoved          int // rows on the host the plan never moves (status not ok)
	Out, In          int
	Have             [NumClasses]int // movable users by class, now
	Want             [NumClasses]int // and after

	haveBytes [NumClasses]int64 // the bytes of the movable users by class, now
	fixed     Load              // what its users that never move carry
	// exact is the host's total of movable users after the plan the same
	// rows would get with no tolerance; set only with a tolerance.
	exact     int
	exactHeld float64
}

// Target is one host's target in one class.
type Target struct {
	Host   string
	Group  string
	Class  cluster.Class
	Have   int
	Target int
	Lo, Hi int     // the band the rule allows
	Share  float64 // exact weighted share N·w/W
	Held   float64 // the share the rule holds the host to: s' for a host that accepts (differs from Share when a host of the group does not), the number it is held to for one that drains or takes no new users
	NoNew  bool    // accept_new = false (and weight > 0): held to min(have, ⌈Share⌉ + K)
}

// Unmoved is a user the plan leaves in place.
type Unmoved struct {
	User   string `json:"user"`
	Host   string `json:"host"`   // empty if no host holds the home
	Status string `json:"status"` // the raw.tsv status, or "no-host"
}

// StatusNoHost marks an Unmoved user whose home no host's root holds.
const StatusNoHost = "no-host"

// Reason is one sentence on why the plan looks as it does.
type Reason struct {
	Host string `json:"host,omitempty"` // empty for the whole plan
	Text string `json:"text"`
}

// Stats sums the plan up.
type Stats struct {
	Users      int // rows
	Movable    int
	Unmoved    int
	Moves      int
	LowerBound int // Σ over groups and classes of max(A, B); Moves equals it
	Hosts      int
	// The largest distance, in users, of any host in any class from its
	// goal, the share the rule holds it to (Target.Held), now and after.
	// (A host that takes no new users is held to a number it reaches, so
	// it counts now, for what it must give away, and is 0 after.)
	WorstBefore, WorstAfter float64
	// The same for a host's total of movable users against its goal,
	// HostPlan.Held. No plan with the fewest moves (and, with a
	// tolerance, as few users on hosts inside their band) has a smaller
	// WorstTotalAfter (doc.go, "The totals"). How far the goals lie from
	// the plain shares is in HostPlan.ShareUsers and Goal, and said in
	// Reasons.
	WorstTotalBefore, WorstTotalAfter float64
	// Hosts inside their band in a class but whose count the tolerance
	// kept from moving to the exact target.
	LeftAlone int
}

// Errors Make wraps; the message names the hosts, pools or users.
var (
	ErrUnknownHost = errors.New("hosts not in the host list")
	ErrNoWeight    = errors.New("every host drains or has weight 0")
	ErrNoReceiver  = errors.New("no host may receive")
	ErrDuplicate   = errors.New("user listed twice")
	ErrBadHosts    = errors.New("bad host list")
)

// Make plans a balanced spread of users over hosts with the fewest moves.
// users are raw.tsv rows; hosts the host list (config or --hosts file).
// It is pure: no files, no clock; the same arguments give the same Plan.
func Make(users []cluster.User, hosts []*cluster.Host, opt Options) (*Plan, error) {
	if opt.Tolerance < 0 {
		return nil, fmt.Errorf("tolerance %d: must not be negative", opt.Tolerance)
	}
	pick, err := assign.ParsePolicy(string(opt.Pick))
	if err != nil {
		return nil, err
	}
	opt.Pick = pick
	if opt.Seed == 0 {
		opt.Seed = deriveSeed(users)
	}
	p := &Plan{Options: opt}

	hostIdx, groupOf, err := p.setHosts(hosts, opt.AcrossPools)
	if err != nil {
		return nil, err
	}

	if err := duplicates(users); err != nil {
		return nil, err
	}
	// Sort the rows out: movable users, users left in place, unknown hosts.
	where := make([]int32, len(users)) // host index, or -1: not movable
	unknown := map[string]int{}
	movable := 0
	for i := range users {
		u := &users[i]
		where[i] = -1
		if u.Host == "" {
			p.Unmoved = append(p.Unmoved, Unmoved{User: u.Name, Status: StatusNoHost})
			continue
		}
		h, ok := hostIdx[u.Host]
		if !ok {
			unknown[u.Host]++
			continue
		}
		hp := &p.Hosts[h]
		hp.Before.Users++
		hp.Before.Bytes += u.Bytes
		hp.Before.ConnectS += u.ConnectS
		if u.Status != cluster.StatusOK {
			hp.Unmoved++
			hp.fixed.Users++
			hp.fixed.Bytes += u.Bytes
			hp.fixed.ConnectS += u.ConnectS
			p.Unmoved = append(p.Unmoved, Unmoved{User: u.Name, Host: u.Host, Status: u.Status})
			continue
		}
		where[i] = int32(h)
		movable++
	}
	if len(unknown) > 0 {
		return nil, unknownHosts(unknown)
	}

	// Classes.
	p.Thresholds = opt.Thresholds
	if !p.Thresholds.ConnectSet || !p.Thresholds.BytesSet {
		vals := make([]int64, 0, movable)
		if !p.Thresholds.ConnectSet {
			for i := range users {
				if where[i] >= 0 {
					vals = append(vals, users[i].ConnectS)
				}
			}
			p.Thresholds.Connect = quartiles(vals)
		}
		if !p.Thresholds.BytesSet {
			vals = vals[:0]
			for i := range users {
				if where[i] >= 0 {
					vals = append(vals, users[i].Bytes)
				}
			}
			p.Thresholds.Bytes = quartiles(vals)
		}
	}
	var row []int32
	p.Sort, row = p.shuffled(users, where, movable, opt.Seed)

	if err := p.balance(groupOf); err != nil {
		return nil, err
	}
	if opt.Tolerance > 0 {
		p.exactTotals(groupOf)
	}

	var picked []int32
	p.Todo, picked, err = assign.MakeIndexed(p.Moves, p.Sort, users, assign.Options{Pick: opt.Pick, Seed: opt.Seed, Rows: row})
	if err != nil {
		return nil, fmt.Errorf("assign the planned moves: %w", err)
	}
	for i := range p.Hosts {
		p.Hosts[i].After = p.Hosts[i].Before
	}
	for i, t := range p.Todo {
		u := &users[row[picked[i]]]
		from, to := &p.Hosts[hostIdx[t.From]], &p.Hosts[hostIdx[t.To]]
		from.After.Users--
		from.After.Bytes -= u.Bytes
		from.After.ConnectS -= u.ConnectS
		to.After.Users++
		to.After.Bytes += u.Bytes
		to.After.ConnectS += u.ConnectS
	}
	p.summarise(len(users), movable)
	return p, nil
}

// duplicates reports user names on more than one row. It sorts hashes of
// the names rather than filling a map of a million strings, and compares
// the names only where two hashes meet.
func duplicates(users []cluster.User) error {
	seed := maphash.MakeSeed()
	hs := make([]uint64, len(users))
	for i := range users {
		hs[i] = maphash.String(seed, users[i].Name)
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
	first := map[string]int{}
	var dups []string
	n := 0
	for i := range users {
		if !clash[maphash.String(seed, users[i].Name)] {
			continue
		}
		j, seen := first[users[i].Name]
		if !seen {
			first[users[i].Name] = i
			continue
		}
		n++
		if len(dups) < 10 {
			dups = append(dups, fmt.Sprintf("%s (on %s and %s)", users[i].Name, orNone(users[j].Host), orNone(users[i].Host)))
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(dups) {
		more = fmt.Sprintf(" and %d more", n-len(dups))
	}
	return fmt.Errorf("%w: %s%s", ErrDuplicate, strings.Join(dups, ", "), more)
}

func orNone(h string) string {
	if h == "" {
		return "no host"
	}
	return h
}

// setHosts fills p.Hosts and p.Groups from the host list.
func (p *Plan) setHosts(hosts []*cluster.Host, across bool) (map[string]int, []int, error) {
	idx := make(map[string]int, len(hosts))
	groupOf := make([]int, len(hosts))
	gidx := map[string]int{}
	var bad []string
	for i, h := range hosts {
		if _, dup := idx[h.Name]; dup {
			bad = append(bad, fmt.Sprintf("host %s listed twice", h.Name))
			continue
		}
		if h.Name == "" {
			bad = append(bad, fmt.Sprintf("host #%d has no name", i+1))
		}
		if h.Weight < 0 || h.Weight != h.Weight {
			bad = append(bad, fmt.Sprintf("host %s: weight %v", h.Name, h.Weight))
		}
		idx[h.Name] = i
		g := h.Pool
		if across {
			g = "all"
		}
		gi, ok := gidx[g]
		if !ok {
			gi = len(p.Groups)
			gidx[g] = gi
			p.Groups = append(p.Groups, Group{Name: g})
		}
		groupOf[i] = gi
		p.Groups[gi].Hosts = append(p.Groups[gi].Hosts, h.Name)
		p.Hosts = append(p.Hosts, HostPlan{Name: h.Name, Pool: h.Pool, Group: g,
			Weight: h.Weight, AcceptNew: h.AcceptNew, Drain: h.Drain})
	}
	if len(hosts) == 0 {
		bad = append(bad, "no hosts")
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("%w: %s", ErrBadHosts, strings.Join(bad, "; "))
	}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		var w, wg float64
		w = effWeight(h)
		for j := range p.Hosts {
			if groupOf[j] == groupOf[i] {
				wg += effWeight(&p.Hosts[j])
			}
		}
		if wg > 0 {
			h.Share = w / wg
		}
	}
	return idx, groupOf, nil
}

func effWeight(h *HostPlan) float64 {
	if h.Drain {
		return 0
	}
	return h.Weight
}

func unknownHosts(unknown map[string]int) error {
	names := make([]string, 0, len(unknown))
	for h := range unknown {
		names = append(names, h)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, h := range names {
		parts[i] = fmt.Sprintf("%s (%d users)", h, unknown[h])
	}
	return fmt.Errorf("%w: %s", ErrUnknownHost, strings.Join(parts, ", "))
}

// balance sets the targets and moves of every group and class.
func (p *Plan) balance(groupOf []int) error {
	var bad []error
	for g := range p.Groups {
		grp := &p.Groups[g]
		var members []int
		wsum := 0.0
		for h := range p.Hosts {
			if groupOf[h] == g {
				members = append(members, h)
				wsum += effWeight(&p.Hosts[h])
			}
		}
		for _, h := range members {
			for _, n := range p.Hosts[h].Have {
				grp.Users += n
			}
		}
		if grp.Users == 0 {
			continue
		}
		if wsum == 0 {
			bad = append(bad, fmt.Errorf("%s %s: %w: its %d users have nowhere to go", groupWord(grp), grp.Name, ErrNoWeight, grp.Users))
			continue
		}
		cls := make([][]cell, NumClasses) // nil: no user of the class in the group
		extra := make([]int, NumClasses)
		stuck := 0                // users with nowhere to go, over the classes
		from := map[string]bool{} // the hosts they are on
		for k := range NumClasses {
			n := 0
			for _, h := range members {
				n += p.Hosts[h].Have[k]
			}
			if n == 0 {
				continue
			}
			cells := make([]cell, len(members))
			for i, h := range members {
				hp := &p.Hosts[h]
				cells[i] = cell{host: h, have: hp.Have[k], weight: ratOf(effWeight(hp)), accept: hp.AcceptNew && !hp.Drain}
			}
			x, err := solve(n, cells, p.Options.Tolerance)
			if err != nil {
				for _, c := range cells {
					if x := c.have - c.hi; x > 0 && (!c.accept || c.weight.Sign() == 0) {
						stuck += x
						from[p.Hosts[c.host].Name] = true
					}
				}
				continue
			}
			cls[k], extra[k] = cells, x
		}
		if stuck == 0 {
			hb := make([][NumClasses]int64, len(members))
			for i, h := range members {
				hb[i] = p.Hosts[h].haveBytes
			}
			spread(cls, extra, hb)
			held := make([]big.Rat, len(members))
			for k, cells := range cls {
				if cells != nil {
					p.record(grp, k, cells)
					for i := range cells {
						held[i].Add(&held[i], cells[i].held)
					}
				}
			}
			for i, h := range members {
				p.Hosts[h].Held, _ = held[i].Float64()
			}
		}
		if stuck > 0 {
			bad = append(bad, fmt.Errorf("%s %s: %w: %s must leave %s, but no host of the %s has accept_new = true and weight > 0",
				groupWord(grp), grp.Name, ErrNoReceiver, plural(stuck, "user"), strings.Join(slices.Sorted(maps.Keys(from)), ", "), groupWord(grp)))
		}
	}
	return errors.Join(bad...)
}

// exactTotals plans the same rows again with no tolerance and keeps each
// host's total of movable users in HostPlan.exact, so that the report can
// say where the tolerance, added up over the classes, leaves a host
// further from its goal than an exact plan would.
func (p *Plan) exactTotals(groupOf []int) {
	q := &Plan{Options: p.Options}
	q.Options.Tolerance = 0
	q.Hosts = slices.Clone(p.Hosts)
	for i := range q.Hosts {
		h := &q.Hosts[i]
		h.Want, h.Out, h.In, h.Held = [NumClasses]int{}, 0, 0, 0
	}
	q.Groups = slices.Clone(p.Groups)
	for i := range q.Groups {
		g := &q.Groups[i]
		g.Users, g.Moves, g.LowerBound = 0, 0, 0
	}
	if q.balance(groupOf) != nil {
		// Without the tolerance a host that takes no new users may keep
		// less, and a group with no host that accepts then has users
		// with nowhere to go: there is no exact plan to compare with.
		return
	}
	p.exactOK = true
	for i := range p.Hosts {
		t := 0
		for _, n := range q.Hosts[i].Want {
			t += n
		}
		p.Hosts[i].exact, p.Hosts[i].exactHeld = t, q.Hosts[i].Held
	}
}

func groupWord(g *Group) string {
	if g.Name == "all" && len(g.Hosts) > 0 {
		return "group"
	}
	return "pool"
}

func ratOf(f float64) *big.Rat {
	r := new(big.Rat)
	r.SetFloat64(f)
	return r
}

// record stores one solved class: targets, the lower bound, the moves.
func (p *Plan) record(grp *Group, k int, cells []cell) {
	class := ClassAt(k)
	var a, b int
	var from, out, to, in []int
	for _, c := range cells {
		hp := &p.Hosts[c.host]
		hp.Want[k] = c.target
		share, _ := c.share.Float64()
		held, _ := c.held.Float64()
		p.Targets = append(p.Targets, Target{Host: hp.Name, Group: grp.Name, Class: class,
			Have: c.have, Target: c.target, Lo: c.lo, Hi: c.hi, Share: share, Held: held,
			NoNew: !c.accept && c.weight.Sign() > 0})
		a += max(0, c.have-c.hi)
		b += max(0, c.lo-c.have)
		if d := c.have - c.target; d > 0 {
			from, out = append(from, c.host), append(out, d)
			hp.Out += d
		} else if d < 0 {
			to, in = append(to, c.host), append(in, -d)
			hp.In -= d
		}
	}
	grp.LowerBound += max(a, b)
	for _, f := range pair(from, out, to, in) {
		grp.Moves += f.count
		p.Moves = append(p.Moves, cluster.MoveCount{Class: class, From: p.Hosts[f.from].Name, To: p.Hosts[f.to].Name, Count: f.count})
	}
}

// deriveSeed hashes the rows (FNV-1a over names and hosts), so that
// without --seed the same survey gives the same plan and another survey
// another shuffle.
func deriveSeed(users []cluster.User) uint64 {
	h := uint64(14695981039346656037)
	add := func(s string, end byte) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
		h = (h ^ uint64(end)) * 1099511628211
	}
	for i := range users {
		add(users[i].Name, 0)
		add(users[i].Host, '\n')
	}
	if h == 0 {
		return 1
	}
	return h
}
