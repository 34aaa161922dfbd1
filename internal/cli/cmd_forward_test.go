package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/forward"
)

// forwardFixture is a cluster of three hosts, a passwd-file, a map file
// with the site's own lines and a fake postmap that records its arguments.
type forwardFixture struct {
	dir, config, mapPath, postmapLog string
}

// The site's own lines, kept byte for byte: a comment, a CRLF line, a
// continuation and a key that one of alice's entries would repeat.
const forwardSite = "# site aliases\n" +
	"postmaster@example.edu\troot\r\n" +
	"list@example.edu alice,\n" +
	"\tbob\n" +
	"\n" +
	"alice@cg01.example.edu alice-archive@example.edu\n"

func newForwardFixture(t *testing.T, forwardTable string) *forwardFixture {
	t.Helper()
	f := &forwardFixture{dir: t.TempDir()}
	f.mapPath = filepath.Join(f.dir, "postfix", "maildist-forward")
	f.postmapLog = filepath.Join(f.dir, "postmap.log")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Dir(f.mapPath), 0o755))
	must(os.WriteFile(f.mapPath, []byte(forwardSite), 0o640))
	script := filepath.Join(f.dir, "postmap")
	must(os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+f.postmapLog+"\n"), 0o755))
	passwd := "alice:x:5001:5001::/bp17/alice:/bin/sh\n" +
		"bob:x:5002:5002::/bp04/bob:/bin/sh\n" +
		"dave:x:5004:5004::/home/dave:/bin/sh\n"
	must(os.WriteFile(filepath.Join(f.dir, "passwd"), []byte(passwd), 0o644))
	if forwardTable == "" {
		forwardTable = "[forward]\nmap = \"postfix/maildist-forward\"\npostmap = [\"" + script + "\", \"hash:postfix/maildist-forward\"]\n"
	}
	conf := `domain = "example.edu"
[directory]
path = "passwd"
[activity]
source = "none"
[delivery]
stub = "none"
` + forwardTable + `
[[host]]
name = "bp04"
root = "/bp04"
fsroot = "cluster/bp04"
[[host]]
name = "bp17"
root = "/bp17"
fsroot = "cluster/bp17"
[[host]]
name = "cg01"
root = "/cg01"
fsroot = "cluster/cg01"
`
	f.config = filepath.Join(f.dir, "maildist.toml")
	must(os.WriteFile(f.config, []byte(conf), 0o644))
	return f
}

func (f *forwardFixture) read(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.mapPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestForwardRoundTrip(t *testing.T) {
	f := newForwardFixture(t, "")
	code, out, errs := runMain("--config", f.config, "forward", "alice", "bob")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"alice: 1 entries: mail for alice at any other host goes to alice@bp17.example.edu (now on bp17)",
		"bob: 2 entries",
		"wrote " + f.mapPath + ": maildist's section has 3 entries for 2 users; 6 other lines kept as they were",
		"ran " + filepath.Join(f.dir, "postmap") + " hash:postfix/maildist-forward",
		"undo: maildist forward --remove alice bob",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// alice@cg01 is the site's: its line wins, and the operator is told.
	if !strings.Contains(errs, "alice: no entry for alice@cg01.example.edu: "+f.mapPath+":6 of the site has that key already") {
		t.Errorf("stderr:\n%s", errs)
	}
	first := f.read(t)
	want := forwardSite + forward.BeginPrefix
	if !strings.HasPrefix(first, want) {
		t.Fatalf("the site's lines changed or the section is not after them:\n%s", first)
	}
	for _, line := range []string{
		"# user alice\nalice@bp04.example.edu\talice@bp17.example.edu\n",
		"# user bob\nbob@bp17.example.edu\tbob@bp04.example.edu\nbob@cg01.example.edu\tbob@bp04.example.edu\n# END maildist forward\n",
	} {
		if !strings.Contains(first, line) {
			t.Errorf("map lacks %q:\n%s", line, first)
		}
	}
	if fi, err := os.Stat(f.mapPath); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the map's mode was not kept: %v %v", fi.Mode(), err)
	}

	// Twice: the same bytes, postmap run again.
	code, out, errs = runMain("--config", f.config, "forward", "bob", "alice")
	if code != ExitOK || f.read(t) != first || !strings.Contains(out, "unchanged: "+f.mapPath) {
		t.Fatalf("second run: exit %d\n%s\n%s\nmap:\n%s", code, out, errs, f.read(t))
	}
	log, _ := os.ReadFile(f.postmapLog)
	if string(log) != "hash:postfix/maildist-forward\nhash:postfix/maildist-forward\n" {
		t.Errorf("postmap was run with:\n%s", log)
	}

	// --list, as text and as JSON.
	code, out, _ = runMain("--config", f.config, "forward", "--list")
	if code != ExitOK || !strings.Contains(out, "bob    bob@cg01.example.edu    bob@bp04.example.edu") || !strings.Contains(out, "3 entries for 2 users") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	code, out, _ = runMain("--config", f.config, "--json", "forward", "--list")
	var list struct {
		Map     string
		Entries []forward.Entry
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != ExitOK || len(list.Entries) != 3 || list.Map != f.mapPath {
		t.Errorf("list --json: exit %d %v\n%s", code, err, out)
	}

	// --remove takes the section out: the file is the site's again.
	code, out, errs = runMain("--config", f.config, "forward", "--remove", "alice", "bob", "zed")
	if code != ExitOK || !strings.Contains(out, "bob: 2 entries removed") || !strings.Contains(errs, "zed: no entries") {
		t.Fatalf("remove: exit %d\n%s\n%s", code, out, errs)
	}
	if got := f.read(t); got != forwardSite {
		t.Fatalf("after --remove:\n%q\nwant\n%q", got, forwardSite)
	}
}

func TestForwardBadUsers(t *testing.T) {
	f := newForwardFixture(t, "[forward]\nmap = \"postfix/maildist-forward\"\nto = \"domain\"\n")
	code, out, errs := runMain("--config", f.config, "--json", "forward", "carol", "bob", "dave")
	if code != ExitPartial {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitPartial, out, errs)
	}
	for _, want := range []string{
		"carol: not forwarded: not in the directory (unknown user)",
		"dave: not forwarded: home /home/dave is under no host's root",
		"2 of 3 users not forwarded",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	var rep forwardReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Done) != 1 || rep.Done[0].To != "bob@example.edu" || len(rep.Skipped) != 2 || rep.Entries != 2 || !rep.Changed {
		t.Errorf("report = %+v", rep)
	}

	// A bad name is named and skipped; nothing is written.
	before := f.read(t)
	if code, _, errs := runMain("--config", f.config, "forward", "../etc"); code != ExitPartial || f.read(t) != before ||
		!strings.Contains(errs, `../etc: not forwarded: user "../etc": not a plain user name: contains '/'`) {
		t.Errorf("bad name: exit %d: %s", code, errs)
	}

	// A line in maildist's section that maildist did not write: refused,
	// the file untouched.
	broken := strings.Replace(before, "# user bob\n", "# user bob\nsomeone@x.edu elsewhere@y.edu\n", 1)
	if err := os.WriteFile(f.mapPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runMain("--config", f.config, "forward", "--remove", "bob")
	if code != ExitError || !strings.Contains(errs, "a line maildist did not write") || f.read(t) != broken {
		t.Errorf("broken section: exit %d\n%s", code, errs)
	}
}

func TestForwardMapErrors(t *testing.T) {
	f := newForwardFixture(t, "[forward]\nmap = \"nowhere/maildist-forward\"\n")
	code, _, errs := runMain("--config", f.config, "forward", "bob")
	if code != ExitError || !strings.Contains(errs, "write forward map: ") || !strings.Contains(errs, filepath.Join(f.dir, "nowhere")) {
		t.Errorf("unwritable map: exit %d\n%s", code, errs)
	}

	f = newForwardFixture(t, "# no [forward]\n")
	code, _, errs = runMain("--config", f.config, "forward", "bob")
	if code != ExitError || !strings.Contains(errs, "has no forward.map") || !strings.Contains(errs, "hint: add [forward] map") {
		t.Errorf("no forward.map: exit %d\n%s", code, errs)
	}

	// A failing postmap: the map is written, the error named.
	f = newForwardFixture(t, "[forward]\nmap = \"postfix/maildist-forward\"\npostmap = [\"false\"]\n")
	code, _, errs = runMain("--config", f.config, "forward", "bob")
	if code != ExitError || !strings.Contains(errs, "forward.postmap: false: exit status 1") || !strings.Contains(f.read(t), "# user bob") {
		t.Errorf("failing postmap: exit %d\n%s", code, errs)
	}
}

// --refresh follows users who moved since their entries were written.
func TestForwardRefresh(t *testing.T) {
	f := newForwardFixture(t, "[forward]\nmap = \"postfix/maildist-forward\"\n")
	if code, out, errs := runMain("--config", f.config, "forward", "bob"); code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	passwd := "alice:x:5001:5001::/bp17/alice:/bin/sh\nbob:x:5002:5002::/cg01/bob:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(f.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runMain("--config", f.config, "forward", "--refresh")
	if code != ExitOK || !strings.Contains(out, "bob: 2 entries") {
		t.Fatalf("refresh: exit %d\n%s\n%s", code, out, errs)
	}
	got := f.read(t)
	if !strings.Contains(got, "bob@bp04.example.edu\tbob@cg01.example.edu\nbob@bp17.example.edu\tbob@cg01.example.edu\n") || strings.Contains(got, "bob@cg01.example.edu\t") {
		t.Errorf("after refresh:\n%s", got)
	}
}
