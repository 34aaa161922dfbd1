package plan

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
)

// wellFormed fails unless s is well-formed XML.
func wellFormed(t *testing.T, what, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v", what, err)
		}
	}
}

func TestReportPictures(t *testing.T) {
	hosts, users := skewedCluster(3, 3000, true)
	hosts[2].Name = `b<&>"p`
	for i := range users {
		if users[i].Host == "bp03" {
			users[i].Host = hosts[2].Name
		}
	}
	users = append(users, cluster.User{Name: "nohome", Status: cluster.StatusOK})
	p, err := Make(users, hosts, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var svg bytes.Buffer
	if err := p.WriteSVG(&svg, "a <plan> & more"); err != nil {
		t.Fatal(err)
	}
	wellFormed(t, "the SVG", svg.String())

	var page bytes.Buffer
	if err := p.WriteHTML(&page, "a <plan> & more"); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	n := 0
	for rest := html; ; n++ {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		wellFormed(t, "a picture of the report", rest[i:i+j+len("</svg>")])
		rest = rest[i+j:]
	}
	// Three bar charts a pool, two heat maps, a flow picture a pool that moves.
	if n < 3*3+2+3 {
		t.Errorf("report has %d pictures", n)
	}
	for _, want := range []string{"b&lt;&amp;&gt;&#34;p", "a &lt;plan&gt; &amp; more", "✓ ", "nohome", StatusNoHost, "cg02</b>: accept_new = false"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(html, `b<&>"p`) {
		t.Error("a host name went into the page unescaped")
	}
}
