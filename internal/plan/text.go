package plan

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteText writes the plan as the wide table the plan command prints:
// per group, per host the users, bytes and connect time now → after, the
// host's share, what leaves and arrives, and its count in each class
// after the plan with the change (35-2: two leave, 35 stay). Classes no
// user is in are left out.
func (p *Plan) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	classes := p.usedClasses()
	for _, g := range p.Groups {
		fmt.Fprintf(bw, "%s %s: %d hosts, %d movable users, %d moves (least possible: %d)\n",
			groupWord(&g), g.Name, len(g.Hosts), g.Users, g.Moves, g.LowerBound)
		head := []string{"HOST", "FLAGS", "WEIGHT", "SHARE", "USERS", "BYTES", "CONNECT", "OUT", "IN"}
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
				fmt.Sprintf("%.1f%%", 100*h.Share),
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
	fmt.Fprintf(bw, "furthest any host is from its share in a class: %.1f users now, %.1f after\n", s.WorstBefore, s.WorstAfter)
	fmt.Fprintf(bw, "furthest any host's total is from its share: %.1f users now, %.1f after\n", s.WorstTotalBefore, s.WorstTotalAfter)
	fmt.Fprintf(bw, "classes %s; pick %s; seed %d; tolerance %d\n", p.Thresholds, p.Options.Pick, p.Options.Seed, p.Options.Tolerance)
	for _, r := range p.Reasons {
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

func change(have, want int) string {
	switch {
	case want > have:
		return fmt.Sprintf("%d+%d", want, want-have)
	case want < have:
		return fmt.Sprintf("%d-%d", want, have-want)
	}
	return strconv.Itoa(want)
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
