package plan

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Colours of the report, chosen to read in grey print too.
const (
	colBefore = "#c9ced6"
	colAfter  = "#2f6db5"
	colTarget = "#111111"
	colShare  = "#7a828c"
	colDrain  = "#c0392b"
	colNoNew  = "#b9770e"
	colOK     = "#1e8449"
	colBad    = "#c0392b"
)

const reportCSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
main{max-width:1320px;margin:0 auto;padding:18px 24px 60px}
h1{font-size:22px;margin:6px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5d9df;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px}
.sub{color:#59616b;margin-bottom:14px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;margin:10px 0}
.verdict{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:10px}
.big{font-size:26px;font-weight:600}.big small{font-size:13px;font-weight:400;color:#59616b}
.checks{list-style:none;padding:0;margin:6px 0 0}.checks li{margin:3px 0}
.ok{color:` + colOK + `;font-weight:600}.bad{color:` + colBad + `;font-weight:600}
.flex{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}
th,td{padding:2px 7px;border-bottom:1px solid #e6e9ed;text-align:right;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td.l,th.l{text-align:left}
.scroll{overflow-x:auto;max-width:100%}
.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px;border:1px solid #999}
summary{cursor:pointer;color:#2f6db5;margin:4px 0}
.drain{color:` + colDrain + `}.nonew{color:` + colNoNew + `}
.note{margin:6px 0;padding:6px 10px;background:#fdf4e3;border-left:3px solid ` + colNoNew + `}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
`

// WriteHTML writes the report: one self-contained page (inline CSS and
// SVG, no script, nothing fetched) that shows at a glance whether the plan
// is sane, and the numbers under each picture.
func (p *Plan) WriteHTML(w io.Writer, title string) error {
	bw := bufio.NewWriter(w)
	e := html.EscapeString
	fmt.Fprintf(bw, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n<style>%s</style></head><body><main>\n", e(title), reportCSS)
	fmt.Fprintf(bw, "<h1>%s</h1>\n<div class=\"sub\">classes %s · pick %s · seed %d · tolerance %d%s</div>\n",
		e(title), e(p.Thresholds.String()), e(string(p.Options.Pick)), p.Options.Seed, p.Options.Tolerance,
		map[bool]string{true: " · across pools", false: ""}[p.Options.AcrossPools])

	p.writeVerdict(bw)

	bw.WriteString("<h2>Hosts before and after</h2>\n")
	bw.WriteString(`<div class="legend"><span><i class="sw" style="background:` + colBefore + `"></i>now</span><span><i class="sw" style="background:` + colAfter + `"></i>after the plan</span><span><i class="sw" style="background:` + colTarget + `;height:2px;border:0"></i>goal: what the plan can reach</span><span><i class="sw" style="border:0;border-top:2px dashed ` + colShare + `;height:0"></i>share: its weight’s part (plus users never moved), where it differs</span><span class="drain">■ drains</span><span class="nonew">■ takes no new users</span></div>` + "\n")
	for _, g := range p.Groups {
		if note := p.goalNote(&g); note != "" {
			fmt.Fprintf(bw, "<p class=\"note\">%s</p>\n", e(note))
		}
	}
	if note := p.driftNote(); note != "" {
		fmt.Fprintf(bw, "<p class=\"note\">%s</p>\n", e(note))
	}
	for _, g := range p.Groups {
		hosts := p.groupHosts(g.Name)
		fmt.Fprintf(bw, "<h3>%s %s</h3>\n<div class=\"flex\">\n", groupWord(&g), e(g.Name))
		for _, m := range metrics {
			bw.WriteString(p.barChart(hosts, m))
		}
		bw.WriteString("</div>\n")
		p.writeHostTable(bw, hosts)
	}

	bw.WriteString("<h2>Hosts × classes</h2>\n")
	bw.WriteString(`<div class="legend">Each cell is a host's count of a class; its colour, how far the count lies outside its goal rounded down and up (for a host that takes no new users, its share, so that what it lacks shows): <span><i class="sw" style="background:` + heat(-1) + `"></i>below</span><span><i class="sw" style="background:#fff"></i>on the goal</span><span><i class="sw" style="background:` + heat(1) + `"></i>above</span></div>` + "\n")
	bw.WriteString("<div class=\"flex\">\n")
	bw.WriteString(p.heatMap(false))
	bw.WriteString(p.heatMap(true))
	bw.WriteString("</div>\n")
	p.writeThresholds(bw)

	bw.WriteString("<h2>Moves</h2>\n")
	if len(p.Moves) == 0 {
		bw.WriteString("<p>Nothing moves.</p>\n")
	}
	for _, g := range p.Groups {
		fl := p.flows(g.Name)
		if len(fl.from) == 0 {
			continue
		}
		fmt.Fprintf(bw, "<h3>%s %s: %d moves</h3>\n", groupWord(&g), e(g.Name), g.Moves)
		bw.WriteString(fl.sankey())
		fl.writeMatrix(bw)
	}

	p.writeReasons(bw)
	bw.WriteString("</main></body></html>\n")
	return bw.Flush()
}

// WriteSVG writes the summary picture for mail: the verdict in a few
// lines and each host's users, bytes and connect time now and after.
func (p *Plan) WriteSVG(w io.Writer, title string) error {
	type row struct {
		charts []string
		width  int
		height int
	}
	var rows []row
	width := 0
	for _, g := range p.Groups {
		var r row
		for _, m := range metrics {
			c := p.barChart(p.groupHosts(g.Name), m)
			wd, ht := svgSize(c)
			r.charts = append(r.charts, c)
			r.width += wd + 16
			r.height = max(r.height, ht)
		}
		width = max(width, r.width)
		rows = append(rows, r)
	}
	width = max(width, 700)
	lines := wrapLines(p.verdictLines(), width)
	top := 34 + 18*len(lines) + 22
	total := top
	for _, r := range rows {
		total += r.height + 24
	}
	e := html.EscapeString
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui,sans-serif">`+"\n", width+20, total, width+20, total)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#fff"/><text x="10" y="22" font-size="16" font-weight="600">%s</text>`+"\n", e(title))
	for i, l := range lines {
		x, text := 10, l.text
		if t, ok := strings.CutPrefix(text, "    "); ok { // a line wrapped: indented
			x, text = 26, t
		}
		fmt.Fprintf(bw, `<text x="%d" y="%d" font-size="13" fill="%s">%s</text>`+"\n", x, 44+18*i, l.colour, e(text))
	}
	ly := 44 + 18*len(lines) + 4
	fmt.Fprintf(bw, `<g font-size="12"><rect x="10" y="%d" width="12" height="12" fill="%s"/><text x="26" y="%d">now</text><rect x="70" y="%d" width="12" height="12" fill="%s"/><text x="86" y="%d">after the plan</text><rect x="180" y="%d" width="14" height="2" fill="%s"/><text x="198" y="%d">goal</text><line x1="240" x2="254" y1="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="3 2"/><text x="258" y="%d">share</text><text x="310" y="%d" fill="%s">red: drains</text><text x="390" y="%d" fill="%s">amber: takes no new users</text></g>`+"\n",
		ly-10, colBefore, ly, ly-10, colAfter, ly, ly-5, colTarget, ly, ly-4, ly-4, colShare, ly, ly, colDrain, ly, colNoNew)
	y := top
	for i, g := range p.Groups {
		fmt.Fprintf(bw, `<text x="10" y="%d" font-size="13" font-weight="600">%s %s</text>`+"\n", y+14, groupWord(&g), e(g.Name))
		x := 10
		for _, c := range rows[i].charts {
			wd, _ := svgSize(c)
			fmt.Fprintf(bw, `<g transform="translate(%d,%d)">%s</g>`+"\n", x, y+18, c)
			x += wd + 16
		}
		y += rows[i].height + 24
	}
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

func svgSize(s string) (int, int) {
	var w, h int
	fmt.Sscanf(s[strings.Index(s, `width="`):], `width="%d" height="%d"`, &w, &h)
	return w, h
}

type verdictLine struct {
	text, colour string
}

// wrapLines breaks verdict lines that would run past width pixels of
// 13px text, continuing them indented, so that the SVG cuts nothing off.
func wrapLines(lines []verdictLine, width int) []verdictLine {
	const charW = 7.0 // a wide average for 13px sans-serif
	most := max(40, int(float64(width-10)/charW))
	var out []verdictLine
	for _, l := range lines {
		words := strings.Fields(l.text)
		cur := ""
		for _, w := range words {
			switch {
			case cur == "":
				cur = w
			case len([]rune(cur))+1+len([]rune(w)) <= most:
				cur += " " + w
			default:
				out = append(out, verdictLine{cur, l.colour})
				cur = "    " + w
			}
		}
		out = append(out, verdictLine{cur, l.colour})
	}
	return out
}

// verdictLines are the checks an operator reads first.
func (p *Plan) verdictLines() []verdictLine {
	s := &p.Stats
	var out []verdictLine
	add := func(ok bool, format string, args ...any) {
		c, mark := colOK, "✓ "
		if !ok {
			c, mark = colBad, "✗ "
		}
		out = append(out, verdictLine{mark + fmt.Sprintf(format, args...), c})
	}
	pct := 0.0
	if s.Movable > 0 {
		pct = 100 * float64(s.Moves) / float64(s.Movable)
	}
	add(s.Moves == s.LowerBound, "%d moves of %d movable users (%.1f%%); the least possible is %d", s.Moves, s.Movable, pct, s.LowerBound)
	inBand := true
	for _, t := range p.Targets {
		inBand = inBand && t.Lo <= t.Target && t.Target <= t.Hi
	}
	band := "within its band"
	if k := p.Options.Tolerance; k > 0 {
		band = fmt.Sprintf("within its band widened by the tolerance (%d)", k)
	}
	add(inBand, "after: every host in every class %s; the furthest any host is from its goal in a class: %.1f users now, %.1f after", band, s.WorstBefore, s.WorstAfter)
	alone := ""
	if p.Options.Tolerance > 0 {
		alone = " (and as few users on hosts inside their band)"
	}
	add(true, "host totals: the furthest any host is from its goal: %.1f users now, %.1f after; no plan with the fewest moves%s comes nearer", s.WorstTotalBefore, s.WorstTotalAfter, alone)
	note := func(text string) { out = append(out, verdictLine{"! " + text, colNoNew}) }
	for _, g := range p.Groups {
		if n := p.goalNote(&g); n != "" {
			note(n)
		}
	}
	if n := p.driftNote(); n != "" {
		note(n)
	}
	bad := p.badDestinations()
	add(len(bad) == 0, "no move into a host that drains or takes no new users%s", listSuffix(bad))
	var drains []string
	emptied := true
	for i := range p.Hosts {
		h := &p.Hosts[i]
		if h.Drain {
			drains = append(drains, fmt.Sprintf("%s %d→%d", h.Name, h.Before.Users, h.After.Users))
			emptied = emptied && h.After.Users == h.Unmoved
		}
	}
	if len(drains) > 0 {
		add(emptied, "draining hosts emptied of movable users: %s", strings.Join(drains, ", "))
	}
	if !p.Options.AcrossPools {
		add(p.poolsKept(), "every move stays inside its pool")
	}
	if s.Unmoved > 0 {
		by := map[string]int{}
		for _, u := range p.Unmoved {
			by[u.Status]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(by)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
		}
		note(fmt.Sprintf("%s never moved by this plan: %s", plural(s.Unmoved, "user"), strings.Join(parts, ", ")))
	}
	return out
}

func listSuffix(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return ": " + strings.Join(xs, ", ")
}

func (p *Plan) hostByName() map[string]*HostPlan {
	m := make(map[string]*HostPlan, len(p.Hosts))
	for i := range p.Hosts {
		m[p.Hosts[i].Name] = &p.Hosts[i]
	}
	return m
}

func (p *Plan) badDestinations() []string {
	hosts := p.hostByName()
	var bad []string
	for _, m := range p.Moves {
		h := hosts[m.To]
		if h == nil || h.Drain || !h.AcceptNew || h.Weight == 0 {
			bad = append(bad, m.To)
		}
	}
	return bad
}

func (p *Plan) poolsKept() bool {
	hosts := p.hostByName()
	for _, m := range p.Moves {
		if hosts[m.From].Pool != hosts[m.To].Pool {
			return false
		}
	}
	return true
}

func (p *Plan) writeVerdict(w *bufio.Writer) {
	s := &p.Stats
	pct := 0.0
	if s.Movable > 0 {
		pct = 100 * float64(s.Moves) / float64(s.Movable)
	}
	w.WriteString(`<div class="verdict">`)
	fmt.Fprintf(w, `<div class="card"><div class="big">%s <small>moves</small></div>%.1f%% of %s movable users</div>`, thousands(s.Moves), pct, thousands(s.Movable))
	fmt.Fprintf(w, `<div class="card"><div class="big">%.1f → %.1f <small>users</small></div>furthest any host's total is from its goal, now → after</div>`, s.WorstTotalBefore, s.WorstTotalAfter)
	fmt.Fprintf(w, `<div class="card"><div class="big">%.1f → %.1f <small>users</small></div>furthest any host is from its goal in a class, now → after</div>`, s.WorstBefore, s.WorstAfter)
	groups := plural(len(p.Groups), "pool")
	if p.Options.AcrossPools {
		groups = "one group"
	}
	fmt.Fprintf(w, `<div class="card"><div class="big">%d <small>hosts in %s</small></div>%s users in all, %s never moved</div>`,
		len(p.Hosts), groups, thousands(s.Users), thousands(s.Unmoved))
	w.WriteString("</div>\n<div class=\"card\"><ul class=\"checks\">")
	for _, l := range p.verdictLines() {
		cls := "ok"
		switch {
		case strings.HasPrefix(l.text, "✗"):
			cls = "bad"
		case strings.HasPrefix(l.text, "!"):
			cls = "nonew"
		}
		fmt.Fprintf(w, `<li><span class="%s">%s</span>%s</li>`, cls, html.EscapeString(l.text[:strings.Index(l.text, " ")+1]), html.EscapeString(l.text[strings.Index(l.text, " ")+1:]))
	}
	w.WriteString("</ul></div>\n")
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u2009")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func (p *Plan) groupHosts(group string) []*HostPlan {
	var hs []*HostPlan
	for i := range p.Hosts {
		if p.Hosts[i].Group == group {
			hs = append(hs, &p.Hosts[i])
		}
	}
	return hs
}

// metric is one of the three loads the bars show.
type metric struct {
	name string
	get  func(Load) float64
	fmt  func(float64) string
}

var metrics = []metric{
	{"users", func(l Load) float64 { return float64(l.Users) }, func(v float64) string { return thousands(int(math.Round(v))) }},
	{"bytes", func(l Load) float64 { return float64(l.Bytes) }, func(v float64) string { return Bytes(int64(v)) }},
	{"connect time", func(l Load) float64 { return float64(l.ConnectS) }, func(v float64) string { return Duration(int64(v)) }},
}

// fmtGoal writes a goal or a share: users with a decimal, as they need
// not be whole.
func (m metric) fmtGoal(v float64) string {
	if m.name == "users" {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return m.fmt(v)
}

func hostColour(h *HostPlan) string {
	switch {
	case h.Drain || h.Weight == 0:
		return colDrain
	case !h.AcceptNew:
		return colNoNew
	}
	return "#333"
}

// barChart draws one load of a group's hosts: a wide pale bar for now, a
// narrow dark one for after, a black tick at the host's goal (what the
// plan can reach) and, where it differs, a dashed grey one at its share
// (what its weight alone gives it). For bytes and connect time the goal
// and the share are the same parts of the group's movable load as of its
// movable users, plus what the host's users that never move carry.
func (p *Plan) barChart(hosts []*HostPlan, m metric) string {
	n := len(hosts)
	slot := math.Max(11, math.Min(48, 480/float64(max(n, 1))))
	plotW := slot * float64(n)
	const plotH, top, left = 140.0, 22.0, 54.0
	longest := 0
	for _, h := range hosts {
		longest = max(longest, len(h.Name))
	}
	labelH := 18 + 5.2*float64(longest)
	width := int(left + plotW + 10)
	height := int(top + plotH + labelH)
	var movable, users, maxV float64
	for _, h := range hosts {
		movable += m.get(h.Before) - m.get(h.fixed)
		users += float64(h.Before.Users - h.Unmoved)
	}
	goalOf := func(h *HostPlan) float64 {
		if users == 0 {
			return m.get(h.fixed)
		}
		return m.get(h.fixed) + h.Held/users*movable
	}
	shareOf := func(h *HostPlan) float64 { return m.get(h.fixed) + h.Share*movable }
	for _, h := range hosts {
		maxV = math.Max(maxV, math.Max(math.Max(m.get(h.Before), m.get(h.After)), math.Max(goalOf(h), shareOf(h))))
	}
	if maxV == 0 {
		maxV = 1
	}
	y := func(v float64) float64 { return top + plotH - plotH*v/maxV }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, width, height, width, height)
	fmt.Fprintf(&b, `<text x="%g" y="14" font-size="12" font-weight="600">%s</text>`, left, m.name)
	for _, f := range []float64{0, 0.5, 1} {
		yy := y(maxV * f)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#e3e6ea"/>`, left, left+plotW, yy, yy)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="10" text-anchor="end" fill="#59616b">%s</text>`, left-4, yy+3, m.fmt(maxV*f))
	}
	for i, h := range hosts {
		x := left + slot*float64(i)
		bv, av, gv, sv := m.get(h.Before), m.get(h.After), goalOf(h), shareOf(h)
		differ := math.Abs(gv-sv) > maxV/200
		tip := fmt.Sprintf("%s %s: %s now, %s after, goal %s", h.Name, m.name, m.fmt(bv), m.fmt(av), m.fmtGoal(gv))
		if differ {
			tip += ", share " + m.fmtGoal(sv)
		}
		fmt.Fprintf(&b, `<g><title>%s</title>`, html.EscapeString(tip))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x+slot*0.08, y(bv), slot*0.84, top+plotH-y(bv), colBefore)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x+slot*0.3, y(av), slot*0.4, top+plotH-y(av), colAfter)
		if differ {
			fmt.Fprintf(&b, `<line class="share" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="3 2"/>`, x+slot*0.04, x+slot*0.96, y(sv), y(sv), colShare)
		}
		fmt.Fprintf(&b, `<line class="goal" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, x+slot*0.04, x+slot*0.96, y(gv), y(gv), colTarget)
		fmt.Fprintf(&b, `<text transform="translate(%.1f,%.1f) rotate(-65)" font-size="%g" text-anchor="end" fill="%s">%s</text></g>`,
			x+slot*0.62, top+plotH+8, math.Min(10, slot*0.8), hostColour(h), html.EscapeString(h.Name))
	}
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#888"/>`, left, left+plotW, top+plotH, top+plotH)
	b.WriteString("</svg>\n")
	return b.String()
}

func (p *Plan) writeHostTable(w *bufio.Writer, hosts []*HostPlan) {
	e := html.EscapeString
	open := ""
	if len(hosts) <= 24 {
		open = " open"
	}
	fmt.Fprintf(w, "<details%s><summary>the numbers of these %d hosts</summary>\n", open, len(hosts))
	w.WriteString(`<div class="scroll"><table><tr><th class="l">host</th><th class="l">flags</th><th>weight</th><th>weight %</th><th title="the users its weight alone gives it">share</th><th title="the users the plan can bring it to">goal</th><th>users now</th><th>after</th><th>bytes now</th><th>after</th><th>connect now</th><th>after</th><th>out</th><th>in</th><th>never moved</th></tr>`)
	for _, h := range hosts {
		goal := fmt.Sprintf("%.1f", h.Goal)
		if math.Abs(h.Goal-h.ShareUsers) >= 0.05 {
			goal = "<b>" + goal + "</b>"
		}
		fmt.Fprintf(w, `<tr><td class="l" style="color:%s">%s</td><td class="l">%s</td><td>%s</td><td>%.1f%%</td><td>%.1f</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>`,
			hostColour(h), e(h.Name), e(hostFlags(h)), strconv.FormatFloat(h.Weight, 'g', 4, 64), 100*h.Share,
			h.ShareUsers, goal, h.Before.Users, h.After.Users,
			Bytes(h.Before.Bytes), Bytes(h.After.Bytes), Duration(h.Before.ConnectS), Duration(h.After.ConnectS), h.Out, h.In, h.Unmoved)
	}
	w.WriteString("</table></div></details>\n")
}

// heat is the colour of a signed distance from the share, scaled to -1…1.
func heat(v float64) string {
	v = math.Max(-1, math.Min(1, v))
	mix := func(c [3]float64) string {
		a := math.Abs(v)
		return fmt.Sprintf("#%02x%02x%02x", int(255+(c[0]-255)*a), int(255+(c[1]-255)*a), int(255+(c[2]-255)*a))
	}
	if v < 0 {
		return mix([3]float64{44, 123, 182})
	}
	return mix([3]float64{215, 48, 39})
}

// heatMap draws hosts × classes, now or after. A cell's colour is how far
// its count lies outside the band [⌊x⌋, ⌈x⌉] of the share x the rule holds
// the host to (Target.Held; the plain share for a host that takes no new
// users, so that what it lacks shows): white is balanced.
func (p *Plan) heatMap(after bool) string {
	classes := p.usedClasses()
	ref := map[[2]int]float64{}
	hostAt := map[string]int{}
	for i := range p.Hosts {
		hostAt[p.Hosts[i].Name] = i
	}
	for _, t := range p.Targets {
		x := t.Held
		if t.NoNew {
			x = t.Share
		}
		ref[[2]int{hostAt[t.Host], ClassIndex(t.Class)}] = x
	}
	longest := 4
	for i := range p.Hosts {
		longest = max(longest, len(p.Hosts[i].Name))
	}
	left := 10 + 6.5*float64(longest)
	// Two maps side by side in the page's width.
	cw := math.Max(18, math.Min(34, (620-left-10)/float64(max(len(classes), 1))))
	ch, font := 16.0, 9.0
	if len(p.Hosts) > 60 || cw < 26 {
		ch, font = 12, 8
	}
	top := 40.0
	rows := len(p.Hosts) + len(p.Groups)
	width := int(left + cw*float64(len(classes)) + 10)
	height := int(top + ch*float64(rows) + 6)
	var b strings.Builder
	name := "now"
	if after {
		name = "after the plan"
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, width, height, width, height)
	fmt.Fprintf(&b, `<text x="%g" y="13" font-size="12" font-weight="600">%s</text>`, left, name)
	for j, k := range classes {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="9" text-anchor="middle" fill="#59616b">%s</text>`, left+cw*float64(j)+cw/2, top-6, ClassAt(k))
	}
	y := top
	for _, g := range p.Groups {
		fmt.Fprintf(&b, `<text x="4" y="%.1f" font-size="%g" font-weight="600">%s</text>`, y+ch-3, font+1, html.EscapeString(g.Name))
		y += ch
		for _, h := range p.groupHosts(g.Name) {
			i := hostAt[h.Name]
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="%g" text-anchor="end" fill="%s">%s</text>`, left-4, y+ch-3, font, hostColour(h), html.EscapeString(h.Name))
			for j, k := range classes {
				n := h.Have[k]
				if after {
					n = h.Want[k]
				}
				x := ref[[2]int{i, k}]
				d := outside(float64(n), x) / (1 + 0.25*x)
				tip := html.EscapeString(fmt.Sprintf("%s %s: %d (share %.1f)", h.Name, ClassAt(k), n, x))
				fmt.Fprintf(&b, `<g><title>%s</title><rect x="%.1f" y="%.1f" width="%g" height="%g" fill="%s" stroke="#fff"/>`,
					tip, left+cw*float64(j), y, cw, ch, heat(d))
				if n > 0 || x > 0 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%g" text-anchor="middle" fill="%s">%d</text>`,
						left+cw*float64(j)+cw/2, y+ch-3.5, font, textOn(d), n)
				}
				b.WriteString("</g>")
			}
			y += ch
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// outside is how far n lies below ⌊x⌋ (negative) or above ⌈x⌉.
func outside(n, x float64) float64 {
	switch {
	case n < math.Floor(x):
		return n - math.Floor(x)
	case n > math.Ceil(x):
		return n - math.Ceil(x)
	}
	return 0
}

func textOn(v float64) string {
	if math.Abs(v) > 0.6 {
		return "#fff"
	}
	return "#222"
}

func (p *Plan) writeThresholds(w *bufio.Writer) {
	th := p.Thresholds
	src := func(set bool) string {
		if set {
			return "given"
		}
		return "quartiles of the non-zero values"
	}
	fmt.Fprintf(w, `<h3>Class bounds</h3><table><tr><th class="l">axis</th><th>0</th><th>1</th><th>2</th><th>3</th><th>4</th><th class="l">from</th></tr>`)
	fmt.Fprintf(w, `<tr><td class="l">c: connect time</td><td>none</td><td>≤ %s</td><td>≤ %s</td><td>≤ %s</td><td>&gt; %s</td><td class="l">%s</td></tr>`,
		Duration(th.Connect[0]), Duration(th.Connect[1]), Duration(th.Connect[2]), Duration(th.Connect[2]), src(th.ConnectSet))
	fmt.Fprintf(w, `<tr><td class="l">d: disk</td><td>empty</td><td>≤ %s</td><td>≤ %s</td><td>≤ %s</td><td>&gt; %s</td><td class="l">%s</td></tr></table>`+"\n",
		Bytes(th.Bytes[0]), Bytes(th.Bytes[1]), Bytes(th.Bytes[2]), Bytes(th.Bytes[2]), src(th.BytesSet))
}

// flowSet is a group's moves summed over classes.
type flowSet struct {
	from, to []*HostPlan
	n        [][]int // [from][to]
}

func (p *Plan) flows(group string) *flowSet {
	hosts := p.hostByName()
	fs := &flowSet{}
	fi, ti := map[string]int{}, map[string]int{}
	for _, h := range p.groupHosts(group) {
		if h.Out > 0 {
			fi[h.Name] = len(fs.from)
			fs.from = append(fs.from, h)
		}
		if h.In > 0 {
			ti[h.Name] = len(fs.to)
			fs.to = append(fs.to, h)
		}
	}
	fs.n = make([][]int, len(fs.from))
	for i := range fs.n {
		fs.n[i] = make([]int, len(fs.to))
	}
	for _, m := range p.Moves {
		if hosts[m.From].Group != group {
			continue
		}
		fs.n[fi[m.From]][ti[m.To]] += m.Count
	}
	return fs
}

// sankey draws the flows: senders on the left, receivers on the right,
// bands as wide as the number of users.
func (fs *flowSet) sankey() string {
	total := 0
	for _, row := range fs.n {
		for _, v := range row {
			total += v
		}
	}
	const gap, width, top = 3.0, 760.0, 8.0
	longest := 4
	for _, h := range append(append([]*HostPlan{}, fs.from...), fs.to...) {
		longest = max(longest, len(h.Name)+1+len(strconv.Itoa(max(h.Out, h.In))))
	}
	labelW := 16 + 6.2*float64(longest)
	x0, x1 := labelW, width-labelW
	slots := float64(max(len(fs.from), len(fs.to)))
	plotH := math.Max(160, 16*slots)
	outs := make([]int, len(fs.from))
	ins := make([]int, len(fs.to))
	for i, row := range fs.n {
		for j, v := range row {
			outs[i] += v
			ins[j] += v
		}
	}
	// Every node is at least minH tall so that its label has room; the
	// scale shrinks to make room for the padding.
	const minH = 11.0
	scaleFor := func(sizes []int) float64 {
		sc := (plotH - gap*float64(len(sizes))) / float64(total)
		for range 4 {
			small, rest := 0, 0
			for _, s := range sizes {
				if float64(s)*sc < minH {
					small++
				} else {
					rest += s
				}
			}
			if rest == 0 {
				break
			}
			sc = math.Max(0.0001, (plotH-gap*float64(len(sizes))-minH*float64(small))/float64(rest))
		}
		return sc
	}
	scale := math.Min(scaleFor(outs), scaleFor(ins))
	nodeH := func(n int) float64 { return math.Max(minH, float64(n)*scale) }
	height := plotH + 2*top
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g">`, width, height, width, height)
	fy := make([]float64, len(fs.from))
	ty := make([]float64, len(fs.to))
	place := func(ys []float64, sizes []int) {
		used := 0.0
		for _, s := range sizes {
			used += nodeH(s) + gap
		}
		y := top + math.Max(0, plotH-used)/2
		for i, s := range sizes {
			ys[i] = y
			y += nodeH(s) + gap
		}
	}
	place(fy, outs)
	place(ty, ins)
	// Bands, each source in its own hue, in destination order.
	fOff := slices.Clone(fy)
	tOff := slices.Clone(ty)
	xm := (x0 + x1) / 2
	for i, row := range fs.n {
		hue := float64(i) * 360 / float64(len(fs.from))
		for j, v := range row {
			if v == 0 {
				continue
			}
			h := float64(v) * scale
			a0, a1 := fOff[i], fOff[i]+h
			b0, b1 := tOff[j], tOff[j]+h
			fOff[i], tOff[j] = a1, b1
			fmt.Fprintf(&b, `<path d="M%.1f %.2fC%.1f %.2f %.1f %.2f %.1f %.2fL%.1f %.2fC%.1f %.2f %.1f %.2f %.1f %.2fZ" fill="hsl(%.0f,55%%,55%%)" fill-opacity="0.55"><title>%s → %s: %d</title></path>`,
				x0, a0, xm, a0, xm, b0, x1, b0, x1, b1, xm, b1, xm, a1, x0, a1, hue,
				html.EscapeString(fs.from[i].Name), html.EscapeString(fs.to[j].Name), v)
		}
	}
	for i, h := range fs.from {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.2f" width="6" height="%.2f" fill="#555"/><text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="%s">%s %d</text>`,
			x0-6, fy[i], math.Max(1, float64(outs[i])*scale), x0-9, fy[i]+nodeH(outs[i])/2+3.5, hostColour(h), html.EscapeString(h.Name), outs[i])
	}
	for j, h := range fs.to {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.2f" width="6" height="%.2f" fill="#555"/><text x="%.1f" y="%.1f" font-size="10" fill="%s">%d %s</text>`,
			x1, ty[j], math.Max(1, float64(ins[j])*scale), x1+9, ty[j]+nodeH(ins[j])/2+3.5, hostColour(h), ins[j], html.EscapeString(h.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// writeMatrix writes the flows as numbers: senders by receivers.
func (fs *flowSet) writeMatrix(w *bufio.Writer) {
	e := html.EscapeString
	most := 1
	for _, row := range fs.n {
		for _, v := range row {
			most = max(most, v)
		}
	}
	w.WriteString(`<div class="scroll"><table><tr><th class="l">from \ to</th>`)
	for _, h := range fs.to {
		fmt.Fprintf(w, `<th>%s</th>`, e(h.Name))
	}
	w.WriteString(`<th>out</th></tr>`)
	cols := make([]int, len(fs.to))
	for i, h := range fs.from {
		fmt.Fprintf(w, `<tr><th class="l">%s</th>`, e(h.Name))
		sum := 0
		for j, v := range fs.n[i] {
			sum += v
			cols[j] += v
			if v == 0 {
				w.WriteString(`<td></td>`)
				continue
			}
			fmt.Fprintf(w, `<td style="background:%s">%d</td>`, heatBlue(float64(v)/float64(most)), v)
		}
		fmt.Fprintf(w, `<th>%d</th></tr>`, sum)
	}
	w.WriteString(`<tr><th class="l">in</th>`)
	total := 0
	for _, c := range cols {
		total += c
		fmt.Fprintf(w, `<th>%d</th>`, c)
	}
	fmt.Fprintf(w, `<th>%d</th></tr></table></div>`+"\n", total)
}

func heatBlue(v float64) string {
	a := 0.12 + 0.5*v
	return fmt.Sprintf("rgba(47,109,181,%.2f)", a)
}

func (p *Plan) writeReasons(w *bufio.Writer) {
	e := html.EscapeString
	w.WriteString("<h2>Why</h2>\n<ul>")
	for _, r := range p.Reasons {
		if r.Host != "" {
			fmt.Fprintf(w, "<li><b>%s</b>: %s</li>", e(r.Host), e(r.Text))
		} else {
			fmt.Fprintf(w, "<li>%s</li>", e(r.Text))
		}
	}
	w.WriteString("</ul>\n")
	if len(p.Unmoved) == 0 {
		return
	}
	const shown = 200
	fmt.Fprintf(w, "<h2>Never moved (%d)</h2>\n<p>Users whose status is not ok, or whose home no host holds, stay where they are.</p>\n", len(p.Unmoved))
	w.WriteString(`<div class="scroll"><table><tr><th class="l">user</th><th class="l">host</th><th class="l">status</th></tr>`)
	for i, u := range p.Unmoved {
		if i == shown {
			break
		}
		fmt.Fprintf(w, `<tr><td class="l">%s</td><td class="l">%s</td><td class="l">%s</td></tr>`, e(u.User), e(u.Host), e(u.Status))
	}
	w.WriteString("</table></div>\n")
	if len(p.Unmoved) > shown {
		fmt.Fprintf(w, "<p>… and %d more; <code>maildist plan --json</code> lists them all.</p>\n", len(p.Unmoved)-shown)
	}
}
