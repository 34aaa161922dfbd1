package xfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// mailTree makes a home with what a copy must keep: odd names, modes,
// hard links, symlinks, an empty folder, a large file and mtimes to the
// nanosecond.
func mailTree(t *testing.T, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	files := map[string]int{
		"cur/1.a:2,S":           300,
		"cur/2.b:2,RS":          5000,
		"cur/x y\t\xff.c:2,":    10,
		".Sent/cur/3.d:2,S":     40000,
		".Sent/new/4.e":         0,
		"big/mbox":              3 << 20,
		"new/5.f":               700,
		".Trash/tmp/6.g":        1,
		"dovecot-uidlist":       120,
		"sub/deep/er/still/7.h": 64,
	}
	for p, n := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = "From abcdefgh\n"[r.IntN(14)]
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1_700_000_000+int64(r.IntN(1000)), int64(r.IntN(1e9)))
		os.Chtimes(full, mt, mt)
	}
	for i := range 200 {
		b := make([]byte, 5000)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		p := filepath.Join(dir, "cur", fmt.Sprintf("%d.m%d:2,S", 1_700_000_000+i, i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o750)
	os.Chmod(filepath.Join(dir, "dovecot-uidlist"), 0o640)
	os.Chmod(filepath.Join(dir, "sub"), 0o2750)
	if err := os.Link(filepath.Join(dir, "cur/1.a:2,S"), filepath.Join(dir, "new/1.link")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("../cur", filepath.Join(dir, "new/to-cur"))
	os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link"))
}

func scan(t *testing.T, dir string) *tree.Manifest {
	t.Helper()
	m, err := tree.Scan(context.Background(), dir, tree.ScanOptions{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func same(t *testing.T, a, b string) {
	t.Helper()
	if ds := tree.Compare(scan(t, a), scan(t, b), tree.CompareOptions{IgnoreOwners: os.Geteuid() != 0}); len(ds) > 0 {
		for _, d := range ds[:min(5, len(ds))] {
			t.Errorf("differs: %s", d)
		}
	}
}

type side struct {
	fsroot string
	path   string // host-absolute
}

func (s side) real() string { return filepath.Join(s.fsroot, s.path) }

// transfer runs one whole transfer in memory, the stream cut after cut
// bytes if cut > 0.
func transfer(t *testing.T, src, dst side, mode host.CopyMode, resume bool, compress string, cut int) (tree.Stats, []string, error) {
	t.Helper()
	ctx := context.Background()
	m, err := ScanSource(ctx, src.fsroot, src.path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Prepare(ctx, dst.fsroot, dst.path, m, ReceiveOptions{Mode: mode, Resume: resume})
	if err != nil {
		return tree.Stats{}, nil, err
	}
	defer r.Close()
	need := r.Need()
	var buf bytes.Buffer
	var w io.Writer = &buf
	if cut > 0 {
		w = &cutWriter{w: &buf, left: cut}
	}
	if _, err := Send(ctx, src.fsroot, src.path, m, need, w, SendOptions{Mode: mode, Compress: compress}); err != nil && cut == 0 {
		t.Fatalf("send: %v", err)
	}
	st, err := r.Receive(ctx, &buf)
	return st, need, err
}

type cutWriter struct {
	w    io.Writer
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("connection cut")
	}
	if len(p) > c.left {
		n, _ := c.w.Write(p[:c.left])
		c.left = 0
		return n, errors.New("connection cut")
	}
	c.left -= len(p)
	return c.w.Write(p)
}

func setup(t *testing.T) (side, side) {
	t.Helper()
	a, b := t.TempDir(), t.TempDir()
	src := side{a, "/r1/alice"}
	mailTree(t, src.real())
	os.MkdirAll(filepath.Join(b, "r2/.maildist-staging"), 0o700)
	return src, side{b, "/r2/.maildist-staging/alice.1"}
}

func TestFreshCopyIsExact(t *testing.T) {
	for _, c := range []string{CompressNone, CompressZstd, CompressAuto} {
		t.Run(c, func(t *testing.T) {
			src, dst := setup(t)
			st, need, err := transfer(t, src, dst, host.CopyFresh, false, c, 0)
			if err != nil {
				t.Fatal(err)
			}
			same(t, src.real(), dst.real())
			if st.Files != len(need) || st.HardLinks != 1 || st.Symlinks != 2 || st.Bytes < 3<<20 {
				t.Errorf("stats %+v, need %d", st, len(need))
			}
		})
	}
}

// A copy cut off mid-stream is taken up again where it stopped: the
// second attempt asks only for what the first did not write.
func TestResumeSendsOnlyTheRest(t *testing.T) {
	src, dst := setup(t)
	_, need1, err := transfer(t, src, dst, host.CopyFresh, false, CompressNone, 3<<20+400000)
	if err == nil {
		t.Fatal("a cut stream was received whole")
	}
	// Fresh again without resume: the partial copy is in the way.
	if _, _, err := transfer(t, src, dst, host.CopyFresh, false, CompressNone, 0); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("fresh over a partial copy: %v", err)
	}
	st, need2, err := transfer(t, src, dst, host.CopyFresh, true, CompressNone, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(need2) == 0 || len(need2) >= len(need1) {
		t.Errorf("resume asked for %d files, the first attempt for %d", len(need2), len(need1))
	}
	if st.Bytes >= 3<<20 {
		t.Errorf("resume sent %d bytes again", st.Bytes)
	}
	same(t, src.real(), dst.real())
}

// Sync brings an earlier copy up to date: changed files again, removed
// ones gone, metadata set.
func TestSyncAfterChanges(t *testing.T) {
	src, dst := setup(t)
	if _, _, err := transfer(t, src, dst, host.CopyLive, false, CompressAuto, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src.real(), "new/5.f"))
	os.WriteFile(filepath.Join(src.real(), "cur/9.z:2,"), []byte("new mail"), 0o600)
	os.WriteFile(filepath.Join(src.real(), "dovecot-uidlist"), []byte("changed"), 0o640)
	os.Chmod(filepath.Join(src.real(), "cur/2.b:2,RS"), 0o644)
	os.RemoveAll(filepath.Join(src.real(), "sub/deep"))
	os.WriteFile(filepath.Join(dst.real(), "stray"), []byte("x"), 0o600)
	st, need, err := transfer(t, src, dst, host.CopySync, false, CompressAuto, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(need) != 2 || st.Files != 2 || st.Fixed != 1 {
		t.Errorf("need %q, stats %+v", need, st)
	}
	same(t, src.real(), dst.real())
}

// A symlink planted where the copy goes, or in it, is never followed.
func TestPlantedSymlinks(t *testing.T) {
	src, dst := setup(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o600)

	// The staging path itself a symlink out.
	os.Symlink(outside, dst.real())
	if _, _, err := transfer(t, src, dst, host.CopySync, false, CompressNone, 0); !errors.Is(err, proto.ErrNotFolder) {
		t.Errorf("into a symlink: %v", err)
	}
	os.Remove(dst.real())

	// A folder on the way a symlink.
	via := side{dst.fsroot, "/r2/via/alice.1"}
	os.Symlink(filepath.Join(dst.fsroot, "r2/.maildist-staging"), filepath.Join(dst.fsroot, "r2/via"))
	if _, _, err := transfer(t, src, via, host.CopyFresh, false, CompressNone, 0); !errors.Is(err, proto.ErrNotFolder) {
		t.Errorf("through a symlinked folder: %v", err)
	}

	// A symlink inside an earlier copy where the source has a folder.
	os.MkdirAll(dst.real(), 0o700)
	os.Symlink(outside, filepath.Join(dst.real(), "cur"))
	if _, _, err := transfer(t, src, dst, host.CopySync, false, CompressNone, 0); err != nil {
		t.Fatal(err)
	}
	same(t, src.real(), dst.real())
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("something was written outside: %v", ents)
	}
}

// A stream may only carry what the receiver asked for.
func TestReceiverRefusesWhatItDidNotAskFor(t *testing.T) {
	src, dst := setup(t)
	ctx := context.Background()
	m, _ := ScanSource(ctx, src.fsroot, src.path)
	r, err := Prepare(ctx, dst.fsroot, dst.path, m, ReceiveOptions{Mode: host.CopyFresh})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	all := r.Need()
	if _, err := Send(ctx, src.fsroot, src.path, m, append(all, all[0]), &buf, SendOptions{}); err == nil {
		// The sender sends it twice; the receiver must refuse.
		if _, err := r.Receive(ctx, &buf); !errors.Is(err, proto.ErrBadRequest) {
			t.Errorf("a file sent twice: %v", err)
		}
	}
	// A sender cannot be asked for a path outside the tree.
	if _, err := Send(ctx, src.fsroot, src.path, m, []string{"../bob/cur/1"}, io.Discard, SendOptions{}); !errors.Is(err, proto.ErrBadRequest) {
		t.Errorf("send of ../: %v", err)
	}
}

func TestNeedListKeepsEveryByte(t *testing.T) {
	in := []string{"cur/a b", "x\ty\n\xff", "é/ü"}
	var b bytes.Buffer
	WriteNeed(&b, in)
	out, err := ReadNeed(&b)
	if err != nil || strings.Join(out, "|") != strings.Join(in, "|") {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := ReadNeed(strings.NewReader(`"../etc"` + "\n")); err == nil {
		t.Error("../ accepted")
	}
}

// slowWriter takes as long as a link of bps bytes a second would.
type slowWriter struct{ bps float64 }

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(float64(len(p)) / s.bps * float64(time.Second)))
	return len(p), nil
}

// Auto compresses when sending compressed is faster: net < comp·(1−r).
func TestAutoDecides(t *testing.T) {
	for _, c := range []struct {
		name         string
		net, comp, r float64
		want         bool
	}{
		{"gigabit, mail", 125e6, 400e6, 0.3, true},
		{"loopback, mail", 2e9, 400e6, 0.3, false},
		{"slow link, already compressed", 10e6, 400e6, 0.99, false},
		{"under a cap", 5e6, 50e6, 0.5, true},
	} {
		bw := &blockWriter{mode: CompressAuto, blocks: 5, net: c.net, comp: c.comp, r: c.r}
		if got := bw.wantZstd(); got != c.want {
			t.Errorf("%s: compress %v, want %v", c.name, got, c.want)
		}
	}
}

// And measures what it decides on: mail on a slow link goes compressed,
// on a fast one raw.
func TestAutoCompressesWhenItPays(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	mail := make([]byte, 1<<20)
	words := []string{"From: ", "kenneth.lay@enron.com", "\r\n", "Subject: ", "gas ", "power ", "California ", "the ", "meeting "}
	for i := 0; i < len(mail); {
		i += copy(mail[i:], words[r.IntN(len(words))])
	}
	for _, c := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"slow link", slowWriter{1e6}, true},
		{"fast link", io.Discard, false},
	} {
		bw, err := newBlockWriter(c.w, CompressAuto)
		if err != nil {
			t.Fatal(err)
		}
		bw.Write(mail)
		bw.Close()
		// Block 0 is compressed to measure, block 1 sent raw to measure.
		compressed := bw.zblocks == bw.blocks-1
		t.Logf("%s: %d of %d blocks compressed, %d bytes on the wire for %d", c.name, bw.zblocks, bw.blocks, bw.wire, len(mail))
		if compressed != c.want {
			t.Errorf("%s: %d of %d blocks compressed", c.name, bw.zblocks, bw.blocks)
		}
	}
}
