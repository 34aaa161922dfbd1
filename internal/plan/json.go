package plan

import "math"

// Summary is the plan as the plan command's --json prints it: everything
// but the per-user lists that have files of their own (sort.tsv, and the
// todo that assign writes). Fields may be added, never change meaning.
type Summary struct {
	Seed       uint64        `json:"seed"`
	Pick       string        `json:"pick"`
	Tolerance  int           `json:"tolerance"`
	Across     bool          `json:"across_pools"`
	Thresholds JSONThreshold `json:"thresholds"`
	Stats      JSONStats     `json:"stats"`
	Groups     []JSONGroup   `json:"groups"`
	Hosts      []JSONHost    `json:"hosts"`
	Moves      []JSONMove    `json:"moves"`
	Unmoved    []Unmoved     `json:"unmoved"`
	Reasons    []Reason      `json:"reasons"`
}

// JSONThreshold gives the bucket bounds, and the flag that gives them back.
type JSONThreshold struct {
	ConnectS [3]int64 `json:"connect_s"`
	Bytes    [3]int64 `json:"bytes"`
	Given    []string `json:"given"` // "c", "d": the axes given rather than the quartiles
	Flag     string   `json:"flag"`
}

// JSONStats mirrors Stats.
type JSONStats struct {
	Users       int     `json:"users"`
	Movable     int     `json:"movable"`
	Unmoved     int     `json:"unmoved"`
	Moves       int     `json:"moves"`
	LowerBound  int     `json:"lower_bound"`
	Hosts       int     `json:"hosts"`
	WorstBefore float64 `json:"worst_before"`
	WorstAfter  float64 `json:"worst_after"`
	LeftAlone   int     `json:"left_alone"`
	// A host's total of movable users against its held total (JSONHost.Held).
	WorstTotalBefore float64 `json:"worst_total_before"`
	WorstTotalAfter  float64 `json:"worst_total_after"`
}

// JSONGroup mirrors Group.
type JSONGroup struct {
	Name       string   `json:"name"`
	Hosts      []string `json:"hosts"`
	Users      int      `json:"users"`
	Moves      int      `json:"moves"`
	LowerBound int      `json:"lower_bound"`
}

// JSONHost is one host with its classes by name.
type JSONHost struct {
	Name       string               `json:"name"`
	Pool       string               `json:"pool"`
	Group      string               `json:"group"`
	Weight     float64              `json:"weight"`
	AcceptNew  bool                 `json:"accept_new"`
	Drain      bool                 `json:"drain"`
	Share      float64              `json:"share"`
	Held       float64              `json:"held"`        // the total of movable users the plan brings it near (HostPlan.Held)
	ShareUsers float64              `json:"share_users"` // the users its weight alone gives it (HostPlan.ShareUsers)
	Goal       float64              `json:"goal"`        // the users the plan can bring it to (HostPlan.Goal)
	Before     JSONLoad             `json:"before"`
	After      JSONLoad             `json:"after"`
	Unmoved    int                  `json:"unmoved"`
	Out        int                  `json:"out"`
	In         int                  `json:"in"`
	Classes    map[string]JSONClass `json:"classes"`
}

// JSONLoad mirrors Load.
type JSONLoad struct {
	Users    int   `json:"users"`
	Bytes    int64 `json:"bytes"`
	ConnectS int64 `json:"connect_s"`
}

// JSONClass is one host's count of one class.
type JSONClass struct {
	Have   int     `json:"have"`
	Target int     `json:"target"`
	Share  float64 `json:"share"`
	Held   float64 `json:"held"`
	Lo     int     `json:"lo"`
	Hi     int     `json:"hi"`
}

// JSONMove is one row of moves.tsv.
type JSONMove struct {
	Class string `json:"class"`
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// Numbers of users that need not be whole (shares, goals, distances) are
// given to two decimals, a host's part of its group's weight to four:
// more would only show the noise of floating point.
func users2(x float64) float64 { return math.Round(x*100) / 100 }
func part4(x float64) float64  { return math.Round(x*1e4) / 1e4 }

// Summary returns the plan for --json.
func (p *Plan) Summary() Summary {
	th := p.Thresholds
	s := Summary{
		Seed: p.Options.Seed, Pick: string(p.Options.Pick), Tolerance: p.Options.Tolerance, Across: p.Options.AcrossPools,
		Thresholds: JSONThreshold{ConnectS: th.Connect, Bytes: th.Bytes, Given: []string{}, Flag: th.String()},
		Stats: JSONStats{Users: p.Stats.Users, Movable: p.Stats.Movable, Unmoved: p.Stats.Unmoved,
			Moves: p.Stats.Moves, LowerBound: p.Stats.LowerBound, Hosts: p.Stats.Hosts,
			WorstBefore: users2(p.Stats.WorstBefore), WorstAfter: users2(p.Stats.WorstAfter), LeftAlone: p.Stats.LeftAlone,
			WorstTotalBefore: users2(p.Stats.WorstTotalBefore), WorstTotalAfter: users2(p.Stats.WorstTotalAfter)},
		Moves:   make([]JSONMove, len(p.Moves)),
		Unmoved: p.Unmoved,
		Reasons: p.Reasons,
	}
	if th.ConnectSet {
		s.Thresholds.Given = append(s.Thresholds.Given, "c")
	}
	if th.BytesSet {
		s.Thresholds.Given = append(s.Thresholds.Given, "d")
	}
	if s.Unmoved == nil {
		s.Unmoved = []Unmoved{}
	}
	if s.Reasons == nil {
		s.Reasons = []Reason{}
	}
	for _, g := range p.Groups {
		s.Groups = append(s.Groups, JSONGroup{Name: g.Name, Hosts: g.Hosts, Users: g.Users, Moves: g.Moves, LowerBound: g.LowerBound})
	}
	byHost := map[string]map[string]JSONClass{}
	for _, t := range p.Targets {
		if byHost[t.Host] == nil {
			byHost[t.Host] = map[string]JSONClass{}
		}
		byHost[t.Host][t.Class.String()] = JSONClass{Have: t.Have, Target: t.Target, Share: users2(t.Share), Held: users2(t.Held), Lo: t.Lo, Hi: t.Hi}
	}
	for i := range p.Hosts {
		h := &p.Hosts[i]
		cl := byHost[h.Name]
		if cl == nil {
			cl = map[string]JSONClass{}
		}
		s.Hosts = append(s.Hosts, JSONHost{Name: h.Name, Pool: h.Pool, Group: h.Group, Weight: h.Weight,
			AcceptNew: h.AcceptNew, Drain: h.Drain, Share: part4(h.Share), Held: users2(h.Held),
			ShareUsers: users2(h.ShareUsers), Goal: users2(h.Goal),
			Before:  JSONLoad(h.Before),
			After:   JSONLoad(h.After),
			Unmoved: h.Unmoved, Out: h.Out, In: h.In, Classes: cl})
	}
	for i, m := range p.Moves {
		s.Moves[i] = JSONMove{Class: m.Class.String(), From: m.From, To: m.To, Count: m.Count}
	}
	return s
}
