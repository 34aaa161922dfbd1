package tree

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The text form of a manifest, to keep beside a move and to send between
// hosts: a header, a line of column names, then one line per entry,
// tab-separated. Paths, targets and links are Go-quoted strings, so any
// byte of a name (newline, tab, invalid UTF-8) survives exactly and every
// entry stays on one line.
const (
	textHeader   = "# maildist tree manifest v1"
	textColumns  = "path\tkind\tmode\tuid\tgid\tsize\tmtime\thash\ttarget\tlink"
	hashedSuffix = " hashed"
)

// WriteTo writes the manifest in its text form.
func (m *Manifest) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	put := func(s string) {
		k, _ := bw.WriteString(s)
		n += int64(k)
	}
	h := textHeader
	if m.Hashed {
		h += hashedSuffix
	}
	put(h + "\n" + textColumns + "\n")
	// Appended into one buffer, not formatted with fmt: a move writes the
	// manifest of the held tree while the user waits (saveVerified), and
	// a Maildir may have a hundred thousand entries.
	var line []byte
	for i := range m.Entries {
		e := &m.Entries[i]
		line = appendQuote(line[:0], e.Path)
		line = append(line, '\t')
		line = append(line, e.Kind.String()...)
		line = append(line, '\t')
		line = appendMode(line, e.Mode)
		line = append(line, '\t')
		line = strconv.AppendUint(line, uint64(e.UID), 10)
		line = append(line, '\t')
		line = strconv.AppendUint(line, uint64(e.GID), 10)
		line = append(line, '\t')
		line = strconv.AppendInt(line, e.Size, 10)
		line = append(line, '\t')
		line = strconv.AppendInt(line, e.MTime, 10)
		line = append(line, '\t')
		if m.Hashed && e.Kind == File {
			line = hex.AppendEncode(line, e.Hash[:])
		} else {
			line = append(line, '-')
		}
		line = append(line, '\t')
		line = appendQuote(line, e.Target)
		line = append(line, '\t')
		line = appendQuote(line, e.Link)
		line = append(line, '\n')
		k, _ := bw.Write(line)
		n += int64(k)
	}
	return n, bw.Flush()
}

// appendQuote appends s Go-quoted, as strconv.AppendQuote does, quicker
// for the names most trees hold: printable ASCII that needs no escape.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendMode appends mode as fmt's %04o would.
func appendMode(b []byte, mode uint32) []byte {
	o := strconv.FormatUint(uint64(mode), 8)
	for range 4 - len(o) {
		b = append(b, '0')
	}
	return append(b, o...)
}

// ReadManifest reads the text form written by WriteTo and checks that it
// describes a tree: sorted unique clean paths, the root first, every
// entry in a folder of the manifest, hard links to an earlier first name.
// An error names the line.
func ReadManifest(r io.Reader) (*Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("manifest line %d: %s", line, fmt.Sprintf(format, a...))
	}
	m := &Manifest{}
	h, ok := next()
	switch {
	case !ok:
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		return nil, fmt.Errorf("manifest: empty")
	case h == textHeader:
	case h == textHeader+hashedSuffix:
		m.Hashed = true
	default:
		return nil, bad("not a manifest header: %q", h)
	}
	if c, ok := next(); !ok || c != textColumns {
		return nil, bad("want the column names %q", textColumns)
	}
	kinds := make(map[string]Kind) // path → kind, of the entries so far
	firsts := make(map[string]bool)
	for {
		text, ok := next()
		if !ok {
			break
		}
		e, err := parseEntry(text, m.Hashed)
		if err != nil {
			return nil, bad("%v", err)
		}
		if len(m.Entries) == 0 {
			if e.Path != "." || e.Kind != Dir {
				return nil, bad("the first entry must be the root folder \".\"")
			}
		} else {
			if prev := m.Entries[len(m.Entries)-1].Path; e.Path <= prev {
				return nil, bad("%s: not after %s (paths must be sorted and unique)", quoteAlways(e.Path), quoteAlways(prev))
			}
			if e.Path == "." {
				return nil, bad("the root appears twice")
			}
			dir, _ := splitPath(e.Path)
			if kinds[dir] != Dir {
				return nil, bad("%s: its folder %s is not in the manifest", quoteAlways(e.Path), quoteAlways(dir))
			}
		}
		if e.Link != "" {
			if !firsts[e.Link] || kinds[e.Link] != e.Kind {
				return nil, bad("%s: hard link to %s, which is not an earlier first name of the same kind",
					quoteAlways(e.Path), quoteAlways(e.Link))
			}
		} else if e.Kind != Dir {
			firsts[e.Path] = true
		}
		kinds[e.Path] = e.Kind
		m.Entries = append(m.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest line %d: %w", line+1, err)
	}
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("manifest: no entries")
	}
	m.total()
	return m, nil
}

func parseEntry(text string, hashed bool) (Entry, error) {
	f := strings.Split(text, "\t")
	if len(f) != 10 {
		return Entry{}, fmt.Errorf("%d fields, want 10", len(f))
	}
	var e Entry
	var err error
	unquote := func(s, what string) string {
		if err != nil {
			return ""
		}
		var u string
		if u, err = strconv.Unquote(s); err != nil || !strings.HasPrefix(s, `"`) {
			err = fmt.Errorf("%s %s: not a quoted string", what, s)
		}
		return u
	}
	e.Path = unquote(f[0], "path")
	e.Target = unquote(f[8], "target")
	e.Link = unquote(f[9], "link")
	if err != nil {
		return Entry{}, err
	}
	if !validPath(e.Path) {
		return Entry{}, fmt.Errorf("path %s: not a clean relative path", quoteAlways(e.Path))
	}
	switch f[1] {
	case "dir":
		e.Kind = Dir
	case "file":
		e.Kind = File
	case "symlink":
		e.Kind = Symlink
	default:
		return Entry{}, fmt.Errorf("kind %q: want dir, file or symlink", f[1])
	}
	mode, err := strconv.ParseUint(f[2], 8, 32)
	if err != nil || mode > 0o7777 || len(f[2]) != 4 {
		return Entry{}, fmt.Errorf("mode %q: want four octal digits", f[2])
	}
	e.Mode = uint32(mode)
	uid, err1 := strconv.ParseUint(f[3], 10, 32)
	gid, err2 := strconv.ParseUint(f[4], 10, 32)
	if err1 != nil || err2 != nil || f[3] != strconv.FormatUint(uid, 10) || f[4] != strconv.FormatUint(gid, 10) {
		return Entry{}, fmt.Errorf("owner %q:%q: want two numbers", f[3], f[4])
	}
	e.UID, e.GID = uint32(uid), uint32(gid)
	if e.Size, err = strconv.ParseInt(f[5], 10, 64); err != nil || e.Size < 0 || f[5] != strconv.FormatInt(e.Size, 10) {
		return Entry{}, fmt.Errorf("size %q: want a number", f[5])
	}
	if e.MTime, err = strconv.ParseInt(f[6], 10, 64); err != nil || f[6] != strconv.FormatInt(e.MTime, 10) {
		return Entry{}, fmt.Errorf("mtime %q: want nanoseconds since the epoch", f[6])
	}
	switch {
	case hashed && e.Kind == File:
		b, err := hex.DecodeString(f[7])
		if err != nil || len(b) != len(e.Hash) || f[7] != hex.EncodeToString(b) {
			return Entry{}, fmt.Errorf("hash %q: want %d lowercase hex digits", f[7], 2*len(e.Hash))
		}
		copy(e.Hash[:], b)
	case f[7] != "-":
		return Entry{}, fmt.Errorf("hash %q: want - for a folder, a symlink or an unhashed manifest", f[7])
	}
	switch e.Kind {
	case Dir:
		if e.Size != 0 || e.Target != "" || e.Link != "" {
			return Entry{}, fmt.Errorf("a folder has no size, target or link")
		}
	case File:
		if e.Target != "" {
			return Entry{}, fmt.Errorf("a file has no target")
		}
	case Symlink:
		if e.Target == "" || int64(len(e.Target)) != e.Size || strings.IndexByte(e.Target, 0) >= 0 {
			return Entry{}, fmt.Errorf("a symlink's size is the length of its target, which is not empty")
		}
	}
	if e.Link != "" && (!validPath(e.Link) || e.Link == ".") {
		return Entry{}, fmt.Errorf("link %s: not a clean relative path", quoteAlways(e.Link))
	}
	return e, nil
}
