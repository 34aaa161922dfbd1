package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHosts(t *testing.T) {
	hosts, err := ParseHosts("/etc/maildist/weights.toml", []byte(`
[[host]]
name = "bp04"
pool = "bp"
root = "/bp04"
weight = 2.5

[[host]]
name = "bp17"
pool = "bp"
root = "/bp17"
accept_new = false
drain = true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Weight != 2.5 || !hosts[0].AcceptNew || hosts[1].AcceptNew || !hosts[1].Drain {
		t.Fatalf("hosts = %+v %+v", hosts[0], hosts[1])
	}

	// A whole config works too, and only its hosts count.
	hosts, err = ParseHosts("/etc/maildist/maildist.toml", []byte(good))
	if err != nil || len(hosts) != 2 || hosts[1].Name != "bp17" {
		t.Fatalf("whole config: %v %v", hosts, err)
	}

	_, err = ParseHosts("/w.toml", []byte("[[host]]\nname = \"a\"\nroot = \"/a\"\nweight = -1\n\n[[host]]\nname = \"a\"\nroot = \"/b\"\nwieght = 2\n"))
	for _, want := range []string{"/w.toml:4: host a: weight must not be negative", `/w.toml:9: unknown key "host.wieght"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	_, err = ParseHosts("/w.toml", []byte("[[host]]\nname = \"a\"\nroot = \"/a\"\n\n[[host]]\nname = \"a\"\nroot = \"/b\"\n"))
	if err == nil || !strings.Contains(err.Error(), `/w.toml:6: host "a" is defined twice`) {
		t.Errorf("duplicate host: %v", err)
	}
	if _, err := ParseHosts("/w.toml", []byte("domain = \"x\"\n")); err == nil || !strings.Contains(err.Error(), "no [[host]] tables") {
		t.Errorf("no hosts: %v", err)
	}
}

// A hosts file stands in for the config's hosts in one plan: it may
// weight them otherwise and drain more of them or stop more receiving,
// never name a host the config lacks, move a root or a pool, or let a
// host receive that the config drains or keeps from new users.
func TestHostFileAgainstConfig(t *testing.T) {
	const cfgText = `domain = "x"

[[host]]
name = "bp01"
pool = "bp"
root = "/bp01"

[[host]]
name = "bp02"
pool = "bp"
root = "/bp02"
accept_new = false

[[host]]
name = "bp03"
pool = "bp"
root = "/bp03"
drain = true
`
	cfg, err := ParseHostFile("/etc/maildist.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	check := func(text string) error {
		t.Helper()
		f, err := ParseHostFile("/w.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return f.CheckAgainst(cfg)
	}

	// Other weights, draining more, stopping more: fine.
	if err := check(`
[[host]]
name = "bp01"
pool = "bp"
root = "/bp01"
weight = 3
accept_new = false

[[host]]
name = "bp02"
pool = "bp"
root = "/bp02/"
accept_new = false
drain = true

[[host]]
name = "bp03"
pool = "bp"
root = "/bp03"
weight = 0
drain = true
`); err != nil {
		t.Errorf("a stricter hosts file is refused: %v", err)
	}

	err = check(`
[[host]]
name = "bp01"
pool = "cg"
root = "/bp01"

[[host]]
name = "bp02"
pool = "bp"
root = "/srv/bp02"

[[host]]
name = "bp03"
pool = "bp"
root = "/bp03"
drain = false

[[host]]
name = "bp99"
pool = "bp"
root = "/bp99"
`)
	if err == nil {
		t.Fatal("a hosts file at odds with the config is taken")
	}
	for _, want := range []string{
		`/w.toml:4: host bp01: pool "cg", but "bp" in /etc/maildist.toml:5`,
		`/w.toml:10: host bp02: root /srv/bp02, but /bp02 in /etc/maildist.toml:11`,
		`/w.toml:8: host bp02 accepts new users here (no accept_new = false), but /etc/maildist.toml:12 has accept_new = false`,
		`/w.toml:16: host bp03: drain = false here, but /etc/maildist.toml:18 drains it`,
		`/w.toml:19: host bp99 is not in /etc/maildist.toml`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 5 {
		t.Errorf("want 5 problems, got %v", err)
	}
}
