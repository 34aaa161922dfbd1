package config

import (
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
