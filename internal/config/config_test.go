package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
domain = "example.edu"
state_dir = "state"
home_layout = "{root}/{hash2}/{user}"

[directory]
type = "passwd"
path = "etc/passwd"

[activity]
source = "none"

[delivery]
hold = "rename"
stub = "forward"
flush = ["sendmail", "-q"]

[survey]
logs = ["logs/dovecot.log*"]

[[host]]
name = "bp04"
pool = "bp"
root = "/bp04"
fsroot = "cluster/bp04"

[[host]]
name = "bp17"
pool = "bp"
root = "/bp17/"
fsroot = "cluster/bp17"
weight = 2.0
accept_new = false
drain = true
`

func TestParseGood(t *testing.T) {
	c, err := Parse("/etc/maildist/maildist.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/etc/maildist/state" || c.Directory.Path != "/etc/maildist/etc/passwd" {
		t.Errorf("relative paths not resolved: %q %q", c.StateDir, c.Directory.Path)
	}
	if c.Survey.Logs[0] != "/etc/maildist/logs/dovecot.log*" {
		t.Errorf("logs = %q", c.Survey.Logs)
	}
	if len(c.Hosts) != 2 {
		t.Fatalf("hosts = %d", len(c.Hosts))
	}
	h := c.Hosts[1]
	if h.Root != "/bp17" || h.FSRoot != "/etc/maildist/cluster/bp17" || h.Weight != 2 || h.AcceptNew || !h.Drain {
		t.Errorf("host 2 = %+v", h)
	}
	if !c.Hosts[0].AcceptNew || c.Hosts[0].Weight != 1 {
		t.Errorf("defaults not applied: %+v", c.Hosts[0])
	}
	if c.Activity.Source != "none" || c.Delivery.Settle == 0 {
		t.Errorf("activity/delivery = %+v %+v", c.Activity, c.Delivery)
	}
}

// Every problem is reported at once, each at its line.
func TestParseReportsAllProblems(t *testing.T) {
	bad := `domain = "example.edu"
home_layout = "{root}/{nope}/{user}"
colour = "blue"

[directory]
type = "ldap"

[activity]
source = "finger"

[delivery]
hold = "glue"
stub = "forward"

[[host]]
name = "bp04"
root = "bp04"
weight = -1.0

[[host]]
name = "bp04"
root = "/bp05"

[[host]]
name = "bp06"
root = "/bp06"
`
	_, err := Parse("/x/maildist.toml", []byte(bad))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := []string{
		"/x/maildist.toml:2: home_layout",
		"/x/maildist.toml:3: unknown key \"colour\"",
		"/x/maildist.toml:6: directory.type \"ldap\"",
		"/x/maildist.toml:9: activity.source \"finger\"",
		"/x/maildist.toml:12: delivery.hold \"glue\"",
		"/x/maildist.toml:17: host bp04: root \"bp04\" must be an absolute",
		"/x/maildist.toml:18: host bp04: weight must not be negative",
		"/x/maildist.toml:21: host \"bp04\" is defined twice",
		// hosts without fsroot all share "/": a stub would land in the home
		"/x/maildist.toml:13: delivery.stub = \"forward\" needs each host",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse("/x/m.toml", []byte("domain = \"a\"\n\n[directory\npath = 1\n"))
	if err == nil || !strings.Contains(err.Error(), "/x/m.toml:3:") {
		t.Fatalf("err = %v, want a problem at line 3", err)
	}
	_, err = Parse("/x/m.toml", []byte("domain = 5\n[[host]]\nname='a'\nroot='/a'\n"))
	if err == nil || !strings.Contains(err.Error(), "/x/m.toml:1:") {
		t.Fatalf("err = %v, want a problem at line 1", err)
	}
}

func TestSharedFSRootAllowedWithoutStub(t *testing.T) {
	cfg := `domain = "d"
[directory]
path = "p"
[delivery]
stub = "none"
[[host]]
name = "a"
root = "/a"
[[host]]
name = "b"
root = "/b"
`
	if _, err := Parse("/x/m.toml", []byte(cfg)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAndFind(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "maildist.toml")
	if err := os.WriteFile(p, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != p {
		t.Errorf("Path = %q", c.Path)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("missing file loaded")
	}
	t.Setenv("MAILDIST_CONFIG", "/env.toml")
	if Find("") != "/env.toml" || Find("/flag.toml") != "/flag.toml" {
		t.Error("Find order wrong")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[[host]]\nname=1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("/f/m.toml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		var ps Problems
		if err != nil && errors.As(err, &ps) && len(ps) == 0 {
			t.Fatal("empty problems")
		}
	})
}
