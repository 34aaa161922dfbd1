package config

// Forward says where `maildist forward` keeps the entries that send mail
// addressed to a user at one host (user@HOST.domain) on to the user's
// current host.
type Forward struct {
	// Map is the MTA lookup table maildist keeps its own section in
	// (Postfix virtual(5) "key value" lines), absolute. Empty: the forward
	// command is not configured.
	Map string
	// Postmap, if set, is run after the map is written (e.g. ["postmap",
	// "hash:/etc/postfix/maildist-forward"]), as given.
	Postmap []string
	// To is where forwarded mail goes: "host" (user@CURHOST.domain, the
	// default) or "domain" (user@domain).
	To string
}

// Where forwarded mail goes.
const (
	ForwardToHost   = "host"
	ForwardToDomain = "domain"
)

// forwardFile mirrors the [forward] table.
type forwardFile struct {
	Map     string   `toml:"map"`
	Postmap []string `toml:"postmap"`
	To      string   `toml:"to"`
}

// forward validates the [forward] table. Every host address it writes is
// user@HOST.domain, so a map needs the domain.
func (v *validator) forward(f *forwardFile, domain string) Forward {
	fw := Forward{Map: v.rel(f.Map), Postmap: f.Postmap, To: f.To}
	switch f.To {
	case "":
		fw.To = ForwardToHost
	case ForwardToHost, ForwardToDomain:
	default:
		v.key("forward.to", "forward.to %q: want host or domain", f.To)
	}
	if f.Map == "" {
		if len(f.Postmap) > 0 {
			v.key("forward.postmap", "forward.postmap needs forward.map (the file it rebuilds)")
		}
		if f.To != "" {
			v.key("forward.to", "forward.to needs forward.map")
		}
		return fw
	}
	if domain == "" {
		v.key("forward.map", "forward.map needs domain (the entries are user@HOST.domain)")
	}
	for i, a := range f.Postmap {
		if a == "" {
			v.key("forward.postmap", "forward.postmap: argument %d is empty", i+1)
			break
		}
	}
	return fw
}
