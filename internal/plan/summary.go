package plan

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// summarise fills Stats and Reasons once the moves are known.
func (p *Plan) summarise(rows, movable int) {
	st := &p.Stats
	st.Users, st.Movable, st.Unmoved, st.Hosts = rows, movable, len(p.Unmoved), len(p.Hosts)
	for _, g := range p.Groups {
		st.Moves += g.Moves
		st.LowerBound += g.LowerBound
	}
	short := make(map[string]float64) // non-accepting hosts: users below their share
	for _, t := range p.Targets {
		st.WorstBefore = math.Max(st.WorstBefore, math.Abs(float64(t.Have)-t.Share))
		if !t.NoNew {
			st.WorstAfter = math.Max(st.WorstAfter, math.Abs(float64(t.Target)-t.Held))
		}
		if p.Options.Tolerance > 0 && t.Target == t.Have && t.Share > 0 &&
			(float64(t.Have) < math.Floor(t.Held) || float64(t.Have) > math.Ceil(t.Held)) {
			st.LeftAlone++
		}
		if d := t.Share - float64(t.Target); d > 0 {
			short[t.Host] += d
		}
	}

	worstIn := map[string]float64{} // by group: the furthest total after
	worstAt := map[string]string{}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		if !h.AcceptNew && !h.Drain && h.Weight > 0 {
			continue
		}
		before, after := 0, 0
		for k := range NumClasses {
			before += h.Have[k]
			after += h.Want[k]
		}
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
		if d := worstIn[g.Name]; math.Abs(d) >= 1 {
			alone := ""
			if p.Options.Tolerance > 0 {
				alone = " (and as few users on hosts inside their band)"
			}
			say("", "%s %s: host totals end within %.1f users of their shares (%s %+.1f); no plan with the fewest moves%s comes nearer",
				groupWord(&g), g.Name, math.Abs(d), worstAt[g.Name], d, alone)
		}
	}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		movable := h.Before.Users - h.Unmoved
		switch {
		case h.Drain:
			say(h.Name, "drains: all %s leave", plural(movable, "movable user"))
		case h.Weight == 0:
			say(h.Name, "weight 0: all %s leave", plural(movable, "movable user"))
		case !h.AcceptNew && short[h.Name] >= 0.5:
			say(h.Name, "accept_new = false: receives nobody, so it holds %.0f fewer users than its share and the other hosts of %s hold them", short[h.Name], h.Group)
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

// plural writes "1 user", "2 users".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
