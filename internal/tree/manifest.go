package tree

import (
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is the type of an entry. Nothing else is allowed in a tree: FIFOs,
// sockets and devices are refused (ErrSpecial).
type Kind uint8

const (
	Dir Kind = iota + 1
	File
	Symlink
)

func (k Kind) String() string {
	switch k {
	case Dir:
		return "dir"
	case File:
		return "file"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hash is the content hash of a file: XXH3-128. It guards against a copy
// that went wrong (a short write, a torn read, a bad block), not against
// someone forging contents, which nobody on the path has a reason to do;
// XXH3 is by far the fastest of the hashes measured (see
// BenchmarkHash), so verifying costs little more than reading.
type Hash [16]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Entry is one name in a tree.
type Entry struct {
	// Path is relative to the root, names joined by "/", "." for the root
	// itself. It holds the raw bytes of the names: any byte but "/" and
	// NUL, valid UTF-8 or not.
	Path string
	Kind Kind
	// Mode is the permission bits with setuid, setgid and sticky
	// (st_mode & 07777).
	Mode     uint32
	UID, GID uint32
	// Size is the length of a file, of a symlink's target; 0 for folders.
	Size int64
	// MTime is the modification time in nanoseconds since the epoch.
	// Dovecot takes a message's INTERNALDATE from it.
	MTime int64
	// ATime is the access time, copied as it was but never compared: a
	// read of the source changes it.
	ATime int64
	// Target is a symlink's target, as is; it is never followed.
	Target string
	// Hash is the content of a file, when the scan hashed (Manifest.Hashed).
	Hash Hash
	// Link is set for a name that shares its inode with an earlier entry
	// of the manifest (a hard link): the path of the first of them. The
	// first one has Link "".
	Link string

	dev, ino uint64 // identity of the inode, to find hard links
	nlink    uint64
	ctime    int64 // when the inode last changed (Cache)
	blocks   int64 // 512-byte blocks allocated (DiskUsage)
}

// DiskUsage is the space the tree takes on disk as du counts it: the
// blocks allocated to every folder, file and symlink, each inode once.
func (m *Manifest) DiskUsage() int64 {
	var total int64
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Link == "" {
			total += e.blocks * 512
		}
	}
	return total
}

// Manifest is what a scan saw of a tree.
type Manifest struct {
	// Entries are sorted by Path, bytewise; the root "." comes first.
	Entries []Entry
	// Hashed says whether the files' Hash fields were computed.
	Hashed bool
	Totals Totals
	// Vanished lists the names that were listed but had gone, or had been
	// replaced, when the scan came to them (a message expunged or moved
	// while the user is live). They are not in Entries.
	Vanished []string
}

// Totals counts a manifest's entries. A file with several names counts
// once in Files and Bytes; its other names count in HardLinks.
type Totals struct {
	Files, Dirs, Symlinks, HardLinks int
	Bytes                            int64
}

// Find returns the entry at path, or nil.
func (m *Manifest) Find(path string) *Entry {
	i := sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].Path >= path })
	if i < len(m.Entries) && m.Entries[i].Path == path {
		return &m.Entries[i]
	}
	return nil
}

// finish sorts the entries and fills in Link and Totals.
func (m *Manifest) finish() {
	if len(m.Vanished) > 0 {
		// A folder whose listing vanished was already recorded from its
		// parent's listing; leave it out, as it was not seen whole.
		lost := make(map[string]bool, len(m.Vanished))
		for _, v := range m.Vanished {
			lost[v] = true
		}
		kept := m.Entries[:0]
		for _, e := range m.Entries {
			if !lost[e.Path] {
				kept = append(kept, e)
			}
		}
		m.Entries = kept
	}
	m.Entries = sortByPath(m.Entries)
	sort.Strings(m.Vanished)
	type id struct{ dev, ino uint64 }
	first := make(map[id]string)
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Kind == Dir || e.nlink < 2 {
			continue
		}
		k := id{e.dev, e.ino}
		if p, ok := first[k]; ok {
			e.Link = p
		} else {
			first[k] = e.Path
		}
	}
	m.total()
}

// sortByPath returns entries sorted by Path, reusing the slice if it is
// sorted already.
func sortByPath(es []Entry) []Entry {
	sorted := true
	for i := 1; i < len(es) && sorted; i++ {
		sorted = es[i-1].Path < es[i].Path
	}
	if sorted {
		return es
	}
	return sortParts([][]Entry{es})
}

// sortParts returns the entries of parts in one new slice, sorted by
// Path. An Entry is large: moving entries about was most of what sorting
// a big manifest cost, so it sorts small references to them and then
// moves each entry once. A big manifest (a scan under the hold lists
// every message) is sorted in two halves at once, then merged.
func sortParts(parts [][]Entry) []Entry {
	type ref struct {
		path string
		p, i int32
	}
	n := 0
	for _, es := range parts {
		n += len(es)
	}
	refs := make([]ref, 0, n)
	for p, es := range parts {
		for i := range es {
			refs = append(refs, ref{es[i].Path, int32(p), int32(i)})
		}
	}
	byPath := func(a, b ref) int { return strings.Compare(a.path, b.path) }
	out := make([]Entry, n)
	if n < 1<<13 || runtime.GOMAXPROCS(0) < 2 {
		slices.SortFunc(refs, byPath)
		for k, r := range refs {
			out[k] = parts[r.p][r.i]
		}
		return out
	}
	a, b := refs[:n/2], refs[n/2:]
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(a, byPath) })
	slices.SortFunc(b, byPath)
	wg.Wait()
	i, j := 0, 0
	for k := range out {
		var r ref
		if j == len(b) || i < len(a) && a[i].path < b[j].path {
			r, i = a[i], i+1
		} else {
			r, j = b[j], j+1
		}
		out[k] = parts[r.p][r.i]
	}
	return out
}

func (m *Manifest) total() {
	var t Totals
	for i := range m.Entries {
		e := &m.Entries[i]
		switch {
		case e.Link != "":
			t.HardLinks++
		case e.Kind == Dir:
			t.Dirs++
		case e.Kind == File:
			t.Files++
			t.Bytes += e.Size
		case e.Kind == Symlink:
			t.Symlinks++
		}
	}
	m.Totals = t
}

// Diff is one difference between two manifests: A is the source's value,
// B the copy's.
type Diff struct {
	Path  string
	Field string // FieldOnlyA, FieldOnlyB, "type", "mode", "owner", "size", "mtime", "target", "content", "hard link", "hashing"
	A, B  string
}

// The Field of a name found on one side only.
const (
	FieldOnlyA = "only in source"
	FieldOnlyB = "only in copy"
)

func (d Diff) String() string {
	if d.Field == FieldOnlyA || d.Field == FieldOnlyB {
		return fmt.Sprintf("%s: %s", quote(d.Path), d.Field)
	}
	return fmt.Sprintf("%s: %s %s != %s", quote(d.Path), d.Field, d.A, d.B)
}

// CompareOptions says what Compare leaves out.
type CompareOptions struct {
	// IgnoreOwners leaves out UID and GID: for a copy made without root,
	// which cannot set them.
	IgnoreOwners bool
}

// Compare returns every difference between a (the source) and b (the
// copy), in path order; none means the copy is exact. Contents are
// compared when both sides were hashed; if only one was, that is a
// difference in itself (at "."), so that a verify cannot pass by mistake
// without looking at contents.
func Compare(a, b *Manifest, opt CompareOptions) []Diff {
	var diffs []Diff
	if a.Hashed != b.Hashed {
		diffs = append(diffs, Diff{Path: ".", Field: "hashing", A: onOff(a.Hashed), B: onOff(b.Hashed)})
	}
	hashed := a.Hashed && b.Hashed
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		switch {
		case j == len(b.Entries) || i < len(a.Entries) && a.Entries[i].Path < b.Entries[j].Path:
			diffs = append(diffs, Diff{Path: a.Entries[i].Path, Field: FieldOnlyA})
			i++
		case i == len(a.Entries) || b.Entries[j].Path < a.Entries[i].Path:
			diffs = append(diffs, Diff{Path: b.Entries[j].Path, Field: FieldOnlyB})
			j++
		default:
			diffs = compareEntry(diffs, &a.Entries[i], &b.Entries[j], hashed, opt)
			i++
			j++
		}
	}
	return diffs
}

func compareEntry(diffs []Diff, x, y *Entry, hashed bool, opt CompareOptions) []Diff {
	add := func(field, a, b string) {
		diffs = append(diffs, Diff{Path: x.Path, Field: field, A: a, B: b})
	}
	if x.Kind != y.Kind {
		add("type", x.Kind.String(), y.Kind.String())
		return diffs
	}
	if x.Mode != y.Mode {
		add("mode", fmt.Sprintf("%04o", x.Mode), fmt.Sprintf("%04o", y.Mode))
	}
	if !opt.IgnoreOwners && (x.UID != y.UID || x.GID != y.GID) {
		add("owner", fmt.Sprintf("%d:%d", x.UID, x.GID), fmt.Sprintf("%d:%d", y.UID, y.GID))
	}
	if x.Size != y.Size {
		add("size", fmt.Sprint(x.Size), fmt.Sprint(y.Size))
	}
	if x.MTime != y.MTime {
		add("mtime", FormatTime(x.MTime), FormatTime(y.MTime))
	}
	if x.Target != y.Target {
		add("target", quoteAlways(x.Target), quoteAlways(y.Target))
	}
	if hashed && x.Kind == File && x.Hash != y.Hash {
		add("content", x.Hash.String(), y.Hash.String())
	}
	if x.Link != y.Link {
		add("hard link", linkString(x.Link), linkString(y.Link))
	}
	return diffs
}

// FormatTime writes nanoseconds since the epoch as UTC with all nine
// digits, so that two times that differ by a nanosecond show it.
func FormatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

func linkString(l string) string {
	if l == "" {
		return "none"
	}
	return "to " + quoteAlways(l)
}

func quoteAlways(s string) string {
	q := quote(s)
	if q == s {
		return `"` + s + `"`
	}
	return q
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ErrSpecial is wrapped by the error for a FIFO, socket or device in a
// tree: a mailbox has no use for one, and copying one is refused.
var ErrSpecial = errors.New("special file refused")

// ErrVanished is wrapped by the error for a name that was listed but had
// gone, or had been replaced by something else (another inode, a symlink),
// when it was opened: a message expunged or renamed by a live user. A scan
// records such names in Manifest.Vanished and goes on; Sync goes on
// without them; Copy fails with it unless Options.SkipVanished.
var ErrVanished = errors.New("vanished during the walk")
