package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
)

// --json gives numbers to the decimals that mean something, not the
// noise of floating point (3.799999999999997).
func TestSummaryRounded(t *testing.T) {
	hosts, users := skewedCluster(5, 4000, true)
	p, err := Make(users, hosts, Options{Seed: 1, Tolerance: 1})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(p.Summary())
	if err != nil {
		t.Fatal(err)
	}
	if long := regexp.MustCompile(`"(\w+)":-?\d+\.\d{5,}`).FindAllString(string(js), 5); len(long) > 0 {
		t.Errorf("--json has long decimals: %v", long)
	}
	var s Summary
	json.Unmarshal(js, &s)
	for name, v := range map[string]float64{"worst_before": s.Stats.WorstBefore, "worst_after": s.Stats.WorstAfter,
		"worst_total_before": s.Stats.WorstTotalBefore, "worst_total_after": s.Stats.WorstTotalAfter} {
		if str := fmt.Sprint(v); len(str) > strings.Index(str+".", ".")+3 {
			t.Errorf("%s = %s: more than 2 decimals", name, str)
		}
	}
	for _, h := range s.Hosts {
		if str := fmt.Sprint(h.Goal); len(str) > strings.Index(str+".", ".")+3 {
			t.Errorf("%s: goal %s", h.Name, str)
		}
	}
}

// The SVG for mail cuts no line of its summary off at its right edge.
func TestSVGKeepsLinesInside(t *testing.T) {
	// One pool of five hosts: the narrowest picture, the longest lines.
	hosts := hostsOf("bp01 3", "bp02 1 no-new", "bp03 1", "bp04 0.5", "bp05 1 drain")
	users := byClass(hosts, classesOf("c1d1", "c2d2", "c3d3", "c4d4"), map[string][]int{
		"bp01": {30, 20, 10, 5}, "bp02": {10, 10, 10, 10}, "bp05": {3, 3, 3, 3}})
	p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds, Tolerance: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.WriteSVG(&b, "maildist plan: 07"); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	var width int
	fmt.Sscanf(svg[strings.Index(svg, `width="`):], `width="%d"`, &width)
	lines := regexp.MustCompile(`<text x="(\d+)" y="\d+" font-size="13" fill="[^"]*">([^<]*)</text>`).FindAllStringSubmatch(svg, -1)
	if len(lines) < 4 {
		t.Fatalf("the SVG has %d summary lines", len(lines))
	}
	for _, l := range lines {
		var x int
		fmt.Sscan(l[1], &x)
		text := html.UnescapeString(l[2])
		// 13px sans-serif: at most about 7px a character.
		if end := x + 7*len([]rune(text)); end > width {
			t.Errorf("a line of %d characters runs to x = %d, past the width %d: %q", len([]rune(text)), end, width, text)
		}
	}
}

// The table says how to read it: its cells are now→after, not sums.
func TestTableLegend(t *testing.T) {
	hosts := hostsOf("bp01 1", "bp02 1")
	users := byClass(hosts, classesOf("c1d1"), map[string][]int{"bp01": {4}})
	p, err := Make(users, hosts, Options{Seed: 1, Thresholds: classThresholds})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	p.WriteText(&b)
	text := b.String()
	if !strings.HasPrefix(text, tableLegend+"\n") || !strings.Contains(tableLegend, "now→after") {
		t.Errorf("the table does not open with its legend:\n%s", text)
	}
	for _, want := range []string{"bp01  -           1    2.0   2.0    4→2", "  4→2\n", "  0→2\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the table lacks %q:\n%s", want, text)
		}
	}
}

func classesOf(names ...string) []cluster.Class {
	var cs []cluster.Class
	for _, n := range names {
		c, err := cluster.ParseClass(n)
		if err != nil {
			panic(err)
		}
		cs = append(cs, c)
	}
	return cs
}
