package tree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// swapHome has a folder and a file that the tests replace by symlinks
// pointing out of the home while a walk runs.
func swapHome() []node {
	return []node{
		F("Maildir/cur/1:2,S", msg),
		F("Maildir/cur/2:2,S", msg),
		F("Maildir/new/3", msg),
		F("Maildir/victim", "mine"),
	}
}

// swapToSymlink renames rel aside and puts a symlink to target in its place.
func swapToSymlink(t *testing.T, root, rel, target string) {
	p := filepath.Join(root, rel)
	if err := os.Rename(p, p+".aside"); err != nil {
		t.Error(err)
		return
	}
	if err := os.Symlink(target, p); err != nil {
		t.Error(err)
	}
}

// outside makes a folder outside the home with a file whose name no home
// holds: seeing that name in a manifest or a copy means a walk got out.
func outside(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "outside")
	build(t, dir, []node{F("SECRET-outside", "secret"), F("passwd", "root:x:0:0")})
	return dir
}

func leaked(m *Manifest) bool {
	for _, e := range m.Entries {
		if strings.Contains(e.Path, "SECRET") || strings.HasSuffix(e.Path, "/passwd") {
			return true
		}
	}
	return false
}

func TestWalkDoesNotFollowSwappedFolder(t *testing.T) {
	out := outside(t)
	cases := []struct {
		name    string
		event   string // when to swap
		rel     string // what
		target  string
		copy    bool
		skip    bool // Options.SkipVanished
		wantErr error
		vanish  string // in Manifest.Vanished or Stats.Vanished
	}{
		{name: "scan: folder swapped before it is listed", event: "open-dir", rel: "Maildir/cur",
			target: out, vanish: "Maildir/cur"},
		{name: "scan: folder swapped for /etc", event: "open-dir", rel: "Maildir/cur",
			target: "/etc", vanish: "Maildir/cur"},
		{name: "scan with hashing: file swapped for /etc/passwd", event: "open", rel: "Maildir/victim",
			target: "/etc/passwd", vanish: "Maildir/victim"},
		{name: "copy: folder swapped before its files are copied", event: "copy-dir", rel: "Maildir/cur",
			target: out, copy: true, wantErr: ErrVanished},
		{name: "copy: folder swapped, vanished names skipped", event: "copy-dir", rel: "Maildir/cur",
			target: "/etc", copy: true, skip: true, vanish: "Maildir/cur/1:2,S"},
		{name: "copy: file swapped for /etc/passwd", event: "copy", rel: "Maildir/victim",
			target: "/etc/passwd", copy: true, skip: true, vanish: "Maildir/victim"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			build(t, src, swapHome())
			var once sync.Once
			hook := func(event, rel string) {
				if event == tc.event && rel == tc.rel {
					once.Do(func() { swapToSymlink(t, src, tc.rel, tc.target) })
				}
			}
			var vanished []string
			if tc.copy {
				st, err := Copy(context.Background(), src, dst, Options{hook: hook, SkipVanished: tc.skip})
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Copy: %v, want %v", err, tc.wantErr)
				}
				vanished = st.Vanished
				// Whatever Copy did, nothing from outside is in the copy.
				filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.Mode().IsRegular() {
						if b, _ := os.ReadFile(p); strings.Contains(string(b), "root:") ||
							strings.Contains(string(b), "secret") {
							t.Errorf("%s holds a file from outside the home", p)
						}
					}
					return nil
				})
			} else {
				m, err := Scan(context.Background(), src, ScanOptions{Hash: true, hook: hook})
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				if leaked(m) {
					t.Errorf("scan left the home: %v", m.Entries)
				}
				for _, e := range m.Entries {
					if strings.HasPrefix(e.Path, tc.rel+"/") || e.Path == tc.rel {
						t.Errorf("manifest has %q, which vanished", e.Path)
					}
				}
				vanished = m.Vanished
			}
			if tc.vanish != "" && !contains(vanished, tc.vanish) {
				t.Errorf("vanished %q, want %q in it", vanished, tc.vanish)
			}
			// The next pass sees the symlink as a symlink.
			m := mustScan(t, src)
			if e := m.Find(tc.rel); e == nil || e.Kind != Symlink || e.Target != tc.target {
				t.Errorf("rescan: %+v, want a symlink to %s", e, tc.target)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestWalkRace swaps a folder and a symlink to the outside back and forth
// while scans and copies run, with no hook: whatever a walk sees, it must
// never show or copy what is outside.
func TestWalkRace(t *testing.T) {
	out := outside(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	var nodes []node
	for i := range 50 {
		nodes = append(nodes, F("Maildir/cur/"+itoa(i)+":2,S", msg))
	}
	build(t, src, nodes)
	cur := filepath.Join(src, "Maildir/cur")
	link := filepath.Join(src, "Maildir/cur.link")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		// RENAME_EXCHANGE swaps the folder and the symlink in one step.
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, cur, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()

	for i := range 20 {
		m, err := Scan(context.Background(), src, ScanOptions{Hash: i%2 == 0, Workers: 4})
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if leaked(m) {
			t.Fatalf("scan %d left the home", i)
		}
		dst := filepath.Join(dir, "dst"+itoa(i))
		_, err = Copy(context.Background(), src, dst, Options{SkipVanished: true, Workers: 4})
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if dm, err := Scan(context.Background(), dst, ScanOptions{}); err == nil && leaked(dm) {
			t.Fatalf("copy %d holds what is outside the home", i)
		}
	}
}

// TestCopyVanishedFirstName removes the first name of a hard-linked file
// just before it is copied: the next name is copied in its place and the
// rest link to it.
func TestCopyVanishedFirstName(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, []node{
		F("Maildir/a/1:2,S", msg),
		H("Maildir/b/1:2,S", "Maildir/a/1:2,S"),
		H("Maildir/c/1:2,S", "Maildir/a/1:2,S"),
	})
	hook := func(event, rel string) {
		if event == "copy" && rel == "Maildir/a/1:2,S" {
			os.Remove(filepath.Join(src, rel))
		}
	}
	st, err := Copy(context.Background(), src, dst, Options{hook: hook, SkipVanished: true})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(st.Vanished, "Maildir/a/1:2,S") || st.Files != 1 || st.HardLinks != 1 {
		t.Errorf("stats %+v", st)
	}
	sameTree(t, src, dst)
}

func TestSyncWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, swapHome())
	if _, err := Sync(context.Background(), src+"/", dst, Options{}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
}

// A folder too big for one read of its listing is looked at while the
// rest is read; every name comes out once, and a name removed meanwhile
// is listed as vanished.
func TestScanBigFolder(t *testing.T) {
	root := t.TempDir()
	cur := filepath.Join(root, "Maildir", "cur")
	if err := os.MkdirAll(cur, 0o700); err != nil {
		t.Fatal(err)
	}
	const n = 5000 // over 300 KB of names: several reads of 64 KiB
	for i := range n {
		name := fmt.Sprintf("%d.M%dP%d.mail.example.edu,S=%d,W=%d:2,S", 1600000000+i, i*7, i, i, i+20)
		if err := os.WriteFile(filepath.Join(cur, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var gone atomic.Value
	m, err := Scan(context.Background(), root, ScanOptions{Hash: true, hook: func(event, rel string) {
		if (event == "stat" || event == "open") && strings.HasPrefix(rel, "Maildir/cur/") && gone.Load() == nil {
			gone.Store(rel)
			os.Remove(filepath.Join(root, rel))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	removed, _ := gone.Load().(string)
	names, err := os.ReadDir(cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != n-1 || m.Totals.Files != n-1 || !slices.Equal(m.Vanished, []string{removed}) {
		t.Fatalf("%d names left, %d files in the manifest, vanished %q (removed %q)", len(names), m.Totals.Files, m.Vanished, removed)
	}
	for _, d := range names {
		if e := m.Find("Maildir/cur/" + d.Name()); e == nil || e.Kind != File {
			t.Fatalf("%s: not in the manifest as a file", d.Name())
		}
	}
	for i := 1; i < len(m.Entries); i++ {
		if m.Entries[i-1].Path >= m.Entries[i].Path {
			t.Fatalf("not sorted at %d: %q, %q", i, m.Entries[i-1].Path, m.Entries[i].Path)
		}
	}
}
