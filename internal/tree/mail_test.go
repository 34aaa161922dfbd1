package tree

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMessageKey(t *testing.T) {
	for _, tc := range []struct {
		rel, key string
		ok       bool
	}{
		{rel: "Maildir/cur/1.M2P3.host,S=10:2,S", key: "Maildir\x001.M2P3.host,S=10", ok: true},
		{rel: "Maildir/new/1.M2P3.host,S=10", key: "Maildir\x001.M2P3.host,S=10", ok: true},
		{rel: "Maildir/.Sent/cur/1.host:2,", key: "Maildir/.Sent\x001.host", ok: true},
		{rel: "Maildir/cur/1.host!2,FS", key: "Maildir\x001.host", ok: true},
		{rel: "Maildir/cur/1.host;2,FS", key: "Maildir\x001.host", ok: true},
		{rel: "Maildir/cur/1:host:2,S", key: "Maildir\x001:host", ok: true},
		{rel: "cur/1.host:2,S", key: ".\x001.host", ok: true},
		{rel: "Maildir/tmp/1.host", ok: false},
		{rel: "Maildir/dovecot-uidlist", ok: false},
		{rel: "Maildir/cur/.hidden", ok: false},
		{rel: "mbox", ok: false},
	} {
		key, ok := messageKey(tc.rel)
		if key != tc.key || ok != tc.ok {
			t.Errorf("messageKey(%q) = %q, %v; want %q, %v", tc.rel, key, ok, tc.key, tc.ok)
		}
	}
	for rel, want := range map[string]bool{
		"mail/inbox": true, "inbox": true, "Maildir/dovecot.index.log": true,
		"Maildir/cur/1:2,S": false, "Maildir/new/1": false, "Maildir/tmp/1": false,
	} {
		if got := mboxCandidate(rel); got != want {
			t.Errorf("mboxCandidate(%q) = %v", rel, got)
		}
	}
}

const mbox1 = "From a@example.edu Mon Jan  4 10:00:00 2021\nSubject: one\n\nbody one\n\n"
const mbox2 = "From b@example.edu Tue Jan  5 10:00:00 2021\nSubject: two\n\nbody two\n\n"

func mailHome() []node {
	return []node{
		F("Maildir/cur/1.M1P1.host,S=46:2,S", msg),
		F("Maildir/cur/2.M2P2.host,S=49:2,", msg+"two"),
		F("Maildir/new/3.M3P3.host,S=51", msg+"three"),
		F("Maildir/.Sent/cur/4.M4P4.host,S=50:2,S", msg+"four"),
		F("Maildir/dovecot-uidlist", "3 V1 N4\n"),
		F("Maildir/dovecot.index.log", "log1"),
		F("mail/inbox", mbox1),
		F("mail/notes", "not mail"),
		D("Maildir/tmp"),
	}
}

// TestSyncMail: the changes a live mailbox goes through, each brought over
// the cheap way where that is right, and always to an exact copy.
func TestSyncMail(t *testing.T) {
	p := func(root, rel string) string { return filepath.Join(root, rel) }
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	appendTo := func(t *testing.T, path, data string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.WriteString(data)
		must(t, err)
		must(t, f.Close())
	}
	type want struct{ files, renamed, appended, removed int }
	cases := []struct {
		name       string
		hash       bool
		src, dst   func(t *testing.T, root string)
		hook       func(t *testing.T, src, event, rel string)
		want       want
		wantVanish string
	}{
		{name: "flags changed", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/cur/2.M2P2.host,S=49:2,"), p(r, "Maildir/cur/2.M2P2.host,S=49:2,RS")))
		}, want: want{renamed: 1}},
		{name: "flags changed, hashed", hash: true, src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/cur/2.M2P2.host,S=49:2,"), p(r, "Maildir/cur/2.M2P2.host,S=49:2,RS")))
		}, want: want{renamed: 1}},
		{name: "new to cur", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/new/3.M3P3.host,S=51"), p(r, "Maildir/cur/3.M3P3.host,S=51:2,S")))
		}, want: want{renamed: 1}},
		{name: "renamed and mode changed", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/cur/1.M1P1.host,S=46:2,S"), p(r, "Maildir/cur/1.M1P1.host,S=46:2,FS")))
			must(t, os.Chmod(p(r, "Maildir/cur/1.M1P1.host,S=46:2,FS"), 0o640))
		}, want: want{renamed: 1}},
		{name: "same base, other contents of the same size", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/1.M1P1.host,S=46:2,S")))
			must(t, os.WriteFile(p(r, "Maildir/cur/1.M1P1.host,S=46:2,RS"), []byte(strings.ToUpper(msg)), 0o600))
		}, want: want{files: 1, removed: 1}},
		{name: "same base, other contents of the same size, hashed", hash: true, src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/1.M1P1.host,S=46:2,S")))
			must(t, os.WriteFile(p(r, "Maildir/cur/1.M1P1.host,S=46:2,RS"), []byte(strings.ToUpper(msg)), 0o600))
		}, want: want{files: 1, removed: 1}},
		{name: "same base, other size", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/1.M1P1.host,S=46:2,S")))
			must(t, os.WriteFile(p(r, "Maildir/cur/1.M1P1.host,S=46:2,RS"), []byte(msg+"x"), 0o600))
		}, want: want{files: 1, removed: 1}},
		{name: "moved to another folder is copied", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/cur/1.M1P1.host,S=46:2,S"), p(r, "Maildir/.Sent/cur/1.M1P1.host,S=46:2,S")))
		}, want: want{files: 1, removed: 1}},
		{name: "two new names for one old", src: func(t *testing.T, r string) {
			must(t, os.Link(p(r, "Maildir/new/3.M3P3.host,S=51"), p(r, "Maildir/cur/3.M3P3.host,S=51:2,S")))
			must(t, os.Rename(p(r, "Maildir/new/3.M3P3.host,S=51"), p(r, "Maildir/cur/3.M3P3.host,S=51:2,RS")))
		}, want: want{files: 1, removed: 1}},
		{name: "expunged", src: func(t *testing.T, r string) {
			must(t, os.Remove(p(r, "Maildir/cur/2.M2P2.host,S=49:2,")))
		}, want: want{removed: 1}},
		{name: "renamed, then gone before the rename", src: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "Maildir/cur/2.M2P2.host,S=49:2,"), p(r, "Maildir/cur/2.M2P2.host,S=49:2,T")))
		}, hook: func(t *testing.T, src, event, rel string) {
			if event == "rename" {
				must(t, os.Remove(p(src, rel)))
			}
		}, wantVanish: "Maildir/cur/2.M2P2.host,S=49:2,T"},
		{name: "index files copied whole", src: func(t *testing.T, r string) {
			appendTo(t, p(r, "Maildir/dovecot.index.log"), "log2")
			must(t, os.WriteFile(p(r, "Maildir/dovecot-uidlist"), []byte("3 V1 N5\n"), 0o600))
		}, want: want{files: 2}},
		{name: "mbox grew", src: func(t *testing.T, r string) {
			appendTo(t, p(r, "mail/inbox"), mbox2)
		}, want: want{appended: 1}},
		{name: "mbox grew, hashed", hash: true, src: func(t *testing.T, r string) {
			appendTo(t, p(r, "mail/inbox"), mbox2)
		}, want: want{appended: 1}},
		{name: "mbox rewritten and longer", src: func(t *testing.T, r string) {
			must(t, os.WriteFile(p(r, "mail/inbox"), []byte(strings.Replace(mbox1, "one", "ONE", 1)+mbox2), 0o600))
		}, want: want{files: 1}},
		{name: "mbox head changed in the copy", src: func(t *testing.T, r string) {
			appendTo(t, p(r, "mail/inbox"), mbox2)
		}, dst: func(t *testing.T, r string) {
			path := p(r, "mail/inbox")
			var st unix.Stat_t
			must(t, unix.Lstat(path, &st))
			must(t, os.WriteFile(path, []byte(strings.Replace(mbox1, "one", "ONE", 1)), 0o600))
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{st.Atim, st.Mtim}, 0))
		}, want: want{files: 1}},
		{name: "not an mbox, grew", src: func(t *testing.T, r string) {
			appendTo(t, p(r, "mail/notes"), " at all")
		}, want: want{files: 1}},
		{name: "mbox with a second name grew", src: func(t *testing.T, r string) {
			must(t, os.Link(p(r, "mail/inbox"), p(r, "mail/inbox.lnk")))
			appendTo(t, p(r, "mail/inbox"), mbox2)
		}, want: want{files: 1}},
		{name: "message in cur grew", src: func(t *testing.T, r string) {
			appendTo(t, p(r, "Maildir/cur/1.M1P1.host,S=46:2,S"), "more")
		}, want: want{files: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cached := range []bool{false, true} {
				dir := t.TempDir()
				src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
				build(t, src, mailHome())
				opt := Options{Hash: tc.hash}
				if cached {
					opt.Cache = NewCache()
				}
				if _, err := Copy(context.Background(), src, dst, opt); err != nil {
					t.Fatal(err)
				}
				tc.src(t, src)
				if tc.dst != nil {
					tc.dst(t, dst)
				}
				before := mustScan(t, src)
				if tc.hook != nil {
					opt.hook = func(event, rel string) { tc.hook(t, src, event, rel) }
				}
				st, err := Sync(context.Background(), src, dst, opt)
				if err != nil {
					t.Fatalf("Sync: %v", err)
				}
				sameTree(t, src, dst)
				if tc.hook == nil {
					if d := Compare(before, mustScan(t, src), CompareOptions{}); len(d) > 0 {
						t.Fatalf("Sync changed the source: %v", d)
					}
				}
				got := want{files: st.Files, renamed: st.Renamed, appended: st.Appended, removed: st.Removed}
				if tc.wantVanish == "" && got != tc.want {
					t.Errorf("cached=%v: stats %+v, want %+v", cached, got, tc.want)
				}
				if tc.wantVanish != "" && !contains(st.Vanished, tc.wantVanish) {
					t.Errorf("vanished %q, want %q", st.Vanished, tc.wantVanish)
				}
				if tc.want.appended > 0 && st.Bytes != int64(len(mbox2)) {
					t.Errorf("copied %d bytes, want only the %d appended", st.Bytes, len(mbox2))
				}
				if cached && !tc.hash {
					checkCachedCopy(t, opt.Cache, dst)
				}
				// A second Sync finds nothing more to do.
				st, err = Sync(context.Background(), src, dst, opt)
				if err != nil {
					t.Fatal(err)
				}
				if n := st.Files + st.Dirs + st.Symlinks + st.HardLinks + st.Removed + st.Fixed + st.Renamed + st.Appended; n != 0 {
					t.Errorf("cached=%v: second Sync did work: %+v", cached, st)
				}
			}
		})
	}
}

// checkCachedCopy checks that the manifest the cache keeps of the copy at
// dst is what a scan of it says.
func checkCachedCopy(t *testing.T, c *Cache, dst string) {
	t.Helper()
	fd, err := unix.Open(dst, dirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got := c.copyOf(fd)
	if got == nil {
		t.Fatal("the cache has no manifest of the copy")
	}
	want, err := Scan(context.Background(), dst, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Compare(want, got, CompareOptions{}) {
		t.Errorf("cached manifest: %s", d)
	}
	if got.Totals != want.Totals {
		t.Errorf("cached totals %+v, scan %+v", got.Totals, want.Totals)
	}
	for i := range want.Entries {
		if i < len(got.Entries) && (got.Entries[i].ino != want.Entries[i].ino || got.Entries[i].ctime != want.Entries[i].ctime) {
			t.Errorf("cached %q: inode or ctime differs from a scan", want.Entries[i].Path)
		}
	}
}
