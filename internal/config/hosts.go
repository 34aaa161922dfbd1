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
	return c.Hosts, nil
}
