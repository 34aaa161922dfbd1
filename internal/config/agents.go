package config

import "time"

// TLS is the coordinator's certificate, for hosts reached through their
// agents (a host with agent = "https://…"). Made by `maildist ca`.
type TLS struct {
	CA   string // the cluster CA's certificate, absolute
	Cert string // this coordinator's certificate (role coordinator)
	Key  string // its key; must not be readable by others
}

// Agents configures how a coordinator works with agents.
type Agents struct {
	// Timeout bounds a question asked of every agent at once (is the
	// user live?): an agent that does not answer in time makes the check
	// fail closed.
	Timeout time.Duration
	// Compress is how trees go between hosts: "auto" (when it pays),
	// "zstd" or "none".
	Compress string
}

// tlsFile mirrors the [tls] table.
type tlsFile struct {
	CA   string `toml:"ca"`
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// agentsFile mirrors the [agents] table.
type agentsFile struct {
	Timeout  string `toml:"timeout"`
	Compress string `toml:"compress"`
}

// agents validates [tls] and [agents]: hosts with an agent (agentKey is
// the key of the first) need all of [tls].
func (v *validator) agents(t *tlsFile, a *agentsFile, agentKey string) (TLS, Agents) {
	tl := TLS{CA: v.rel(t.CA), Cert: v.rel(t.Cert), Key: v.rel(t.Key)}
	given := 0
	for _, s := range []string{t.CA, t.Cert, t.Key} {
		if s != "" {
			given++
		}
	}
	switch {
	case agentKey != "" && given == 0:
		v.key(agentKey, "hosts with an agent need [tls] ca, cert and key (the coordinator's certificate: maildist ca issue DIR NAME --role coordinator)")
	case agentKey != "" && given < 3:
		v.key("tls", "hosts with an agent need [tls] ca, cert and key (the coordinator's certificate: maildist ca issue DIR NAME --role coordinator)")
	case given > 0 && given < 3:
		v.key("tls", "[tls] needs ca, cert and key together")
	}
	ag := Agents{Compress: a.Compress}
	ag.Timeout = v.duration("agents.timeout", a.Timeout, 5*time.Second)
	if a.Timeout != "" && ag.Timeout == 0 {
		v.key("agents.timeout", "agents.timeout must be more than 0")
	}
	switch a.Compress {
	case "":
		ag.Compress = "auto"
	case "auto", "zstd", "none":
	default:
		v.key("agents.compress", "agents.compress %q: want auto, zstd or none", a.Compress)
	}
	return tl, ag
}
