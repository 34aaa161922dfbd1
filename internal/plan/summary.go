package plan

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// summarise fills Stats, the hosts' shares and goals in users, and
// Reasons once the moves are known.
func (p *Plan) summarise(rows, movable int) {
	st := &p.Stats
	st.Users, st.Movable, st.Unmoved, st.Hosts = rows, movable, len(p.Unmoved), len(p.Hosts)
	groupUsers := map[string]int{}
	for _, g := range p.Groups {
		st.Moves += g.Moves
		st.LowerBound += g.LowerBound
		groupUsers[g.Name] = g.Users
	}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		h.ShareUsers = h.Share*float64(groupUsers[h.Group]) + float64(h.Unmoved)
		h.Goal = h.Held + float64(h.Unmoved)
	}
	for _, t := range p.Targets {
		st.WorstBefore = math.Max(st.WorstBefore, math.Abs(float64(t.Have)-t.Held))
		st.WorstAfter = math.Max(st.WorstAfter, math.Abs(float64(t.Target)-t.Held))
		// Left alone: the tolerance let the host keep a count off its
		// exact target (for a host that takes no new users, above the
		// ceiling of its share: below it, it keeps what it has anyway).
		switch {
		case p.Options.Tolerance == 0 || t.Target != t.Have || t.Share == 0:
		case t.NoNew && float64(t.Have) > math.Ceil(t.Share),
			!t.NoNew && (float64(t.Have) < math.Floor(t.Held) || float64(t.Have) > math.Ceil(t.Held)):
			st.LeftAlone++
		}
	}

	worstIn := map[string]float64{} // by group: the furthest total after
	worstAt := map[string]string{}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		before, after := movableTotals(h)
		st.WorstTotalBefore = math.Max(st.WorstTotalBefore, math.Abs(float64(before)-h.Held))
		d := float64(after) - h.Held
		st.WorstTotalAfter = math.Max(st.WorstTotalAfter, math.Abs(d))
		if _, seen := worstAt[h.Group]; !seen || math.Abs(d) > math.Abs(worstIn[h.Group]) {
			worstIn[h.Group], worstAt[h.Group] = d, h.Name
		}
	}

	say := func(host, format string, args ...any) {
		p.Reasons = append(p.Reasons, Reason{Host: host, Text: fmt.Sprintf(format, args...)})
	}
	for _, g := range p.Groups {
		switch {
		case g.Users == 0:
			say("", "%s %s: no movable users", groupWord(&g), g.Name)
		case g.Moves == 0:
			say("", "%s %s: already balanced, nothing moves", groupWord(&g), g.Name)
		}
		if note := p.goalNote(&g); note != "" {
			say("", "%s", note)
		}
		if d := worstIn[g.Name]; math.Abs(d) >= 1 {
			alone := ""
			if p.Options.Tolerance > 0 {
				alone = " (and as few users on hosts inside their band)"
			}
			say("", "%s %s: host totals end within %.1f users of their goals (%s %+.1f); no plan with the fewest moves%s comes nearer",
				groupWord(&g), g.Name, math.Abs(d), worstAt[g.Name], d, alone)
		}
	}
	if note := p.driftNote(); note != "" {
		say("", "%s", note)
	}
	plus := ""
	if p.Options.Tolerance > 0 {
		plus = fmt.Sprintf(", plus the tolerance (%d)", p.Options.Tolerance)
	}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		movable := h.Before.Users - h.Unmoved
		d := h.Goal - h.ShareUsers
		switch {
		case (h.Drain || h.Weight == 0) && movable == 0:
			say(h.Name, "%s: holds no movable user", map[bool]string{true: "drains", false: "weight 0"}[h.Drain])
		case h.Drain:
			say(h.Name, "drains: all %s leave", plural(movable, "movable user"))
		case h.Weight == 0:
			say(h.Name, "weight 0: all %s leave", plural(movable, "movable user"))
		case !h.AcceptNew && d >= 0.5:
			say(h.Name, "accept_new = false: receives nobody and keeps up to its share of each class, rounded up%s: %.0f users against a share of %.1f",
				plus, h.Goal, h.ShareUsers)
		case !h.AcceptNew && d <= -0.5:
			say(h.Name, "accept_new = false: receives nobody, so it holds %.0f users against a share of %.1f; the hosts of %s that accept hold the rest",
				h.Goal, h.ShareUsers, h.Group)
		case !h.AcceptNew:
			say(h.Name, "accept_new = false: receives nobody")
		}
		if h.Unmoved > 0 && (h.Drain || h.Weight == 0) {
			say(h.Name, "keeps %s whose status is not ok, although it empties (see the list)", plural(h.Unmoved, "user"))
		}
	}
	if len(p.Unmoved) > 0 {
		by := map[string]int{}
		for _, u := range p.Unmoved {
			by[u.Status]++
		}
		var parts []string
		for _, s := range slices.Sorted(maps.Keys(by)) {
			parts = append(parts, fmt.Sprintf("%s %d", s, by[s]))
		}
		say("", "%s never moved by this plan: %s", plural(len(p.Unmoved), "user"), strings.Join(parts, ", "))
	}
	if p.Options.Tolerance > 0 {
		say("", "tolerance %d: %d host-class counts inside their band were left alone", p.Options.Tolerance, st.LeftAlone)
	}
}

// movableTotals is a host's count of movable users now and after.
func movableTotals(h *HostPlan) (before, after int) {
	for k := range NumClasses {
		before += h.Have[k]
		after += h.Want[k]
	}
	return before, after
}

// goalNote says in one line why a group's goals are not its shares: some
// host takes no new users, so it holds what its classes let it keep, and
// the hosts that accept share the rest. It is empty when they are the
// same.
func (p *Plan) goalNote(g *Group) string {
	if g.Users == 0 {
		return ""
	}
	var keep, takers []string
	var held, share float64
	var taker *HostPlan
	differ := false
	for _, h := range p.groupHosts(g.Name) {
		differ = differ || math.Abs(h.Goal-h.ShareUsers) >= 0.05
		switch {
		case h.Drain || h.Weight == 0:
		case !h.AcceptNew:
			keep = append(keep, h.Name)
			held += h.Goal
			share += h.ShareUsers
		default:
			takers = append(takers, h.Name)
			taker = h
		}
	}
	if len(keep) == 0 || !differ {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "goals ≠ shares in %s %s: ", groupWord(g), g.Name)
	if len(keep) == 1 {
		fmt.Fprintf(&b, "%s takes no new users and holds %.0f (share %.1f)", keep[0], held, share)
	} else {
		fmt.Fprintf(&b, "%s take no new users and hold %.0f (shares %.1f)", andList(keep, 6), held, share)
	}
	switch {
	case len(takers) == 1:
		fmt.Fprintf(&b, "; %s takes the rest (%.0f, share %.1f)", takers[0], taker.Goal, taker.ShareUsers)
	case len(takers) <= 4:
		fmt.Fprintf(&b, "; %s share the rest", andList(takers, 4))
	default:
		fmt.Fprintf(&b, "; the %d hosts that accept share the rest", len(takers))
	}
	return b.String()
}

// drift is a host whose total the tolerance, added up over the classes,
// leaves further from its goal than an exact plan would.
type drift struct {
	host         string
	after, exact int // users after this plan and after the exact one
	goal         float64
}

// drifts lists the hosts whose total ends more than K + 1 users and more
// than 1% from its goal, and at least a user further than with no
// tolerance: each class may leave a host up to K users off, and those add
// up over the classes (doc.go, "The rule"). The 1% keeps quiet about big
// hosts, for which K·C users are little.
func (p *Plan) drifts() []drift {
	k := p.Options.Tolerance
	if k == 0 || !p.exactOK {
		return nil
	}
	var out []drift
	for i := range p.Hosts {
		h := &p.Hosts[i]
		if h.Drain || h.Weight == 0 || !h.AcceptNew {
			continue
		}
		_, after := movableTotals(h)
		d, d0 := math.Abs(float64(after)-h.Held), math.Abs(float64(h.exact)-h.exactHeld)
		if d > float64(k)+1 && d > h.Held/100 && d >= d0+1 {
			out = append(out, drift{host: h.Name, after: after + h.Unmoved, exact: h.exact + h.Unmoved, goal: h.Goal})
		}
	}
	slices.SortStableFunc(out, func(a, b drift) int {
		return -cmpFloat(math.Abs(float64(a.after)-a.goal), math.Abs(float64(b.after)-b.goal))
	})
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// driftNote says where the tolerance added up, or "".
func (p *Plan) driftNote() string {
	ds := p.drifts()
	if len(ds) == 0 {
		return ""
	}
	const shown = 4
	var parts []string
	for i, d := range ds {
		switch {
		case i == shown:
			parts = append(parts, fmt.Sprintf("and %d more", len(ds)-shown))
		case i > shown:
			continue
		case i == 0:
			parts = append(parts, fmt.Sprintf("%s has %d users against a goal of %.1f (%d with --tolerance 0)", d.host, d.after, d.goal, d.exact))
		default:
			parts = append(parts, fmt.Sprintf("%s %d against %.1f (%d)", d.host, d.after, d.goal, d.exact))
		}
	}
	return fmt.Sprintf("tolerance %d adds up over the classes and leaves hosts further from their goals than an exact plan: %s",
		p.Options.Tolerance, strings.Join(parts, ", "))
}

// andList writes "a", "a and b", "a, b and c", or the first n and how
// many more.
func andList(xs []string, n int) string {
	if len(xs) > n {
		return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
	}
	if len(xs) <= 1 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// plural writes "1 user", "2 users".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
