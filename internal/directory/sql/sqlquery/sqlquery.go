package sqlquery

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Placeholder names.
const (
	User       = "user"        // the user name
	OldHome    = "old_home"    // switch: the home the entry must still hold
	NewHome    = "new_home"    // switch: the home to set
	OldHost    = "old_host"    // switch: the host of old_home
	NewHost    = "new_host"    // switch: the host of new_home
	DelayUntil = "delay_until" // switch: Unix seconds until which a proxy holds new logins
	Reason     = "reason"      // the hold marker's reason (sql.HoldReason)
)

// Kind is one of the queries a directory runs.
type Kind struct {
	Name string
	// Params are the names the query may use, in the order that $1, $2, …
	// stand for.
	Params []string
	// Required are the names the query must use.
	Required []string
	// Why says, for an error message, why Required matters.
	Why string
}

// Kinds are the queries, by config key.
var Kinds = map[string]Kind{
	"list":   {Name: "list", Params: []string{Reason}},
	"lookup": {Name: "lookup", Params: []string{User, Reason}, Required: []string{User}, Why: "it must select one user"},
	"switch": {Name: "switch", Params: []string{User, OldHome, NewHome, OldHost, NewHost, DelayUntil},
		Required: []string{User, OldHome, NewHome}, Why: "it must change only the row that still holds the old home (compare and swap)"},
	"hold":   {Name: "hold", Params: []string{User, Reason}, Required: []string{User}, Why: "it must mark one user"},
	"unhold": {Name: "unhold", Params: []string{User, Reason}, Required: []string{User}, Why: "it must clear one user"},
}

// KindNames are the config keys of Kinds, sorted.
func KindNames() []string {
	var ks []string
	for k := range Kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Style is how a driver writes a bound parameter.
type Style int

const (
	Dollar   Style = iota // $1 (PostgreSQL)
	Question              // ?1 (SQLite)
)

// Query is a parsed query.
type Query struct {
	Kind string
	Text string // as written
	// Names are the distinct placeholders used, in order of first use;
	// the rewritten query binds them as parameters 1, 2, … in this order.
	Names []string
	parts []part
}

// part is literal SQL, or a placeholder when name is set.
type part struct {
	sql  string
	name string
}

// Error is a problem with one query.
type Error struct {
	Kind string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s query: %s", e.Kind, e.Msg) }

// Parse reads a query of the given kind.
func Parse(kind, text string) (*Query, error) {
	k, ok := Kinds[kind]
	if !ok {
		return nil, &Error{kind, fmt.Sprintf("no such query; want one of %s", strings.Join(KindNames(), ", "))}
	}
	fail := func(format string, args ...any) (*Query, error) {
		return nil, &Error{kind, fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(text) == "" {
		return fail("is empty")
	}
	q := &Query{Kind: kind, Text: text}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			q.parts = append(q.parts, part{sql: lit.String()})
			lit.Reset()
		}
	}
	use := func(name string) {
		flush()
		q.parts = append(q.parts, part{name: name})
		if !slices.Contains(q.Names, name) {
			q.Names = append(q.Names, name)
		}
	}
	s := text
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'':
			// E'…' strings (PostgreSQL) take backslash escapes.
			esc := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !isIdent(s[i-2]))
			j, ok := skipQuoted(s, i, '\'', esc)
			if !ok {
				return fail("string literal at byte %d is not closed", i)
			}
			lit.WriteString(s[i:j])
			i = j
		case c == '"' || c == '`':
			j, ok := skipQuoted(s, i, c, false)
			if !ok {
				return fail("quoted name at byte %d is not closed", i)
			}
			lit.WriteString(s[i:j])
			i = j
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			lit.WriteString(s[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			j, ok := skipBlockComment(s, i)
			if !ok {
				return fail("comment at byte %d is not closed", i)
			}
			lit.WriteString(s[i:j])
			i = j
		case c == ':' && strings.HasPrefix(s[i:], "::"):
			lit.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(s) && isIdentStart(s[i+1]):
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			name := s[i+1 : j]
			if !slices.Contains(k.Params, name) {
				return fail(":%s is not a placeholder it can use; it may use %s", name, listNames(k.Params))
			}
			use(name)
			i = j
		case c == '$' && i+1 < len(s) && isDigit(s[i+1]):
			if i > 0 && isIdent(s[i-1]) {
				// part of a name like a$1
				lit.WriteByte(c)
				i++
				continue
			}
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j < len(s) && isIdent(s[j]) {
				return fail("%s at byte %d runs into a name", s[i:j+1], i)
			}
			n, err := strconv.Atoi(s[i+1 : j])
			if err != nil || n < 1 || n > len(k.Params) {
				return fail("$%s: it has parameters $1 to $%d (%s); prefer the names", s[i+1:j], len(k.Params), listNames(k.Params))
			}
			use(k.Params[n-1])
			i = j
		case c == '$' && (i == 0 || !isIdent(s[i-1])):
			// A dollar quote: $$…$$ or $tag$…$tag$.
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			if j < len(s) && s[j] == '$' {
				tag := s[i : j+1]
				end := strings.Index(s[j+1:], tag)
				if end < 0 {
					return fail("dollar quote %s at byte %d is not closed", tag, i)
				}
				stop := j + 1 + end + len(tag)
				lit.WriteString(s[i:stop])
				i = stop
				continue
			}
			lit.WriteByte(c)
			i++
		case c == '?':
			return fail("? at byte %d: use the named placeholders (%s)", i, listNames(k.Params))
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	for _, r := range k.Required {
		if !slices.Contains(q.Names, r) {
			return fail("does not use :%s; %s", r, k.Why)
		}
	}
	return q, nil
}

// SQL returns the query for a driver's placeholder style.
func (q *Query) SQL(st Style) string {
	var b strings.Builder
	for _, p := range q.parts {
		if p.name == "" {
			b.WriteString(p.sql)
			continue
		}
		n := slices.Index(q.Names, p.name) + 1
		switch st {
		case Question:
			fmt.Fprintf(&b, "?%d", n)
		default:
			fmt.Fprintf(&b, "$%d", n)
		}
	}
	return b.String()
}

// Args returns the values to bind, in the order of q.Names.
func (q *Query) Args(values map[string]any) []any {
	out := make([]any, len(q.Names))
	for i, n := range q.Names {
		out[i] = values[n]
	}
	return out
}

// Uses reports whether the query uses a placeholder.
func (q *Query) Uses(name string) bool { return slices.Contains(q.Names, name) }

func skipQuoted(s string, i int, quote byte, backslash bool) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslash {
				j++
			}
		case quote:
			if j+1 < len(s) && s[j+1] == quote {
				j++ // doubled quote
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

// skipBlockComment skips /* … */, nested as PostgreSQL nests them.
func skipBlockComment(s string, i int) (int, bool) {
	depth := 0
	for j := i; j+1 < len(s); {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j += 2
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, true
			}
		default:
			j++
		}
	}
	return 0, false
}

func listNames(ns []string) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = ":" + n
	}
	return strings.Join(out, " ")
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) || c >= 0x80 }
