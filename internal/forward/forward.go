package forward

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
)

// The lines that frame maildist's section and start each user's entries.
// Parse recognises the frame by its prefix, so the wording after it may
// change between versions.
const (
	BeginPrefix = "# BEGIN maildist forward"
	EndPrefix   = "# END maildist forward"
	UserPrefix  = "# user "

	beginLine = BeginPrefix + ": the lines down to END are maildist's own; list them with `maildist forward --list`, undo with `maildist forward --remove USER`"
	endLine   = EndPrefix
)

// Entry is one line of maildist's section: mail for From goes to To.
type Entry struct {
	User string `json:"user"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Entries returns the entries that send mail for user at every host of
// hosts other than cur on to user's current host (to = config.ForwardToHost)
// or to user@domain (config.ForwardToDomain), sorted by From.
func Entries(user string, cur *cluster.Host, hosts []*cluster.Host, domain, to string) ([]Entry, error) {
	if err := cluster.CheckUser(user); err != nil {
		return nil, err
	}
	if strings.Contains(user, "@") {
		return nil, fmt.Errorf("user %q: a name with a domain has no host address (user@HOST.domain)", user)
	}
	if domain == "" {
		return nil, fmt.Errorf("no domain: host addresses are user@HOST.domain")
	}
	dest := user + "@" + cur.Name + "." + domain
	if to == config.ForwardToDomain {
		dest = user + "@" + domain
	}
	var es []Entry
	for _, h := range hosts {
		if h.Name == cur.Name {
			continue
		}
		es = append(es, Entry{User: user, From: user + "@" + h.Name + "." + domain, To: dest})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].From < es[j].From })
	return es, nil
}

// Clash is an entry left out because a line of the site's own has its key.
type Clash struct {
	Entry Entry `json:"entry"`
	Line  int   `json:"line"` // the site's line
}

// Map is an MTA table with maildist's section taken apart from the rest.
type Map struct {
	name    string
	before  []byte // the site's bytes before the section, as read
	after   []byte // and after it
	had     bool   // the file had a section
	users   map[string][]Entry
	foreign map[string]int // folded key of each of the site's lines → line
}

// Parse reads a table; name is used in messages. Empty data is an empty
// table (a file not made yet).
func Parse(name string, data []byte) (*Map, error) {
	m := &Map{name: name, users: map[string][]Entry{}, foreign: map[string]int{}}
	state := 0 // 0 before the section, 1 in it, 2 after it
	user := ""
	off := 0
	for n := 1; off < len(data); n++ {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		raw := data[off:next]
		line := strings.TrimRight(string(raw), "\r\n")
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(line, BeginPrefix):
			if state != 0 {
				return nil, bad("a second %q line: maildist keeps one section; merge them by hand", BeginPrefix)
			}
			m.before = data[:off]
			state, m.had = 1, true
		case strings.HasPrefix(line, EndPrefix):
			if state != 1 {
				return nil, bad("%q without %q before it", EndPrefix, BeginPrefix)
			}
			state = 2
			m.after = data[next:]
		case state == 1:
			if u, ok := strings.CutPrefix(line, UserPrefix); ok {
				user = strings.TrimSpace(u)
				if err := cluster.CheckUser(user); err != nil {
					return nil, bad("in maildist's section: %v", err)
				}
				if _, dup := m.users[user]; dup {
					return nil, bad("in maildist's section: user %s appears twice", user)
				}
				m.users[user] = nil
				break
			}
			// An entry maildist wrote is "user@HOST.domain user@…", with
			// the user of the block on both sides.
			f := strings.Fields(line)
			if len(f) != 2 || user == "" || line[0] == '#' || line[0] == ' ' || line[0] == '\t' ||
				!strings.HasPrefix(f[0], user+"@") || !strings.HasPrefix(f[1], user+"@") {
				return nil, bad("in maildist's section, a line maildist did not write: %q; move it out of the section (above %q) or remove it", line, BeginPrefix)
			}
			m.users[user] = append(m.users[user], Entry{User: user, From: f[0], To: f[1]})
		default:
			// A key starts a line; a line starting with white space goes
			// on with the line before it.
			if f := strings.Fields(line); len(f) > 0 && line[0] != '#' && line[0] != ' ' && line[0] != '\t' {
				k := strings.ToLower(f[0])
				if _, seen := m.foreign[k]; !seen {
					m.foreign[k] = n
				}
			}
		}
		off = next
	}
	switch state {
	case 0:
		m.before = data
	case 1:
		return nil, fmt.Errorf("%s: %q has no %q after it", name, BeginPrefix, EndPrefix)
	}
	return m, nil
}

// Set replaces user's entries with es, leaving out those whose key the
// site's own lines have. An empty es removes the user.
func (m *Map) Set(user string, es []Entry) (clashes []Clash) {
	var keep []Entry
	for _, e := range es {
		if line, ok := m.foreign[strings.ToLower(e.From)]; ok {
			clashes = append(clashes, Clash{Entry: e, Line: line})
			continue
		}
		keep = append(keep, e)
	}
	if len(keep) == 0 {
		delete(m.users, user)
		return clashes
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].From < keep[j].From })
	m.users[user] = keep
	return clashes
}

// Remove drops user's entries and returns how many there were.
func (m *Map) Remove(user string) int {
	n := len(m.users[user])
	delete(m.users, user)
	return n
}

// Has reports whether user has a block in the section.
func (m *Map) Has(user string) bool {
	_, ok := m.users[user]
	return ok
}

// Users returns the users of the section, sorted.
func (m *Map) Users() []string {
	us := make([]string, 0, len(m.users))
	for u := range m.users {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// Entries returns every entry of the section, by user, then by key.
func (m *Map) Entries() []Entry {
	var es []Entry
	for _, u := range m.Users() {
		es = append(es, m.users[u]...)
	}
	return es
}

// ForeignLines counts the site's own lines (every line outside the
// section).
func (m *Map) ForeignLines() int { return countLines(m.before) + countLines(m.after) }

func countLines(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// Bytes renders the table: the site's bytes as read, with the section in
// its old place (at the end if there was none). A section with no users
// is left out, so removing the last user gives back the site's file.
func (m *Map) Bytes() []byte {
	var b bytes.Buffer
	b.Write(m.before)
	if len(m.users) > 0 {
		if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
			b.WriteByte('\n')
		}
		b.WriteString(beginLine + "\n")
		for _, u := range m.Users() {
			b.WriteString(UserPrefix + u + "\n")
			for _, e := range m.users[u] {
				b.WriteString(e.From + "\t" + e.To + "\n")
			}
		}
		b.WriteString(endLine + "\n")
	}
	b.Write(m.after)
	return b.Bytes()
}
