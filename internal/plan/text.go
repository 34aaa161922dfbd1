package plan

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// tableLegend is the line under the plan table's header that says how to
// read it.
const tableLegend = "USERS, BYTES, CONNECT and each class cXdY: now→after (one number: unchanged)\n" +
	"SHARE: the host's weight's part of the users (plus its users never moved); GOAL: the users the plan can bring it to"

// WriteText writes the plan as the wide table the plan command prints:
// per group, per host its share and goal in users, the users, bytes and
// connect time now → after, what leaves and arrives, and its count in
// each class now → after (37→35: two leave). Classes no user is in are
// left out. Under the tables: the checks of the report, then why the plan
// looks as it does.
func (p *Plan) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	classes := p.usedClasses()
	bw.WriteString(tableLegend + "\n\n")
	for _, g := range p.Groups {
		fmt.Fprintf(bw, "%s %s: %d hosts, %d movable users, %d moves (least possible: %d)\n",
			groupWord(&g), g.Name, len(g.Hosts), g.Users, g.Moves, g.LowerBound)
		head := []string{"HOST", "FLAGS", "WEIGHT", "SHARE", "GOAL", "USERS", "BYTES", "CONNECT", "OUT", "IN"}
		for _, k := range classes {
			head = append(head, ClassAt(k).String())
		}
		rows := [][]string{head}
		for i := range p.Hosts {
			h := &p.Hosts[i]
			if h.Group != g.Name {
				continue
			}
			r := []string{h.Name, hostFlags(h), strconv.FormatFloat(h.Weight, 'g', 4, 64),
				fmt.Sprintf("%.1f", h.ShareUsers), fmt.Sprintf("%.1f", h.Goal),
				arrow(strconv.Itoa(h.Before.Users), strconv.Itoa(h.After.Users)),
				arrow(Bytes(h.Before.Bytes), Bytes(h.After.Bytes)),
				arrow(Duration(h.Before.ConnectS), Duration(h.After.ConnectS)),
				strconv.Itoa(h.Out), strconv.Itoa(h.In)}
			for _, k := range classes {
				r = append(r, change(h.Have[k], h.Want[k]))
			}
			rows = append(rows, r)
		}
		table(bw, rows, 2)
		bw.WriteByte('\n')
	}
	s := &p.Stats
	fmt.Fprintf(bw, "%d users: %d movable, %d never moved; %d moves, the least possible is %d\n",
		s.Users, s.Movable, s.Unmoved, s.Moves, s.LowerBound)
	said := map[string]bool{}
	for i, l := range p.verdictLines() {
		if i == 0 { // the moves, said just above
			continue
		}
		bw.WriteString(l.text + "\n")
		said[strings.TrimPrefix(l.text, "! ")] = true
	}
	fmt.Fprintf(bw, "classes %s; pick %s; seed %d; tolerance %d\n", p.Thresholds, p.Options.Pick, p.Options.Seed, p.Options.Tolerance)
	for _, r := range p.Reasons {
		if said[r.Text] {
			continue
		}
		if r.Host != "" {
			fmt.Fprintf(bw, "%s: %s\n", r.Host, r.Text)
		} else {
			fmt.Fprintf(bw, "%s\n", r.Text)
		}
	}
	if len(p.Unmoved) > 0 {
		const shown = 12
		var names []string
		for i, u := range p.Unmoved {
			if i == shown {
				names = append(names, fmt.Sprintf("and %d more (report.html lists 200, --json all)", len(p.Unmoved)-shown))
				break
			}
			names = append(names, fmt.Sprintf("%s (%s, %s)", u.User, orNone(u.Host), u.Status))
		}
		fmt.Fprintf(bw, "never moved: %s\n", strings.Join(names, ", "))
	}
	return bw.Flush()
}

func hostFlags(h *HostPlan) string {
	var f []string
	if h.Drain {
		f = append(f, "drain")
	}
	if !h.AcceptNew {
		f = append(f, "no-new")
	}
	if len(f) == 0 {
		return "-"
	}
	return strings.Join(f, ",")
}

func arrow(a, b string) string {
	if a == b {
		return a
	}
	return a + "→" + b
}

// change writes a count now and after: "37→35", or "4" if it stays.
func change(have, want int) string {
	if want == have {
		return strconv.Itoa(want)
	}
	return strconv.Itoa(have) + "→" + strconv.Itoa(want)
}

// usedClasses lists the classes some host holds a user of, now or after.
func (p *Plan) usedClasses() []int {
	var used [NumClasses]bool
	for i := range p.Hosts {
		for k := range NumClasses {
			used[k] = used[k] || p.Hosts[i].Have[k] > 0 || p.Hosts[i].Want[k] > 0
		}
	}
	var ks []int
	for k, u := range used {
		if u {
			ks = append(ks, k)
		}
	}
	return ks
}

// table writes rows as columns padded to their widest cell, text to the
// left and numbers to the right.
func table(w *bufio.Writer, rows [][]string, gap int) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			n := len([]rune(c))
			if i >= len(width) {
				width = append(width, n)
			} else if n > width[i] {
				width[i] = n
			}
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				line.WriteString(strings.Repeat(" ", gap))
			}
			if i < 2 {
				line.WriteString(c + pad)
			} else {
				line.WriteString(pad + c)
			}
		}
		w.WriteString(strings.TrimRight(line.String(), " "))
		w.WriteByte('\n')
	}
}

// Bytes writes a size with a binary unit: 512, 1.5K, 23M, 4.0G.
func Bytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10)
	}
	f := float64(n)
	u := -1
	for (f >= 1024 || f <= -1024) && u < len(units)-1 {
		f /= 1024
		u++
	}
	if f < 10 && f > -10 {
		return fmt.Sprintf("%.1f%c", f, units[u])
	}
	return fmt.Sprintf("%.0f%c", f, units[u])
}

// Duration writes seconds of connect time briefly: 45s, 12m, 3.5h, 420h.
func Duration(s int64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 100*3600:
		return fmt.Sprintf("%.1fh", float64(s)/3600)
	}
	return fmt.Sprintf("%dh", s/3600)
}
