package tree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const msg = "Return-Path: <a@example.edu>\nSubject: hi\n\nbody\n"

func TestCopyHostileHomes(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) + "tail" // 1 MiB and a bit
	cases := []struct {
		name     string
		nodes    []node
		rootOnly bool
		stats    *Stats // checked when set
	}{
		{name: "maildir flags and odd names", nodes: []node{
			F("Maildir/cur/1600000000.M1P2.host:2,S", msg),
			F("Maildir/cur/1600000001.M1P2.host!2,S", msg),
			F("Maildir/cur/1600000002.M1P2.host;2,S", msg),
			F("Maildir/cur/1600000003.M1P2.host:2,:2,S", msg),
			F("Maildir/cur/with space:2,RS", msg),
			F("Maildir/cur/with\nnewline:2,", msg),
			F("Maildir/cur/\xff\xfe latin1 \xe9t\xe9:2,T", msg),
			F("Maildir/cur/tab\there:2,F", msg),
			F("Maildir/new/1600000004.M1P2.host:2,S", msg),
			F("Maildir/new/1600000005.M1P2.host", msg),
			D("Maildir/tmp"),
		}, stats: &Stats{Files: 10, Dirs: 5}},
		{name: "dovecot control files and dot folders", nodes: []node{
			F("Maildir/dovecot-uidlist", "3 V1600000000 N5\n1 1600000000.M1P2.host\n"),
			F("Maildir/dovecot-keywords", "0 $Junk\n"),
			F("Maildir/subscriptions", "Sent\nArchive.2020\n"),
			F("Maildir/maildirsize", "0S,0C\n123 1\n"),
			F("Maildir/dovecot.index", "\x00\x01\x02index"),
			F("Maildir/dovecot.index.cache", "\x00cache"),
			F("Maildir/dovecot.index.log", "\x00log"),
			F("Maildir/dovecot.index.log.2", "\x00log2"),
			F("Maildir/.Sent/cur/1600000000.M9P9.host:2,S", msg),
			F("Maildir/.Sent/maildirfolder", ""),
			D("Maildir/.Sent/new"),
			D("Maildir/.Sent/tmp"),
			F("Maildir/.Archive.2020/cur/1500000000.M1P1.host:2,RS", msg),
			F("Maildir/.Archive.2020/dovecot-uidlist", "3 V1 N2\n"),
			F(".forward", "\"|/usr/bin/procmail\"\n"),
		}},
		{name: "symlinks are copied, never followed", nodes: []node{
			L("loop-a", "loop-b"),
			L("loop-b", "loop-a"),
			L("self", "self"),
			L("dangling", "does/not/exist"),
			L("Maildir/cur/escape", "../../etc/passwd"),
			L("shadow", "/etc/shadow"),
			L("etc", "/etc"),
			F("Maildir/cur/real:2,S", msg),
			L("Maildir/alias", "cur"),
			L("empty-looking \xff", " "),
		}, stats: &Stats{Files: 1, Symlinks: 9, Dirs: 3}},
		{name: "hard links across folders", nodes: []node{
			F("Maildir/cur/a:2,S", msg),
			H("Maildir/.Sent/cur/a:2,S", "Maildir/cur/a:2,S"),
			H("Maildir/new/a", "Maildir/cur/a:2,S"),
			F("Maildir/cur/b", "other"),
			H("b-again", "Maildir/cur/b"),
			L("Maildir/link", "cur/b"),
			H("Maildir/link-again", "Maildir/link"),
		}, stats: &Stats{Files: 2, Symlinks: 1, HardLinks: 4, Dirs: 6}},
		{name: "empty, mode 000, setgid, sticky, setuid", nodes: []node{
			F("Maildir/cur/empty:2,", ""),
			F("Maildir/cur/locked:2,S", msg).Mode(0),
			D("shared").Mode(0o2770),
			F("shared/x", "x").Mode(0o660),
			D("tmp").Mode(0o1777),
			F("bin/tool", "#!/bin/sh\n").Mode(0o4755),
			F("bin/sgid", "#!/bin/sh\n").Mode(0o2711),
			D("empty"),
			D("empty/nested/deeper"),
			D("readonly").Mode(0o500),
			F("readonly/inside", "x").Mode(0o400),
			D("Maildir").Mode(0o700),
		}},
		{name: "mixed owners", rootOnly: true, nodes: []node{
			D(".").Own(1000, 100),
			D("Maildir").Own(1000, 100),
			F("Maildir/cur/mine:2,S", msg).Own(1000, 100),
			F("Maildir/cur/root:2,S", msg).Own(0, 0),
			F("Maildir/cur/other:2,S", msg).Own(4242, 4343).Mode(0o2755),
			L("Maildir/link", "cur/mine:2,S").Own(1000, 8),
			D("Maildir/.Sent").Own(65534, 65534).Mode(0o2750),
		}},
		{name: "large file", nodes: []node{
			F("Maildir/cur/big:2,S", big),
			F("Maildir/cur/small:2,S", "x"),
		}, stats: &Stats{Files: 2, Dirs: 3, Bytes: int64(len(big)) + 1}},
	}
	for _, tc := range cases {
		for _, mode := range []string{"copy_file_range", "read-write", "fsync-batched"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				if tc.rootOnly && !isRoot() {
					t.Skip("owners need root")
				}
				dir := t.TempDir()
				src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
				build(t, src, tc.nodes)
				before := mustScan(t, src)
				opt := Options{noCopyFileRange: mode == "read-write", noSyncfs: mode == "fsync-batched"}
				var progress int64
				opt.Progress = func(n int64) { progress += n }
				st, err := Copy(context.Background(), src, dst, opt)
				if err != nil {
					t.Fatalf("Copy: %v", err)
				}
				sameTree(t, src, dst)
				checkLstat(t, src, dst, append(tc.nodes, D(".")))
				if diffs := Compare(before, mustScan(t, src), CompareOptions{}); len(diffs) > 0 {
					t.Errorf("source changed: %v", diffs)
				}
				if progress != st.Bytes {
					t.Errorf("progress %d, stats %d", progress, st.Bytes)
				}
				if tc.stats != nil {
					want := *tc.stats
					got := st
					got.Vanished = nil
					if !got.Quiet {
						t.Error("Quiet not set, though nothing changed the source")
					}
					got.Quiet = false
					if want.Bytes == 0 {
						got.Bytes = 0
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("stats %+v, want %+v", got, want)
					}
				}
			})
		}
	}
}

func TestCopyRefusesSpecialFiles(t *testing.T) {
	for _, kind := range []string{"fifo", "socket", "chardev", "blockdev"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			nodes := []node{
				F("Maildir/cur/a:2,S", msg),
				S("Maildir/odd "+kind, kind),
				F("Maildir/zzz", "later"),
			}
			build(t, src, nodes)
			before := mustScanNoSpecial(t, src)
			_, err := Copy(context.Background(), src, dst, Options{})
			if !errors.Is(err, ErrSpecial) {
				t.Fatalf("Copy: %v, want ErrSpecial", err)
			}
			if !strings.Contains(err.Error(), "Maildir/odd "+kind) {
				t.Errorf("error %q does not name the path", err)
			}
			if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dst was created: %v", err)
			}
			if _, err := Scan(context.Background(), src, ScanOptions{}); !errors.Is(err, ErrSpecial) {
				t.Errorf("Scan: %v, want ErrSpecial", err)
			}
			after := mustScanNoSpecial(t, src)
			if diffs := Compare(before, after, CompareOptions{}); len(diffs) > 0 {
				t.Errorf("source changed: %v", diffs)
			}
			// Sync into an existing copy refuses too, and changes nothing.
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			if _, err := Sync(context.Background(), src, dst, Options{}); !errors.Is(err, ErrSpecial) {
				t.Errorf("Sync: %v, want ErrSpecial", err)
			}
			if names, _ := os.ReadDir(dst); len(names) > 0 {
				t.Errorf("Sync wrote %v", names)
			}
		})
	}
}

// mustScanNoSpecial lists what a tree holds, special files included, with
// plain os calls: the source must be unchanged by a refused copy.
func mustScanNoSpecial(t *testing.T, root string) *Manifest {
	t.Helper()
	m := &Manifest{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entryOf(filepath.ToSlash(rel), &st)
		if e.Kind == 0 {
			e.Kind = Kind(st.Mode >> 12) // special: keep its type visible
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.finish()
	return m
}

func TestCopyErrors(t *testing.T) {
	t.Run("dst exists", func(t *testing.T) {
		dir := t.TempDir()
		build(t, filepath.Join(dir, "src"), []node{F("a", "a")})
		os.Mkdir(filepath.Join(dir, "dst"), 0o700)
		_, err := Copy(context.Background(), filepath.Join(dir, "src"), filepath.Join(dir, "dst"), Options{})
		if !errors.Is(err, os.ErrExist) {
			t.Errorf("Copy over an existing dst: %v", err)
		}
	})
	t.Run("src is a symlink", func(t *testing.T) {
		dir := t.TempDir()
		build(t, filepath.Join(dir, "real"), []node{F("a", "a")})
		os.Symlink("real", filepath.Join(dir, "src"))
		_, err := Copy(context.Background(), filepath.Join(dir, "src"), filepath.Join(dir, "dst"), Options{})
		if err == nil {
			t.Errorf("Copy followed a symlinked root")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		dir := t.TempDir()
		build(t, filepath.Join(dir, "src"), []node{F("a", "a"), F("b/c", "c")})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Copy(ctx, filepath.Join(dir, "src"), filepath.Join(dir, "dst"), Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Copy: %v, want context.Canceled", err)
		}
	})
}

// copyContent stops at the size it is given (the size an fstat gave), by
// copy_file_range and by read and write alike, and copies to the end
// without one.
func TestCopyContentSize(t *testing.T) {
	data := strings.Repeat("0123456789", 100_000) // 1 MB: more than one read
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfr := range []bool{true, false} {
		for _, size := range []int64{-1, 1, 4096, 300_001, int64(len(data))} {
			sfd, err := unix.Open(src, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			dfd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			var told int64
			n, err := copyContent(dfd, sfd, size, cfr, func(k int64) { told += k })
			unix.Close(sfd)
			unix.Close(dfd)
			want := data
			if size > 0 {
				want = data[:size]
			}
			got, rerr := os.ReadFile(dst)
			if err != nil || rerr != nil || n != int64(len(want)) || told != n || string(got) != want {
				t.Errorf("cfr=%v size=%d: copied %d (told %d), %d bytes in the copy, err %v %v; want %d",
					cfr, size, n, told, len(got), err, rerr, len(want))
			}
		}
	}
}

func TestKernelAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    bool
	}{
		{"6.1.0-18-amd64", true},
		{"5.8.0", true},
		{"5.10.209", true},
		{"5.7.19-arch1", false},
		{"4.19.0-26-amd64", false},
		{"10.0", true},
		{"", false},
		{"linux", false},
	} {
		if got := kernelAtLeast(tc.release, 5, 8); got != tc.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", tc.release, got, tc.want)
		}
	}
}
