package plan

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
)

// classThresholds put a user of connect time or size 5, 15, 25, 35 in
// bucket 1, 2, 3, 4.
var classThresholds = Thresholds{Connect: [3]int64{10, 20, 30}, Bytes: [3]int64{10, 20, 30}, ConnectSet: true, BytesSet: true}

// byClass makes users from counts: counts[host][i] users of class
// classes[i] on the host.
func byClass(hosts []*cluster.Host, classes []cluster.Class, counts map[string][]int) []cluster.User {
	var users []cluster.User
	for _, h := range hosts {
		for i, n := range counts[h.Name] {
			c := classes[i]
			for range n {
				name := fmt.Sprintf("u%05d", len(users))
				users = append(users, cluster.User{Name: name, Host: h.Name, Pool: h.Pool, Home: h.Root + "/" + name,
					ConnectS: int64(max(0, 10*c.C-5)), Bytes: int64(max(0, 10*c.D-5)), Status: cluster.StatusOK})
			}
		}
	}
	return users
}

func hostsOf(spec ...string) []*cluster.Host {
	var hs []*cluster.Host
	for _, s := range spec {
		var name string
		var w float64
		var flags string
		fmt.Sscanf(s, "%s %g %s", &name, &w, &flags)
		hs = append(hs, &cluster.Host{Name: name, Pool: "bp", Root: "/" + name, Weight: w,
			AcceptNew: !strings.Contains(flags, "no-new"), Drain: strings.Contains(flags, "drain")})
	}
	return hs
}

func render(t *testing.T, p *Plan) (text, page, svg string) {
	t.Helper()
	var a, b, c bytes.Buffer
	if err := p.WriteText(&a); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteHTML(&b, "t"); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteSVG(&c, "t"); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String(), c.String()
}

func hostPlan(t *testing.T, p *Plan, name string) *HostPlan {
	t.Helper()
	for i := range p.Hosts {
		if p.Hosts[i].Name == name {
			return &p.Hosts[i]
		}
	}
	t.Fatalf("no host %s", name)
	return nil
}

// A host that takes no new users and holds more than its share: the
// report names its goal, measures against it, and says why it differs
// from the share, rather than that it holds fewer users than its share.
func TestGoalNoNewAboveShare(t *testing.T) {
	hosts := hostsOf("bp01 3", "bp02 1 no-new", "bp03 1", "bp04 0.5", "bp05 1 drain")
	classes := []cluster.Class{{C: 1, D: 1}, {C: 2, D: 2}, {C: 2, D: 3}, {C: 3, D: 2}, {C: 3, D: 3}, {C: 4, D: 4}}
	// Class 0: bp02 has none of its share of 2; classes 1-5: it has 2 of
	// a share of 1.09 and keeps both (⌈1.09⌉ = 2).
	users := byClass(hosts, classes, map[string][]int{
		"bp01": {11, 4, 4, 4, 4, 4},
		"bp02": {0, 2, 2, 2, 2, 2},
	})
	p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds})
	if err != nil {
		t.Fatal(err)
	}
	bp02 := hostPlan(t, p, "bp02")
	if bp02.After.Users != 10 || bp02.Goal != 10 || math.Abs(bp02.ShareUsers-41.0/5.5) > 1e-9 {
		t.Fatalf("bp02: after %d, goal %.2f, share %.2f; want 10, 10, 7.45", bp02.After.Users, bp02.Goal, bp02.ShareUsers)
	}
	goals, shares := 0.0, 0.0
	for _, h := range p.Hosts {
		goals += h.Goal
		shares += h.ShareUsers
	}
	if math.Abs(goals-41) > 1e-9 || math.Abs(shares-41) > 1e-9 {
		t.Errorf("goals add up to %.2f, shares to %.2f; want 41 (the users)", goals, shares)
	}

	text, page, svg := render(t, p)
	for _, bad := range []string{"fewer users than its share", "from its share"} {
		if strings.Contains(text+page+svg, bad) {
			t.Errorf("the plan says %q", bad)
		}
	}
	note := "goals ≠ shares in pool bp: bp02 takes no new users and holds 10 (share 7.5); bp01, bp03 and bp04 share the rest"
	// The SVG wraps it: its words, in order.
	words := strings.Join(strings.Fields(strings.ReplaceAll(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(svg, " "), "&#39;", "'")), " ")
	for what, s := range map[string]string{"table": text, "report": page, "svg": words} {
		if !strings.Contains(s, note) {
			t.Errorf("the %s lacks %q", what, note)
		}
	}
	for _, want := range []string{
		"bp02: accept_new = false: receives nobody and keeps up to its share of each class, rounded up: 10 users against a share of 7.5",
		"host totals: the furthest any host is from its goal:",
		"SHARE  GOAL",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the table lacks %q:\n%s", want, text)
		}
	}
	// The bars show the goal, and the share dashed beside it.
	if !strings.Contains(page, "<title>bp02 users: 10 now, 10 after, goal 10.0, share 7.5</title>") {
		t.Errorf("the users bar of bp02 does not name its goal and share")
	}
	if !strings.Contains(page, `<th title="the users the plan can bring it to">goal</th>`) {
		t.Error("the host table has no goal column")
	}
}

// With one host left to receive, it takes everything the others give
// away: the headline's distance is from its goal, which the bars draw,
// and the share the bars also draw is explained.
func TestGoalOneReceiver(t *testing.T) {
	hosts := hostsOf("bp01 1 no-new", "bp02 1 no-new", "bp03 1 no-new", "bp04 2 no-new", "bp05 1")
	classes := []cluster.Class{{C: 2, D: 2}}
	users := byClass(hosts, classes, map[string][]int{"bp01": {20}, "bp02": {20}, "bp03": {20}, "bp04": {4}})
	p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds})
	if err != nil {
		t.Fatal(err)
	}
	// s = 64/6 = 10.67: bp01-03 keep 11 each, bp04 its 4; bp05 takes 27.
	bp05 := hostPlan(t, p, "bp05")
	if bp05.After.Users != 27 || bp05.Goal != 27 || math.Abs(bp05.ShareUsers-64.0/6) > 1e-9 {
		t.Fatalf("bp05: after %d, goal %.2f, share %.2f", bp05.After.Users, bp05.Goal, bp05.ShareUsers)
	}
	if p.Stats.WorstTotalBefore != 27 || p.Stats.WorstTotalAfter != 0 {
		t.Errorf("totals from their goals: %.1f now, %.1f after; want 27 (bp05), 0", p.Stats.WorstTotalBefore, p.Stats.WorstTotalAfter)
	}
	if p.Stats.WorstBefore != 27 || p.Stats.WorstAfter != 0 {
		t.Errorf("classes from their goals: %.1f now, %.1f after; want 27, 0", p.Stats.WorstBefore, p.Stats.WorstAfter)
	}
	text, page, _ := render(t, p)
	note := "bp01, bp02, bp03 and bp04 take no new users and hold 37 (shares 53.3); bp05 takes the rest (27, share 10.7)"
	if !strings.Contains(text, note) || !strings.Contains(page, note) {
		t.Errorf("no line says why bp05's goal is not its share:\n%s", text)
	}
	if !strings.Contains(page, "27.0 → 0.0 <small>users</small></div>furthest any host's total is from its goal") {
		t.Error("the headline does not measure the totals against the goals")
	}
	// The goal tick of bp05's users bar is drawn at 27, the share at 10.7.
	bar := page[strings.Index(page, "<title>bp05 users:"):]
	bar = bar[:strings.Index(bar, "</g>")]
	if !strings.Contains(bar, "goal 27.0, share 10.7") {
		t.Errorf("bp05's users bar: %s", bar)
	}
	ys := map[string]float64{}
	for _, m := range regexp.MustCompile(`<line class="(goal|share)" [^>]*y1="([0-9.]+)"`).FindAllStringSubmatch(bar, -1) {
		var y float64
		fmt.Sscan(m[2], &y)
		ys[m[1]] = y
	}
	// The plot is 140 high from y = 22, up to the largest value, 27.
	if math.Abs(ys["goal"]-22) > 0.2 || math.Abs(ys["share"]-(162-140*(64.0/6)/27)) > 0.2 {
		t.Errorf("bp05's ticks at %v, want goal at 22 and share at %.1f", ys, 162-140*(64.0/6)/27)
	}
}

// Every host accepting and no user pinned: goals are the shares, and no
// note or dashed share line clutters the report.
func TestGoalEqualsShare(t *testing.T) {
	hosts := hostsOf("bp01 1", "bp02 1", "bp03 2")
	users := byClass(hosts, []cluster.Class{{C: 1, D: 1}, {C: 2, D: 2}}, map[string][]int{"bp01": {10, 6}, "bp02": {2, 2}})
	p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range p.Hosts {
		if math.Abs(h.Goal-h.ShareUsers) > 1e-9 {
			t.Errorf("%s: goal %.2f, share %.2f", h.Name, h.Goal, h.ShareUsers)
		}
	}
	text, page, _ := render(t, p)
	if strings.Contains(text+page, "goals ≠ shares") || strings.Contains(page, `class="share"`) {
		t.Error("goals equal to the shares are said to differ")
	}
}

// A tolerance widens every band: the check says so, and where the slack
// of many classes adds up on one host, the report says how far from its
// goal that leaves it and where an exact plan would put it.
func TestToleranceAddsUp(t *testing.T) {
	hosts := hostsOf("bp01 1", "bp02 1", "bp03 1", "bp04 1", "bp05 1")
	var classes []cluster.Class
	counts := map[string][]int{}
	for k := range NumClasses {
		c := ClassAt(k)
		if c.C == 0 || c.D == 0 {
			continue // 16 classes
		}
		classes = append(classes, c)
		// 7 users a class: a share of 1.4, a band of [0, 3] with K = 1.
		for i, h := range []string{"bp01", "bp02", "bp03", "bp04"} {
			counts[h] = append(counts[h], []int{2, 2, 2, 1}[(i+k)%4])
		}
	}
	users := byClass(hosts, classes, counts)
	for _, tc := range []struct {
		tol  int
		want []string
		not  []string
	}{
		{0, []string{"every host in every class within its band;"}, []string{"widened", "adds up"}},
		{1, []string{
			"every host in every class within its band widened by the tolerance (1);",
			"tolerance 1 adds up over the classes and leaves hosts further from their goals than an exact plan: bp05 has 0 users against a goal of 22.4 (16 with --tolerance 0), bp01 28 against 22.4 (24),",
		}, nil},
	} {
		t.Run(fmt.Sprint("tolerance ", tc.tol), func(t *testing.T) {
			p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds, Tolerance: tc.tol})
			if err != nil {
				t.Fatal(err)
			}
			text, page, _ := render(t, p)
			for _, w := range tc.want {
				if !strings.Contains(text, w) || !strings.Contains(page, w) {
					t.Errorf("the table or the report lacks %q:\n%s", w, text)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(text+page, n) {
					t.Errorf("the plan says %q", n)
				}
			}
		})
	}
}
