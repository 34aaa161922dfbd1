package tree

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"
)

// genMaildir writes a home of n small messages, sized like a mailbox of
// plain-text mail (1 to 12 KiB), spread over folders as a user's are, and
// returns its content bytes.
func genMaildir(tb testing.TB, root string, n int) int64 {
	tb.Helper()
	folders := []struct {
		dir   string
		share int // per 20
	}{
		{"Maildir/cur", 14}, {"Maildir/new", 2}, {"Maildir/.Sent/cur", 3}, {"Maildir/.Archive.2020/cur", 1},
	}
	for _, f := range folders {
		if err := os.MkdirAll(filepath.Join(root, f.dir), 0o700); err != nil {
			tb.Fatal(err)
		}
		os.MkdirAll(filepath.Join(root, filepath.Dir(f.dir), "tmp"), 0o700)
	}
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 220)
	var total int64
	x := uint32(2463534242)
	for i := range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f := folders[0].dir
		for k, acc := 0, int(i%20); k < len(folders); k++ {
			if acc < folders[k].share {
				f = folders[k].dir
				break
			}
			acc -= folders[k].share
		}
		size := 1024 + int(x%(11*1024))
		name := fmt.Sprintf("%d.M%dP%d.host,S=%d,W=%d:2,S", 1600000000+i, x%1000000, i, size, size+20)
		data := fmt.Sprintf("Message-ID: <%d@example.edu>\n\n", i) + body
		if err := os.WriteFile(filepath.Join(root, f, name), []byte(data[:size]), 0o600); err != nil {
			tb.Fatal(err)
		}
		total += int64(size)
	}
	for _, c := range []string{"dovecot-uidlist", "dovecot.index", "dovecot.index.cache", "dovecot.index.log", "subscriptions"} {
		os.WriteFile(filepath.Join(root, "Maildir", c), []byte(c), 0o600)
	}
	return total
}

// benchHome is the tree the benchmarks copy and scan: TREE_BENCH_HOME if
// set, else a generated one of TREE_BENCH_FILES messages (20000 by
// default), made once per run.
func benchHome(b *testing.B) (string, int64) {
	if home := os.Getenv("TREE_BENCH_HOME"); home != "" {
		m, err := Scan(context.Background(), home, ScanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return home, m.Totals.Bytes
	}
	n := 20000
	if s := os.Getenv("TREE_BENCH_FILES"); s != "" {
		fmt.Sscan(s, &n)
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "home")
	size := genMaildir(b, src, n)
	return src, size
}

func BenchmarkCopy(b *testing.B) {
	src, size := benchHome(b)
	for _, v := range []struct {
		name string
		opt  Options
	}{
		{"workers=1", Options{Workers: 1}},
		{"workers=4", Options{Workers: 4}},
		{"workers=16", Options{Workers: 16}},
		{"workers=64", Options{Workers: 64}},
		{"workers=16/fsync-each", Options{Workers: 16, fsyncEach: true}},
		{"workers=16/fsync-batched", Options{Workers: 16, noSyncfs: true}},
		{"workers=16/read-write", Options{Workers: 16, noCopyFileRange: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				dst := filepath.Join(b.TempDir(), "copy")
				if _, err := Copy(context.Background(), src, dst, v.opt); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(dst)
				b.StartTimer()
			}
		})
	}
}

func BenchmarkScan(b *testing.B) {
	src, size := benchHome(b)
	for _, hashed := range []bool{false, true} {
		b.Run(fmt.Sprintf("hash=%v", hashed), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				if _, err := Scan(context.Background(), src, ScanOptions{Hash: hashed}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// What the scans under a hold do: every file was hashed before, and
	// only its metadata is read again.
	b.Run("hash=cached", func(b *testing.B) {
		b.SetBytes(size)
		c := NewCache()
		if _, err := Scan(context.Background(), src, ScanOptions{Hash: true, Cache: c}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := Scan(context.Background(), src, ScanOptions{Hash: true, Cache: c}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPlanSync is the work of a pass under the hold besides its
// scans: pairing the manifests of both trees and finding what to do, here
// a few messages flagged (renamed) and expunged in a big folder.
func BenchmarkPlanSync(b *testing.B) {
	src, _ := benchHome(b)
	s, err := Scan(context.Background(), src, ScanOptions{Hash: true})
	if err != nil {
		b.Fatal(err)
	}
	d := &Manifest{Entries: slices.Clone(s.Entries), Hashed: true}
	var renamed, expunged int
	for i := len(d.Entries) - 1; i >= 0 && renamed+expunged < 20; i -= 97 {
		e := &d.Entries[i]
		if _, ok := messageKey(e.Path); !ok || e.Kind != File {
			continue
		}
		if renamed <= expunged {
			e.Path = messageBase(e.Path) + ":2,T" // the source has other flags
			renamed++
		} else {
			s.Entries = slices.DeleteFunc(s.Entries, func(x Entry) bool { return x.Path == e.Path })
			expunged++
		}
	}
	d.Entries = sortByPath(d.Entries)
	b.ResetTimer()
	for b.Loop() {
		if p := planSync(s, d, true); len(p.rename) != renamed || p.removed != expunged {
			b.Fatalf("%d renamed, %d removed; want %d, %d", len(p.rename), p.removed, renamed, expunged)
		}
	}
}

// BenchmarkHash shows why Hash is XXH3-128: compare with SHA-256, which
// uses the CPU's SHA instructions where it has them. (BLAKE3, measured
// too, came between the two; it is left out to keep it out of go.mod.)
func BenchmarkHash(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 4 << 20} {
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for _, h := range []struct {
			name string
			new  func() hash.Hash
		}{
			{"xxh3-128", func() hash.Hash { return xxh3.New128() }},
			{"sha256", sha256.New},
		} {
			b.Run(fmt.Sprintf("%s/%dKiB", h.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				var sum []byte
				for b.Loop() {
					d := h.new()
					d.Write(buf)
					sum = d.Sum(sum[:0])
				}
			})
		}
	}
}
