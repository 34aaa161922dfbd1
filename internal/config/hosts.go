package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/maildist/maildist/internal/cluster"
)

// LoadHosts reads the [[host]] tables of a file: a whole maildist.toml or
// a file of hosts only (the plan command's --hosts, for a temporary
// weighting). The hosts are validated as Load validates them; the other
// sections, if any, are only checked for unknown keys.
func LoadHosts(path string) ([]*cluster.Host, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	return ParseHosts(abs, data)
}

// ParseHosts is LoadHosts over text read from path.
func ParseHosts(path string, data []byte) ([]*cluster.Host, error) {
	f, err := ParseHostFile(path, data)
	if err != nil {
		return nil, err
	}
	return f.Hosts, nil
}

// HostFile is the [[host]] tables of a file, as LoadHosts reads them,
// with the lines they are on.
type HostFile struct {
	Path  string // absolute
	Hosts []*cluster.Host
	idx   keyIndex
}

// ReadHostFile is LoadHosts keeping the lines.
func ReadHostFile(path string) (*HostFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	return ParseHostFile(abs, data)
}

// line is the line of key in the i-th [[host]] table, or of its name,
// or of the table, if the key is not in it.
func (f *HostFile) line(i int, key string) int {
	for _, k := range []string{key, "name", ""} {
		if l, ok := f.idx[strings.TrimSuffix(fmt.Sprintf("host.%d.%s", i, k), ".")]; ok {
			return l
		}
	}
	return 0
}

// has reports whether the i-th [[host]] table gives key.
func (f *HostFile) has(i int, key string) bool {
	_, ok := f.idx[fmt.Sprintf("host.%d.%s", i, key)]
	return ok
}

// CheckAgainst checks a hosts file that stands in for the config's hosts
// in one plan (plan --hosts). It may weight the hosts otherwise, drain
// more of them and keep more from new users, for a plan only: the seed's
// -m. It may not name a host the config does not have, give a host
// another root or pool, or let a host receive that the config drains or
// keeps from new users: run moves users only between the config's hosts
// and never into one the config drains, so such a plan would leave a
// todo run refuses, and one that the config keeps from new users would
// receive them. Such a file is an error rather than read as the
// stricter of the two, so that the file stays the whole truth about the
// plan made with it (plan.json names it). The problems are Problems, at
// the lines of the hosts file, each naming the config's line.
func (f *HostFile) CheckAgainst(cfg *HostFile) error {
	v := &validator{file: f.Path, idx: f.idx}
	at := map[string]int{}
	for i, h := range cfg.Hosts {
		at[h.Name] = i
	}
	where := func(i int, key string) string { return fmt.Sprintf("%s:%d", cfg.Path, cfg.line(i, key)) }
	for i, h := range f.Hosts {
		j, ok := at[h.Name]
		if !ok {
			v.at(f.line(i, "name"), "host %s is not in %s: run moves users only between the config's hosts; add it there first", h.Name, cfg.Path)
			continue
		}
		c := cfg.Hosts[j]
		if h.Root != c.Root {
			v.at(f.line(i, "root"), "host %s: root %s, but %s in %s: the config says where its homes are", h.Name, h.Root, c.Root, where(j, "root"))
		}
		if h.Pool != c.Pool {
			v.at(f.line(i, "pool"), "host %s: pool %q, but %q in %s: to balance pools together, plan with --across-pools", h.Name, h.Pool, c.Pool, where(j, "pool"))
		}
		receives := !h.Drain && h.Weight > 0 // a host of weight 0 is emptied like one that drains
		if c.Drain && receives {
			if f.has(i, "drain") {
				v.at(f.line(i, "drain"), "host %s: drain = false here, but %s drains it: run refuses moves into a draining host; give it drain = true here", h.Name, where(j, "drain"))
			} else {
				v.at(f.line(i, "name"), "host %s does not drain here (no drain = true), but %s drains it: run refuses moves into a draining host; give it drain = true here", h.Name, where(j, "drain"))
			}
		}
		if !c.AcceptNew && h.AcceptNew && receives {
			if f.has(i, "accept_new") {
				v.at(f.line(i, "accept_new"), "host %s: accept_new = true here, but %s has accept_new = false: the plan would send it new users; give it accept_new = false here", h.Name, where(j, "accept_new"))
			} else {
				v.at(f.line(i, "name"), "host %s accepts new users here (no accept_new = false), but %s has accept_new = false: the plan would send it new users; give it accept_new = false here", h.Name, where(j, "accept_new"))
			}
		}
	}
	if len(v.problems) == 0 {
		return nil
	}
	sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
	return v.problems
}

// ParseHostFile is ReadHostFile over text read from path.
func ParseHostFile(path string, data []byte) (*HostFile, error) {
	v := &validator{file: path}
	idx, perr := indexKeys(data)
	if perr != nil {
		var se *syntaxError
		if errors.As(perr, &se) {
			v.at(se.line, "syntax error: %s", se.msg)
		} else {
			v.at(0, "%v", perr)
		}
		return nil, v.problems
	}
	v.idx = idx
	var f file
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sme *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &sme):
			for _, e := range sme.Errors {
				line, _ := e.Position()
				v.at(line, "unknown key %q", strings.Join(e.Key(), "."))
			}
		case errors.As(err, &de):
			line, msg := decodeProblem(de, data, v.idx)
			v.at(line, "%s", msg)
		default:
			v.at(0, "%v", err)
		}
		if !errors.As(err, &sme) {
			return nil, v.problems
		}
	}
	// Validate the hosts alone: the rest of the file plays no part, so it
	// is replaced by settings build accepts without comment.
	only := file{Host: f.Host}
	only.Directory.Path = "-"
	only.Delivery.Stub = "none"
	only.TLS = tlsFile{CA: "-", Cert: "-", Key: "-"}
	c := v.build(&only)
	if len(v.problems) > 0 {
		sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
		return nil, v.problems
	}
	return &HostFile{Path: path, Hosts: c.Hosts, idx: idx}, nil
}
