package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// decodeProblem words a decode error of the TOML library for the person
// who wrote the file: "host bp01: weight: want a number, got a string",
// where the library says which Go struct field it could not fill. It
// returns the line and the message; a message it cannot read is passed
// on as the library wrote it.
func decodeProblem(de *toml.DecodeError, data []byte, idx keyIndex) (int, string) {
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	got, want, ok := typeMismatch(msg)
	if !ok {
		return line, msg
	}
	key := keyOnLine(idx, line, de.Key())
	if key == "" {
		return line, fmt.Sprintf("want %s, got %s", want, got)
	}
	return line, fmt.Sprintf("%s: want %s, got %s", keyWords(key, data), want, got)
}

// typeMismatch reads "cannot decode TOML string into struct field
// X.Weight of type float64" (X may be a whole struct type written out)
// and "cannot decode TOML string into []string".
func typeMismatch(msg string) (got, want string, ok bool) {
	const head = "cannot decode TOML "
	if !strings.HasPrefix(msg, head) {
		return "", "", false
	}
	rest := msg[len(head):]
	i := strings.Index(rest, " into ")
	if i < 0 {
		return "", "", false
	}
	tomlType, goType := rest[:i], rest[i+len(" into "):]
	if j := strings.LastIndex(goType, " of type "); j >= 0 && strings.HasPrefix(goType, "struct field ") {
		goType = goType[j+len(" of type "):]
	}
	return tomlWords(tomlType), goWords(goType), true
}

func tomlWords(t string) string {
	switch t {
	case "string":
		return "a string"
	case "integer":
		return "an integer"
	case "float":
		return "a number with a fraction"
	case "boolean", "bool":
		return "true or false"
	case "array":
		return "a list"
	case "table", "inline table", "array table":
		return "a table"
	case "datetime", "local datetime", "local date", "local time":
		return "a date or time"
	}
	return t
}

func goWords(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case t == "float64" || t == "float32":
		return "a number"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "[]string":
		return "a list of strings"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map[") || strings.HasPrefix(t, "struct") || strings.Contains(t, "."):
		return "a table"
	}
	return t
}

// keyOnLine finds the key path on a line: of the keys the index has
// there, one whose last part is the key the library named, if any, and
// the deepest of those (the value, not the table around it).
func keyOnLine(idx keyIndex, line int, named toml.Key) string {
	last := ""
	if len(named) > 0 {
		last = named[len(named)-1]
	}
	rank := func(k string) (bool, int) {
		return last != "" && (k == last || strings.HasSuffix(k, "."+last)), strings.Count(k, ".")
	}
	best := ""
	for k, l := range idx {
		if l != line {
			continue
		}
		if best == "" {
			best = k
			continue
		}
		m, d := rank(k)
		bm, bd := rank(best)
		if m != bm && m || m == bm && (d > bd || d == bd && k < best) {
			best = k
		}
	}
	return best
}

// keyWords writes a key path for a message: "host bp01: weight" for a key
// of the i-th [[host]] (by its name, or "host #i" if it has none), else
// the path itself.
func keyWords(key string, data []byte) string {
	parts := strings.SplitN(key, ".", 3)
	if len(parts) == 3 && parts[0] == "host" {
		if i, err := strconv.Atoi(parts[1]); err == nil {
			return hostLabel(data, i) + ": " + parts[2]
		}
	}
	return key
}

// hostLabel names the i-th [[host]] of a file as its messages do: "host
// bp01", or "host #2" without a name.
func hostLabel(data []byte, i int) string {
	var loose struct {
		Host []map[string]any `toml:"host"`
	}
	if toml.Unmarshal(data, &loose) == nil && i < len(loose.Host) {
		if name, ok := loose.Host[i]["name"].(string); ok && name != "" {
			return "host " + name
		}
	}
	return fmt.Sprintf("host #%d", i+1)
}
