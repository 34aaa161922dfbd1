package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex maps a key path to the line it is on. Arrays of tables are
// numbered from 0: "host.2.weight" is the weight of the third [[host]].
type keyIndex map[string]int

func (k keyIndex) line(key string) int {
	for key != "" {
		if l, ok := k[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func indexKeys(data []byte) (idx keyIndex, err error) {
	defer func() {
		// The parser is "unstable" by name; a panic in it must not take
		// the whole program down with a config typo.
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot parse: %v", r)
		}
	}()
	idx = keyIndex{}
	arrays := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name, line := keyOf(&p, e.Key())
			if e.Kind == unstable.ArrayTable {
				n := arrays[name]
				arrays[name] = n + 1
				name = fmt.Sprintf("%s.%d", name, n)
			}
			prefix = name
			idx[name] = line
		case unstable.KeyValue:
			name, line := keyOf(&p, e.Key())
			if prefix != "" {
				name = prefix + "." + name
			}
			idx[name] = line
		}
	}
	if err := p.Error(); err != nil {
		var pe *unstable.ParserError
		if asParserError(err, &pe) {
			line := 0
			if len(pe.Highlight) > 0 {
				line = p.Shape(p.Range(pe.Highlight)).Start.Line
			}
			return nil, &syntaxError{line: line, msg: pe.Message}
		}
		return nil, err
	}
	return idx, nil
}

func keyOf(p *unstable.Parser, it unstable.Iterator) (string, int) {
	var parts []string
	line := 0
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if line == 0 && n.Raw.Length > 0 {
			line = p.Shape(n.Raw).Start.Line
		}
	}
	return strings.Join(parts, "."), line
}

// syntaxError is a TOML syntax error at a line.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func asParserError(err error, target **unstable.ParserError) bool {
	pe, ok := err.(*unstable.ParserError)
	if ok {
		*target = pe
	}
	return ok
}
