package tree

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCacheHashes: a hashing scan reads only the files that changed since
// an earlier scan read them, and never trusts a file changed too recently.
func TestCacheHashes(t *testing.T) {
	root := t.TempDir()
	build(t, root, mailHome())
	var opened atomic.Int32
	scan := func(c *Cache) *Manifest {
		t.Helper()
		opened.Store(0)
		m, err := Scan(context.Background(), root, ScanOptions{Hash: true, Cache: c, hook: func(event, rel string) {
			if event == "open" {
				opened.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	files := int32(len(mailHome()) - 1)

	// Just written: within the racy margin, so never kept.
	c := NewCache()
	c.racy = time.Hour
	scan(c)
	if scan(c); opened.Load() != files {
		t.Errorf("second scan read %d files, want all %d (all changed just now)", opened.Load(), files)
	}

	c.racy, c.racyCoarse = 0, 0
	time.Sleep(20 * time.Millisecond) // past a tick of the coarse clock
	first := scan(c)
	again := scan(c)
	if opened.Load() != 0 {
		t.Errorf("scan of an unchanged tree read %d files", opened.Load())
	}
	if d := Compare(first, again, CompareOptions{}); len(d) > 0 {
		t.Errorf("cached hashes differ: %v", d)
	}

	// New contents, same size, mtime put back: only the ctime tells.
	path := filepath.Join(root, "Maildir/cur/1.M1P1.host,S=46:2,S")
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.ToUpper(msg)), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{st.Atim, st.Mtim}, 0); err != nil {
		t.Fatal(err)
	}
	changed := scan(c)
	if opened.Load() != 1 {
		t.Errorf("scan after one change read %d files, want 1", opened.Load())
	}
	d := Compare(first, changed, CompareOptions{})
	if len(d) != 1 || d[0].Field != "content" {
		t.Errorf("after a rewrite: %v, want one content difference", d)
	}
}

// A copy that reads back what it copies (Options.ReadBack) leaves the
// hashes of both trees in the cache: hashing scans of either read nothing
// and give what a scan without the cache gives, and reading back changed
// no time of the copy.
func TestCacheReadBack(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, mailHome())
	c := NewCache()
	c.racy, c.racyCoarse = 0, 0
	time.Sleep(20 * time.Millisecond) // the source's ctimes past a tick of the coarse clock
	st, err := Copy(context.Background(), src, dst, Options{Cache: c, ReadBack: true})
	if err != nil {
		t.Fatal(err)
	}
	if !st.ReadBack {
		t.Errorf("stats %+v: ReadBack not set", st)
	}
	for _, root := range []string{src, dst} {
		var opened atomic.Int32
		cached, err := Scan(context.Background(), root, ScanOptions{Hash: true, Cache: c, hook: func(event, rel string) {
			if event == "open" {
				opened.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if opened.Load() != 0 {
			t.Errorf("%s: the scan after the copy read %d files, want none", root, opened.Load())
		}
		read, err := Scan(context.Background(), root, ScanOptions{Hash: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := Compare(read, cached, CompareOptions{}); len(d) > 0 {
			t.Errorf("%s: cached hashes differ from read ones: %v", root, d)
		}
	}
	sameTree(t, src, dst)
	for _, e := range mustScan(t, src).Entries {
		if e.Kind != File || e.Link != "" {
			continue
		}
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, e.Path), &a); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(dst, e.Path), &b); err != nil {
			t.Fatal(err)
		}
		if a.Atim != b.Atim || a.Mtim != b.Mtim {
			t.Errorf("%s: copy's atime %v mtime %v, source's %v %v", e.Path, b.Atim, b.Mtim, a.Atim, a.Mtim)
		}
	}

	// Without a cache there is nowhere to keep them.
	if st, err := Copy(context.Background(), src, filepath.Join(dir, "other"), Options{ReadBack: true}); err != nil || st.ReadBack {
		t.Errorf("without a cache: ReadBack %v, err %v", st.ReadBack, err)
	}
}

// TestCacheCopy: the manifest a cache keeps of a copy is what a scan of
// the copy says, through many passes of many kinds of change; and a copy
// changed behind Sync's back is scanned again.
func TestCacheCopy(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("fsync-batched=%v", batched), func(t *testing.T) { testCacheCopy(t, batched) })
	}
}

func testCacheCopy(t *testing.T, batched bool) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, append(mailHome(),
		H("Maildir/.Sent/cur/9.M9P9.host,S=46:2,S", "Maildir/cur/1.M1P1.host,S=46:2,S"),
		L("Maildir/link", "cur"),
	))
	c := NewCache()
	opt := Options{Cache: c, Workers: 3, noSyncfs: batched}
	if _, err := Copy(context.Background(), src, dst, opt); err != nil {
		t.Fatal(err)
	}
	checkCachedCopy(t, c, dst)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		w := &mailWriter{root: src, r: r, seq: round * 100}
		for range 1 + r.IntN(8) {
			if err := w.step(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		// Every other Sync is a Last one, whose manifest of the copy is
		// made only when the next Sync asks for it.
		opt.Last = round%2 == 1
		if _, err := Sync(context.Background(), src, dst, opt); err != nil {
			t.Fatalf("round %d: Sync: %v", round, err)
		}
		sameTree(t, src, dst)
		checkCachedCopy(t, c, dst)
		if t.Failed() {
			t.Fatalf("round %d, after: %s", round, w.log)
		}
	}

	// A name made in the copy by someone else is seen: its folder
	// changed. So it is when the manifest was left to be made later
	// (Last), and is made after the name was planted: the folders were
	// looked at when the Sync ended.
	opt.Last = true
	if _, err := Sync(context.Background(), src, dst, opt); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dst, "Maildir/cur/planted:2,S")
	if err := os.WriteFile(extra, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Sync(context.Background(), src, dst, opt)
	if err != nil || st.Removed != 1 {
		t.Fatalf("Sync after a name was planted: %+v, %v; want it removed", st, err)
	}
	sameTree(t, src, dst)

	// Contents changed in place, size and mtime kept, no name touched:
	// the cached manifest cannot see it, so this Sync does nothing, and a
	// verify (hashed scans of both sides) must be what finds it.
	ents, _ := os.ReadDir(filepath.Join(dst, "Maildir/cur"))
	victim := filepath.Join(dst, "Maildir/cur", ents[0].Name())
	var vst unix.Stat_t
	unix.Lstat(victim, &vst)
	data, _ := os.ReadFile(victim)
	if err := os.WriteFile(victim, []byte(strings.ToUpper(string(data))), 0); err != nil {
		t.Fatal(err)
	}
	unix.UtimesNanoAt(unix.AT_FDCWD, victim, []unix.Timespec{vst.Atim, vst.Mtim}, 0)
	if st, err := Sync(context.Background(), src, dst, opt); err != nil || st.Files != 0 {
		t.Fatalf("Sync: %+v, %v", st, err)
	}
	d := Compare(mustScan(t, src), mustScan(t, dst), CompareOptions{IgnoreOwners: !isRoot()})
	if len(d) != 1 || d[0].Field != "content" {
		t.Fatalf("verify after a rewrite in the copy: %v, want the content difference", d)
	}
	// Without the cache, a hashed Sync mends it.
	if _, err := Sync(context.Background(), src, dst, Options{Hash: true, Cache: c}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
}

// mailWriter changes a mailbox as its user and the mail system do: it
// delivers (tmp/ then new/), reads (new/ to cur/), flags (renames in
// cur/), expunges, rewrites the index files, appends to an mbox, and now
// and then makes or removes a folder, a hard link or a mode.
type mailWriter struct {
	root string
	r    *rand.Rand
	seq  int
	log  []string
}

func (w *mailWriter) path(rel string) string { return filepath.Join(w.root, rel) }

func (w *mailWriter) names(dir string) []string {
	ents, _ := os.ReadDir(w.path(dir))
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

func (w *mailWriter) pick(dir string) string {
	n := w.names(dir)
	if len(n) == 0 {
		return ""
	}
	return n[w.r.IntN(len(n))]
}

// step makes one change; errors from a name that went away meanwhile (a
// second writer) are not errors.
func (w *mailWriter) step() error {
	folders := []string{"Maildir", "Maildir/.Sent"}
	f := folders[w.r.IntN(len(folders))]
	w.seq++
	var err error
	switch k := w.r.IntN(20); {
	case k < 6: // deliver
		body := fmt.Sprintf("%sid %d\n%s", msg, w.seq, strings.Repeat("x", w.r.IntN(3000)))
		base := fmt.Sprintf("%d.M%dP%d.host,S=%d", 1700000000+w.seq, w.seq, w.r.IntN(1000), len(body))
		os.MkdirAll(w.path(f+"/tmp"), 0o700)
		os.MkdirAll(w.path(f+"/new"), 0o700)
		tmp := w.path(f + "/tmp/" + base)
		if err = os.WriteFile(tmp, []byte(body), 0o600); err == nil {
			err = os.Rename(tmp, w.path(f+"/new/"+base))
		}
		w.log = append(w.log, "deliver "+f+"/new/"+base)
	case k < 9: // read: new/ to cur/
		if n := w.pick(f + "/new"); n != "" {
			os.MkdirAll(w.path(f+"/cur"), 0o700)
			err = os.Rename(w.path(f+"/new/"+n), w.path(f+"/cur/"+n+":2,S"))
			w.log = append(w.log, "read "+f+"/new/"+n)
		}
	case k < 13: // flag
		if n := w.pick(f + "/cur"); n != "" {
			flags := []string{"", "S", "RS", "FS", "FRS", "ST"}[w.r.IntN(6)]
			err = os.Rename(w.path(f+"/cur/"+n), w.path(f+"/cur/"+messageBase(n)+":2,"+flags))
			w.log = append(w.log, "flag "+f+"/cur/"+n+" "+flags)
		}
	case k < 15: // expunge
		if n := w.pick(f + "/cur"); n != "" {
			err = os.Remove(w.path(f + "/cur/" + n))
			w.log = append(w.log, "expunge "+f+"/cur/"+n)
		}
	case k < 16: // index files
		tmp := w.path(f + "/dovecot-uidlist.lock")
		if err = os.WriteFile(tmp, fmt.Appendf(nil, "3 V1 N%d\n", w.seq), 0o600); err == nil {
			err = os.Rename(tmp, w.path(f+"/dovecot-uidlist"))
		}
		if lf, e := os.OpenFile(w.path(f+"/dovecot.index.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); e == nil {
			lf.WriteString("record\n")
			lf.Close()
		}
		w.log = append(w.log, "index "+f)
	case k < 17: // mbox delivery
		os.MkdirAll(w.path("mail"), 0o700)
		var lf *os.File
		if lf, err = os.OpenFile(w.path("mail/inbox"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			_, err = fmt.Fprintf(lf, "From x@example.edu Mon Jan  4 10:00:00 2021\nSubject: %d\n\nbody\n\n", w.seq)
			lf.Close()
		}
		w.log = append(w.log, "mbox")
	case k < 18: // a second name, or a mode
		if n := w.pick(f + "/cur"); n != "" {
			if w.r.IntN(2) == 0 {
				os.MkdirAll(w.path("Maildir/.Archive/cur"), 0o700)
				err = os.Link(w.path(f+"/cur/"+n), w.path("Maildir/.Archive/cur/"+n))
				w.log = append(w.log, "link "+f+"/cur/"+n)
			} else {
				err = os.Chmod(w.path(f+"/cur/"+n), 0o640)
				w.log = append(w.log, "chmod "+f+"/cur/"+n)
			}
		}
	case k < 19: // a folder comes or goes
		if _, e := os.Lstat(w.path("Maildir/.Archive")); e == nil {
			err = os.RemoveAll(w.path("Maildir/.Archive"))
			w.log = append(w.log, "rmdir .Archive")
		} else {
			err = os.MkdirAll(w.path("Maildir/.Archive/cur"), 0o700)
			w.log = append(w.log, "mkdir .Archive")
		}
	default: // the user's own file at the top of the home
		err = os.WriteFile(w.path(".forward"), fmt.Appendf(nil, "user%d\n", w.seq), 0o600)
		w.log = append(w.log, ".forward")
	}
	if os.IsNotExist(err) || os.IsExist(err) {
		return nil
	}
	return err
}

// A ctime on a whole millisecond may come from a file system whose
// timestamps count seconds: a write in the same second would keep it, so
// such files need the long margin.
func TestCacheRacyMargin(t *testing.T) {
	c := NewCache()
	for _, tc := range []struct {
		ctime unix.Timespec
		want  time.Duration
	}{
		{unix.Timespec{Sec: 1700000000, Nsec: 0}, racyCoarse},
		{unix.Timespec{Sec: 1700000000, Nsec: 10_000_000}, racyCoarse},
		{unix.Timespec{Sec: 1700000000, Nsec: 123_456_789}, racyMargin},
		{unix.Timespec{Sec: 1700000000, Nsec: 1}, racyMargin},
	} {
		if got := c.racyFor(tc.ctime); got != tc.want {
			t.Errorf("racyFor(%v) = %v, want %v", tc.ctime, got, tc.want)
		}
	}
	// Kept only when older than the scan's start by more than the margin.
	st := unix.Stat_t{Dev: 1, Ino: 2, Size: 3, Ctim: unix.Timespec{Sec: 1700000000, Nsec: 123_456_789}}
	began := time.Unix(1700000000, 123_456_789).Add(racyMargin / 2)
	c.putHash(&st, Hash{1}, began)
	if _, ok := c.hash(&st); ok {
		t.Error("a hash read within the margin was kept")
	}
	c.putHash(&st, Hash{1}, began.Add(racyMargin))
	if h, ok := c.hash(&st); !ok || h != (Hash{1}) {
		t.Errorf("a hash read past the margin: %v, %v", h, ok)
	}
	st.Ctim.Nsec = 0
	c.putHash(&st, Hash{2}, time.Unix(1700000001, 0))
	if h, _ := c.hash(&st); h == (Hash{2}) {
		t.Error("a hash of a file with a whole-second ctime, read a second later, was kept")
	}
}
