package tree

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCompare(t *testing.T) {
	root := Entry{Path: ".", Kind: Dir, Mode: 0o700, UID: 1000, GID: 100, MTime: baseTime}
	file := Entry{Path: "Maildir/cur/1.x:2,S", Kind: File, Mode: 0o600, UID: 1000, GID: 100,
		Size: 5, MTime: baseTime, Hash: Hash{1}}
	link := Entry{Path: "Maildir/l", Kind: Symlink, Mode: 0o777, Size: 3, MTime: baseTime, Target: "cur"}
	manifest := func(hashed bool, es ...Entry) *Manifest {
		m := &Manifest{Hashed: hashed, Entries: es}
		m.finish()
		return m
	}
	with := func(e Entry, f func(*Entry)) Entry { f(&e); return e }

	cases := []struct {
		name string
		a, b *Manifest
		opt  CompareOptions
		want []string
	}{
		{name: "equal", a: manifest(true, root, file, link), b: manifest(true, root, file, link)},
		{name: "content", a: manifest(true, root, file),
			b:    manifest(true, root, with(file, func(e *Entry) { e.Hash = Hash{2} })),
			want: []string{"Maildir/cur/1.x:2,S: content 01000000000000000000000000000000 != 02000000000000000000000000000000"}},
		{name: "content not compared without hashes", a: manifest(false, root, file),
			b: manifest(false, root, with(file, func(e *Entry) { e.Hash = Hash{2} }))},
		{name: "hashing on one side only", a: manifest(true, root), b: manifest(false, root),
			want: []string{".: hashing on != off"}},
		{name: "size", a: manifest(true, root, file),
			b:    manifest(true, root, with(file, func(e *Entry) { e.Size = 4 })),
			want: []string{"Maildir/cur/1.x:2,S: size 5 != 4"}},
		{name: "mode", a: manifest(true, root, file),
			b:    manifest(true, root, with(file, func(e *Entry) { e.Mode = 0o4600 })),
			want: []string{"Maildir/cur/1.x:2,S: mode 0600 != 4600"}},
		{name: "owner", a: manifest(true, root),
			b:    manifest(true, with(root, func(e *Entry) { e.GID = 0 })),
			want: []string{".: owner 1000:100 != 1000:0"}},
		{name: "owner ignored", a: manifest(true, root),
			b:   manifest(true, with(root, func(e *Entry) { e.UID, e.GID = 0, 0 })),
			opt: CompareOptions{IgnoreOwners: true}},
		{name: "mtime to the nanosecond", a: manifest(true, root, file),
			b:    manifest(true, root, with(file, func(e *Entry) { e.MTime++ })),
			want: []string{"Maildir/cur/1.x:2,S: mtime 2021-01-02T03:04:05.123456789Z != 2021-01-02T03:04:05.123456790Z"}},
		{name: "type", a: manifest(true, root, file),
			b:    manifest(true, root, with(file, func(e *Entry) { e.Kind, e.Size, e.Target = Symlink, 3, "abc" })),
			want: []string{"Maildir/cur/1.x:2,S: type file != symlink"}},
		{name: "link target", a: manifest(true, root, link),
			b:    manifest(true, root, with(link, func(e *Entry) { e.Target = "new" })),
			want: []string{`Maildir/l: target "cur" != "new"`}},
		{name: "hard link structure",
			a: manifest(true, root, file, with(file, func(e *Entry) { e.Path = "Maildir/new/1.x" })),
			b: manifest(true, root, file, with(file, func(e *Entry) {
				e.Path, e.Link = "Maildir/new/1.x", "Maildir/cur/1.x:2,S"
			})),
			want: []string{`Maildir/new/1.x: hard link none != to "Maildir/cur/1.x:2,S"`}},
		{name: "only in one side", a: manifest(true, root, file), b: manifest(true, root, link),
			want: []string{"Maildir/cur/1.x:2,S: only in source", "Maildir/l: only in copy"}},
		{name: "odd names are quoted",
			a:    manifest(true, root, with(file, func(e *Entry) { e.Path = "a\nb\xff" })),
			b:    manifest(true, root),
			want: []string{`"a\nb\xff": only in source`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range Compare(tc.a, tc.b, tc.opt) {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSortByPath(t *testing.T) {
	paths := []string{".", "Maildir", "Maildir/.Sent", "Maildir/.Sent/cur", "Maildir/cur", "Maildir/cur.bak",
		"Maildir/cur/1:2,S", "Maildir/cur/1:2,S/x", "Maildir/cur0", "\xff"}
	want := slices.Clone(paths)
	slices.Sort(want)
	for _, tc := range []struct {
		name  string
		order []int
	}{
		{"sorted", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"reversed", []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"shuffled", []int{4, 9, 0, 7, 2, 8, 1, 6, 3, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var es []Entry
			for _, i := range tc.order {
				es = append(es, Entry{Path: paths[i], Size: int64(len(paths[i]))})
			}
			got := sortByPath(slices.Clone(es))
			for i, e := range got {
				if e.Path != want[i] || e.Size != int64(len(want[i])) {
					t.Fatalf("entry %d: %q (size %d), want %q", i, e.Path, e.Size, want[i])
				}
			}
		})
	}
}

// A manifest big enough to be sorted in halves and merged, given in
// parts as a scan gives them, comes out whole and in order.
func TestSortPartsBig(t *testing.T) {
	const n = 30000
	var want []string
	var parts [][]Entry
	var part []Entry
	x := uint32(2463534242)
	for i := range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p := fmt.Sprintf("Maildir/cur/%d.M%d:2,S", x, i)
		want = append(want, p)
		part = append(part, Entry{Path: p, Size: int64(i)})
		if len(part) == int(x%300)+1 || i == n-1 {
			parts = append(parts, part)
			part = nil
		}
	}
	slices.Sort(want)
	got := sortParts(parts)
	if len(got) != n {
		t.Fatalf("%d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Path != want[i] {
			t.Fatalf("entry %d: %q, want %q", i, e.Path, want[i])
		}
		if !strings.HasSuffix(e.Path, fmt.Sprintf(".M%d:2,S", e.Size)) {
			t.Fatalf("entry %d: %q carries size %d of another entry", i, e.Path, e.Size)
		}
	}
}

// DiskUsage counts as du does: every name's blocks, a hard-linked file's
// once, symlinks not followed.
func TestDiskUsage(t *testing.T) {
	root := t.TempDir()
	big := strings.Repeat("x", 100_000)
	build(t, root, []node{
		F("a", big), H("b", "a"), F("c", "small"), L("d", "/etc"), D("e"), F("e/f", big),
	})
	m := mustScan(t, root)
	var want int64
	seen := map[uint64]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if !seen[st.Ino] {
			seen[st.Ino] = true
			want += st.Blocks * 512
		}
		return nil
	})
	if got := m.DiskUsage(); got != want || got < 2*100_000 {
		t.Errorf("DiskUsage = %d, want %d", got, want)
	}
}
