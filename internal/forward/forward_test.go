package forward

import (
	"bytes"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
)

var hosts = []*cluster.Host{{Name: "bp04", Root: "/bp04"}, {Name: "bp17", Root: "/bp17"}, {Name: "cg01", Root: "/cg01"}}

func TestEntries(t *testing.T) {
	es, err := Entries("alice", hosts[1], hosts, "example.edu", config.ForwardToHost)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"alice", "alice@bp04.example.edu", "alice@bp17.example.edu"},
		{"alice", "alice@cg01.example.edu", "alice@bp17.example.edu"},
	}
	if len(es) != len(want) || es[0] != want[0] || es[1] != want[1] {
		t.Fatalf("entries = %+v, want %+v", es, want)
	}
	es, _ = Entries("alice", hosts[1], hosts, "example.edu", config.ForwardToDomain)
	if es[0].To != "alice@example.edu" {
		t.Fatalf("to domain: %+v", es)
	}
	for _, bad := range []string{"", "..", "-rf", "a/b", "alice@example.edu", "a b"} {
		if _, err := Entries(bad, hosts[0], hosts, "example.edu", config.ForwardToHost); err == nil {
			t.Errorf("user %q accepted", bad)
		}
	}
	if _, err := Entries("alice", hosts[0], hosts, "", config.ForwardToHost); err == nil {
		t.Error("no domain accepted")
	}
}

// The site's lines: comments, blank lines, a continuation line, CRLF, a
// last line without a newline, and one key that clashes with an entry.
const site = "# virtual aliases of the site\r\n" +
	"postmaster@example.edu\troot\n" +
	"\n" +
	"list@example.edu alice,\n" +
	"    bob\n" +
	"ALICE@CG01.example.edu   alice-archive@example.edu\n" +
	"# the end, no newline"

func TestRoundTrip(t *testing.T) {
	m, err := Parse("fw", []byte(site))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ForeignLines(); got != 7 {
		t.Errorf("foreign lines = %d, want 7", got)
	}
	if !bytes.Equal(m.Bytes(), []byte(site)) {
		t.Fatalf("an empty section changed the file:\n%q", m.Bytes())
	}
	alice, _ := Entries("alice", hosts[1], hosts, "example.edu", config.ForwardToHost)
	bob, _ := Entries("bob", hosts[0], hosts, "example.edu", config.ForwardToHost)
	clashes := m.Set("alice", alice)
	if len(clashes) != 1 || clashes[0].Line != 6 || clashes[0].Entry.From != "alice@cg01.example.edu" {
		t.Fatalf("clashes = %+v", clashes)
	}
	m.Set("bob", bob)
	out := m.Bytes()
	want := site + "\n" + beginLine + "\n" +
		"# user alice\n" +
		"alice@bp04.example.edu\talice@bp17.example.edu\n" +
		"# user bob\n" +
		"bob@bp17.example.edu\tbob@bp04.example.edu\n" +
		"bob@cg01.example.edu\tbob@bp04.example.edu\n" +
		endLine + "\n"
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}

	// Parsing what was written and setting the same again writes the
	// same bytes; the site's lines are still there byte for byte.
	m2, err := Parse("fw", out)
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.Entries(); len(got) != 3 || got[0].User != "alice" || got[2] != bob[1] {
		t.Fatalf("entries read back = %+v", got)
	}
	m2.Set("alice", alice)
	m2.Set("bob", bob)
	if !bytes.Equal(m2.Bytes(), out) {
		t.Fatalf("not idempotent:\n%s", m2.Bytes())
	}
	if !bytes.HasPrefix(out, []byte(site)) {
		t.Fatal("site's lines changed")
	}

	// Lines the site adds after the section stay after it; removing
	// every user takes the section out and leaves the site's lines.
	withAfter := append(append([]byte(nil), out...), "after@example.edu\tx\n"...)
	m3, err := Parse("fw", withAfter)
	if err != nil {
		t.Fatal(err)
	}
	if n := m3.Remove("alice"); n != 1 {
		t.Errorf("removed %d entries of alice", n)
	}
	if n := m3.Remove("nobody"); n != 0 {
		t.Errorf("removed %d entries of nobody", n)
	}
	m3.Remove("bob")
	if got := string(m3.Bytes()); got != site+"\nafter@example.edu\tx\n" {
		t.Fatalf("after removing everyone:\n%q", got)
	}
}

func TestParseRefuses(t *testing.T) {
	sec := func(body string) string { return "a b\n" + beginLine + "\n" + body + endLine + "\nz y\n" }
	for name, tc := range map[string]struct{ data, want string }{
		"no end":         {"a b\n" + beginLine + "\n# user x\nx@h.d x@g.d\n", "has no \"# END maildist forward\""},
		"end alone":      {"a b\n" + endLine + "\n", "fw:2: \"# END maildist forward\" without"},
		"two sections":   {sec("") + beginLine + "\n" + endLine + "\n", "fw:5: a second"},
		"foreign inside": {sec("# user x\nx@h.d x@g.d\nsomeone@h.d elsewhere\n"), "fw:5: in maildist's section, a line maildist did not write: \"someone@h.d elsewhere\""},
		"entry first":    {sec("x@h.d x@g.d\n"), "fw:3: in maildist's section, a line maildist did not write"},
		"comment inside": {sec("# user x\n# note\n"), "fw:4: in maildist's section"},
		"bad user":       {sec("# user ../x\n"), "fw:3: in maildist's section: user \"../x\""},
		"user twice":     {sec("# user x\n# user x\n"), "fw:4: in maildist's section: user x appears twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("fw", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(site))
	f.Add([]byte("a b\n" + beginLine + "\n# user x\nx@h.d x@g.d\n" + endLine + "\nz y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fw", data)
		if err != nil {
			return
		}
		// What parses renders to bytes that parse to the same entries and
		// render the same again.
		out := m.Bytes()
		m2, err := Parse("fw", out)
		if err != nil {
			t.Fatalf("rendered table does not parse: %v\n%q", err, out)
		}
		if !bytes.Equal(m2.Bytes(), out) {
			t.Fatalf("render not stable:\n%q\n%q", out, m2.Bytes())
		}
	})
}
