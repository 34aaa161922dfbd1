package config

import (
	"strings"
	"testing"
	"time"
)

const agentHosts = `domain = "example.edu"

[directory]
path = "etc/passwd"
%s
[[host]]
name = "bp04"
root = "/bp04"
agent = "https://bp04.example.edu:7447"

[[host]]
name = "bp05"
root = "/bp05"
fsroot = "cluster/bp05"
`

func TestAgentsAndTLS(t *testing.T) {
	text := strings.Replace(agentHosts, "%s", `
[tls]
ca = "tls/ca.crt"
cert = "tls/runner.crt"
key = "/etc/maildist/runner.key"

[agents]
timeout = "2s"
compress = "zstd"
`, 1)
	c, err := Parse("/etc/maildist/maildist.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS != (TLS{CA: "/etc/maildist/tls/ca.crt", Cert: "/etc/maildist/tls/runner.crt", Key: "/etc/maildist/runner.key"}) {
		t.Errorf("tls = %+v", c.TLS)
	}
	if c.Agents.Timeout != 2*time.Second || c.Agents.Compress != "zstd" {
		t.Errorf("agents = %+v", c.Agents)
	}
	if c.Hosts[0].Agent == "" || c.Hosts[1].Agent != "" {
		t.Errorf("hosts = %+v %+v", c.Hosts[0], c.Hosts[1])
	}
	// Defaults.
	c, err = Parse("/x/maildist.toml", []byte(strings.Replace(agentHosts, "%s", "[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agents.Timeout != 5*time.Second || c.Agents.Compress != "auto" {
		t.Errorf("defaults = %+v", c.Agents)
	}
}

func TestAgentsProblems(t *testing.T) {
	for _, tc := range []struct {
		name, insert, want string
		line               int
	}{
		{"no tls", "", "need [tls] ca, cert and key", 9},
		{"half tls", "[tls]\nca = \"ca.crt\"\n", "need [tls] ca, cert and key", 5},
		{"bad compress", "[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[agents]\ncompress = \"lz4\"\n", `agents.compress "lz4"`, 10},
		{"bad timeout", "[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n[agents]\ntimeout = \"soon\"\n", "agents.timeout", 10},
		{"unknown key", "[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\npassword = \"x\"\n", `unknown key "tls.password"`, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/x/maildist.toml", []byte(strings.Replace(agentHosts, "%s", tc.insert, 1)))
			ps, ok := err.(Problems)
			if !ok {
				t.Fatalf("err = %v", err)
			}
			for _, p := range ps {
				if strings.Contains(p.Msg, tc.want) {
					if p.Line != tc.line {
						t.Errorf("at line %d, want %d: %v", p.Line, tc.line, p)
					}
					return
				}
			}
			t.Errorf("no problem says %q: %v", tc.want, ps)
		})
	}
	// A hosts file for plan --hosts needs no [tls].
	if _, err := ParseHosts("/x/hosts.toml", []byte(strings.Replace(agentHosts, "%s", "", 1))); err != nil {
		t.Errorf("hosts file: %v", err)
	}
}
