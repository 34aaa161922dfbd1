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
	"time"

	"golang.org/x/sys/unix"
)

func syncHome() []node {
	return []node{
		F("Maildir/cur/1.host:2,S", msg),
		F("Maildir/cur/2.host:2,RS", msg+"two"),
		F("Maildir/new/3.host", msg+"three"),
		F("Maildir/dovecot-uidlist", "3 V1 N4\n"),
		F("Maildir/.Sent/cur/4.host:2,S", msg+"four"),
		H("Maildir/.Archive/cur/4.host:2,S", "Maildir/.Sent/cur/4.host:2,S"),
		L("Maildir/alias", ".Sent"),
		D("Maildir/.Sent/new"),
		D("Maildir/.Old/cur"),
		F("Maildir/.Old/cur/5.host:2,", "old"),
	}
}

func TestSync(t *testing.T) {
	p := func(root string, rel string) string { return filepath.Join(root, rel) }
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// rewrite changes contents, keeping size and mtime.
	rewrite := func(t *testing.T, path, data string) {
		var st unix.Stat_t
		must(t, unix.Lstat(path, &st))
		must(t, os.WriteFile(path, []byte(data), 0))
		ts := []unix.Timespec{st.Atim, st.Mtim}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	cases := []struct {
		name     string
		hash     bool
		rootOnly bool
		src, dst func(t *testing.T, root string) // changes made after the first copy
		// stillDiffers: the one difference a hashed verify must still see.
		stillDiffers string
		check        func(t *testing.T, st Stats)
	}{
		{name: "nothing changed", check: func(t *testing.T, st Stats) {
			if st.Files+st.Dirs+st.Symlinks+st.HardLinks+st.Removed+st.Fixed != 0 {
				t.Errorf("Sync did work on an equal copy: %+v", st)
			}
		}},
		{name: "new file", src: func(t *testing.T, r string) {
			must(t, os.WriteFile(p(r, "Maildir/new/6.host"), []byte(msg), 0o600))
		}, check: func(t *testing.T, st Stats) {
			if st.Files != 1 {
				t.Errorf("copied %d files, want 1", st.Files)
			}
		}},
		{name: "renamed file (flag change)", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/new/3.host"), p(r, "Maildir/cur/3.host:2,S")))
		}},
		{name: "removed file", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/2.host:2,RS")))
		}, check: func(t *testing.T, st Stats) {
			if st.Removed != 1 {
				t.Errorf("removed %d, want 1", st.Removed)
			}
		}},
		{name: "removed folder", src: func(t *testing.T, r string) {
			must(t, os.RemoveAll(p(r, "Maildir/.Old")))
		}},
		{name: "same size and mtime, new contents, hashed", hash: true, src: func(t *testing.T, r string) {
			rewrite(t, p(r, "Maildir/cur/1.host:2,S"), strings.ToUpper(msg))
		}},
		{name: "same size and mtime, new contents, not hashed", src: func(t *testing.T, r string) {
			rewrite(t, p(r, "Maildir/cur/1.host:2,S"), strings.ToUpper(msg))
		}, stillDiffers: "Maildir/cur/1.host:2,S: content"},
		{name: "same contents, new mtime, hashed", hash: true, src: func(t *testing.T, r string) {
			must(t, os.Chtimes(p(r, "Maildir/cur/1.host:2,S"), time.Time{}, time.Unix(1e9, 7)))
		}, check: func(t *testing.T, st Stats) {
			if st.Fixed != 1 || st.Files != 0 {
				t.Errorf("stats %+v, want 1 fixed and nothing copied", st)
			}
		}},
		{name: "mode and folder mode", src: func(t *testing.T, r string) {
			must(t, os.Chmod(p(r, "Maildir/cur/1.host:2,S"), 0o4640))
			must(t, os.Chmod(p(r, "Maildir/.Sent"), 0o2750))
		}},
		{name: "owner", rootOnly: true, src: func(t *testing.T, r string) {
			must(t, os.Lchown(p(r, "Maildir/cur/1.host:2,S"), 1234, 5678))
			must(t, os.Lchown(p(r, "Maildir/alias"), 1234, 5678))
			must(t, os.Lchown(p(r, "Maildir/.Sent"), 1234, 5678))
		}},
		{name: "symlink retargeted", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/alias")))
			must(t, os.Symlink("/etc/passwd", p(r, "Maildir/alias")))
		}},
		{name: "folder replaced by a file and a file by a folder", src: func(t *testing.T, r string) {
			must(t, os.RemoveAll(p(r, "Maildir/.Old")))
			must(t, os.WriteFile(p(r, "Maildir/.Old"), []byte("now a file"), 0o600))
			must(t, os.Remove(p(r, "Maildir/dovecot-uidlist")))
			must(t, os.MkdirAll(p(r, "Maildir/dovecot-uidlist/x"), 0o700))
		}},
		{name: "hard link added", src: func(t *testing.T, r string) {
			must(t, os.Link(p(r, "Maildir/cur/1.host:2,S"), p(r, "Maildir/.Sent/cur/1.host:2,S")))
		}},
		{name: "hard link broken", src: func(t *testing.T, r string) {
			path := p(r, "Maildir/.Archive/cur/4.host:2,S")
			data, err := os.ReadFile(path)
			must(t, err)
			must(t, os.Remove(path))
			must(t, os.WriteFile(path, data, 0o644))
		}},
		{name: "first name of a hard link removed", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/.Archive/cur/4.host:2,S")))
			must(t, os.Mkdir(p(r, "Maildir/.Z"), 0o700))
			must(t, os.Link(p(r, "Maildir/.Sent/cur/4.host:2,S"), p(r, "Maildir/.Z/4")))
		}},
		{name: "damaged copy", hash: true, dst: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/1.host:2,S")))
			must(t, os.Truncate(p(r, "Maildir/cur/2.host:2,RS"), 3))
			must(t, os.WriteFile(p(r, "Maildir/extra"), []byte("x"), 0o600))
			must(t, os.MkdirAll(p(r, "Maildir/extra-dir/a/b"), 0o700))
			must(t, os.Chmod(p(r, "Maildir/.Sent"), 0o777))
			// A symlink planted in the copy is removed, never written through.
			must(t, os.Remove(p(r, "Maildir/new/3.host")))
			must(t, os.Symlink("/etc/passwd", p(r, "Maildir/new/3.host")))
			must(t, os.RemoveAll(p(r, "Maildir/.Old")))
			must(t, os.Symlink("/etc", p(r, "Maildir/.Old")))
			// Two separate files made one.
			must(t, os.Remove(p(r, "Maildir/new/3.host")))
			must(t, os.Link(p(r, "Maildir/dovecot-uidlist"), p(r, "Maildir/new/3.host")))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !isRoot() {
				t.Skip("owners need root")
			}
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			build(t, src, syncHome())
			if _, err := Copy(context.Background(), src, dst, Options{}); err != nil {
				t.Fatal(err)
			}
			if tc.src != nil {
				tc.src(t, src)
			}
			if tc.dst != nil {
				tc.dst(t, dst)
			}
			passwd, _ := os.ReadFile("/etc/passwd")
			st, err := Sync(context.Background(), src, dst, Options{Hash: tc.hash})
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if after, _ := os.ReadFile("/etc/passwd"); string(after) != string(passwd) {
				t.Fatal("/etc/passwd changed")
			}
			diffs := Compare(mustScan(t, src), mustScan(t, dst), CompareOptions{IgnoreOwners: !isRoot()})
			var got []string
			for _, d := range diffs {
				got = append(got, d.Path+": "+d.Field)
			}
			want := []string(nil)
			if tc.stillDiffers != "" {
				want = []string{tc.stillDiffers}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("after Sync: %q, want %q", got, want)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			// A second Sync finds nothing more to do.
			if tc.stillDiffers == "" {
				st, err := Sync(context.Background(), src, dst, Options{Hash: true})
				if err != nil {
					t.Fatal(err)
				}
				if st.Files+st.Dirs+st.Symlinks+st.HardLinks+st.Removed+st.Fixed != 0 {
					t.Errorf("second Sync did work: %+v", st)
				}
			}
		})
	}
}

// TestSyncAfterFailedCopy completes a Copy cut short half way.
func TestSyncAfterFailedCopy(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	var nodes []node
	for i := range 300 {
		nodes = append(nodes, F("Maildir/cur/"+strings.Repeat("m", i%7+1)+string(rune('a'+i%26))+
			"."+itoa(i)+":2,S", msg+itoa(i)))
	}
	build(t, src, append(nodes, syncHome()...))
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	opt := Options{Workers: 2, hook: func(event, rel string) {
		if event == "copy" && n.Add(1) == 50 {
			cancel()
		}
	}}
	if _, err := Copy(ctx, src, dst, opt); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy: %v, want canceled", err)
	}
	if _, err := Sync(context.Background(), src, dst, Options{Hash: true}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	sameTree(t, src, dst)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestPairs(t *testing.T) {
	entries := func(paths ...string) []Entry {
		var es []Entry
		for _, p := range paths {
			es = append(es, Entry{Path: p})
		}
		return es
	}
	for _, tc := range []struct {
		name   string
		a, b   []Entry
		ab, ba []int
	}{
		{"both empty", nil, nil, []int{}, []int{}},
		{"one empty", entries(".", "a"), nil, []int{-1, -1}, []int{}},
		{"equal", entries(".", "a", "a/b"), entries(".", "a", "a/b"), []int{0, 1, 2}, []int{0, 1, 2}},
		{"interleaved", entries(".", "a", "a.b", "a/c", "z"), entries(".", "a/b", "a/c", "b"),
			[]int{0, -1, -1, 2, -1}, []int{0, -1, 3, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ab, ba := pairs(tc.a, tc.b)
			if !slices.Equal(ab, tc.ab) || !slices.Equal(ba, tc.ba) {
				t.Fatalf("pairs: %v %v, want %v %v", ab, ba, tc.ab, tc.ba)
			}
		})
	}
}

// With HashSource, Sync hands back the hashed manifest of the source it
// copied from: what a hashed scan of the source says, and what the copy
// now holds.
func TestSyncHashSource(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, mailHome())
	c := NewCache()
	opt := Options{Cache: c}
	st, err := Copy(context.Background(), src, dst, opt)
	if err != nil || st.Source != nil {
		t.Fatalf("Copy: %+v, %v; want no Source", st, err)
	}
	build(t, src, []node{F("Maildir/new/9.M9P9.host", msg)})
	if st, err = Sync(context.Background(), src, dst, opt); err != nil || st.Source != nil {
		t.Fatalf("Sync without HashSource: Source %v, %v", st.Source, err)
	}
	build(t, src, []node{F("Maildir/new/10.M10P10.host", msg)})
	opt.HashSource = true
	st, err = Sync(context.Background(), src, dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Source == nil || !st.Source.Hashed {
		t.Fatalf("Source = %v, want a hashed manifest", st.Source)
	}
	want, err := Scan(context.Background(), src, ScanOptions{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(want, st.Source, CompareOptions{}); len(d) > 0 {
		t.Errorf("Source differs from a scan of the source: %v", d)
	}
	copyNow, err := Scan(context.Background(), dst, ScanOptions{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(st.Source, copyNow, CompareOptions{IgnoreOwners: !isRoot()}); len(d) > 0 {
		t.Errorf("the copy differs from Source: %v", d)
	}
}

// Stats.Quiet says whether a name of the source changed while a Copy or
// Sync ran, whatever folder it changed in; a file changed in place is no
// name change.
func TestQuiet(t *testing.T) {
	changes := []struct {
		name   string
		quiet  bool
		change func(src string) error
	}{
		{"none", true, func(string) error { return nil }},
		{"in place", true, func(src string) error {
			f, err := os.OpenFile(filepath.Join(src, "Maildir/dovecot.index.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("more")
			return err
		}},
		{"delivered", false, func(src string) error {
			return os.WriteFile(filepath.Join(src, "Maildir/.Sent/new/5.M5P5.host,S=9"), []byte("late mail"), 0o600)
		}},
		{"flagged", false, func(src string) error {
			return os.Rename(filepath.Join(src, "Maildir/cur/2.M2P2.host,S=49:2,"), filepath.Join(src, "Maildir/cur/2.M2P2.host,S=49:2,S"))
		}},
		{"expunged", false, func(src string) error {
			return os.Remove(filepath.Join(src, "Maildir/.Sent/cur/4.M4P4.host,S=50:2,S"))
		}},
		{"top", false, func(src string) error {
			return os.WriteFile(filepath.Join(src, ".forward"), []byte("elsewhere\n"), 0o600)
		}},
	}
	for _, resync := range []bool{false, true} {
		for _, c := range changes {
			t.Run(fmt.Sprintf("sync=%v/%s", resync, c.name), func(t *testing.T) {
				dir := t.TempDir()
				src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
				build(t, src, append(mailHome(), D("Maildir/.Sent/new")))
				if resync {
					if _, err := Copy(context.Background(), src, dst, Options{}); err != nil {
						t.Fatal(err)
					}
					// Something for the Sync to copy, so that the hook runs.
					if err := os.WriteFile(filepath.Join(src, "Maildir/new/6.M6P6.host,S=4"), []byte("mail"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				var once sync.Once
				var herr error
				opt := Options{Workers: 2, Cache: NewCache(), SkipVanished: true, hook: func(event, rel string) {
					if event == "copy" {
						once.Do(func() { herr = c.change(src) })
					}
				}}
				run := Copy
				if resync {
					run = Sync
				}
				st, err := run(context.Background(), src, dst, opt)
				if err != nil || herr != nil {
					t.Fatal(err, herr)
				}
				if st.Quiet != c.quiet {
					t.Errorf("Quiet = %v, want %v", st.Quiet, c.quiet)
				}
			})
		}
	}
}
