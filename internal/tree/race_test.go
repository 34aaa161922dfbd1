package tree

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPassesWhileLive is the pre-copy of a move in small: a first Copy and
// then Syncs of a home while writers deliver, read, flag and expunge mail
// in it, as a user and the mail system do; then the writers stop (the
// hold) and one last Sync must leave an exact copy. Every pass must
// succeed however the home changes under it.
func TestPassesWhileLive(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{name: "plain", opt: Options{Workers: 4}},
		{name: "cached", opt: Options{Workers: 4, Cache: NewCache()}},
		{name: "hashed", opt: Options{Workers: 2, Hash: true, Cache: NewCache()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(3) {
				livePasses(t, seed, tc.opt)
			}
		})
	}
}

func livePasses(t *testing.T, seed uint64, opt Options) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, mailHome())
	// A start of some size, so that passes take a while.
	seeder := &mailWriter{root: src, r: rand.New(rand.NewPCG(seed, 99))}
	for range 300 {
		if err := seeder.step(); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var steps atomic.Int64
	var werr error
	var errOnce sync.Once
	for k := range 2 {
		w := &mailWriter{root: src, r: rand.New(rand.NewPCG(seed, uint64(k))), seq: 100000 * (k + 1)}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := w.step(); err != nil {
					errOnce.Do(func() { werr = err })
					return
				}
				steps.Add(1)
				time.Sleep(time.Duration(w.r.IntN(300)) * time.Microsecond)
			}
		})
	}

	live := opt
	live.SkipVanished = true
	var total Stats
	for pass := 1; pass <= 4; pass++ {
		var st Stats
		var err error
		if pass == 1 {
			st, err = Copy(ctx, src, dst, live)
		} else {
			st, err = Sync(ctx, src, dst, live)
		}
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("seed %d pass %d while live: %v", seed, pass, err)
		}
		total.Renamed += st.Renamed
		total.Appended += st.Appended
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	// The hold: nothing changes the home now.
	before := mustScan(t, src)
	if _, err := Sync(ctx, src, dst, opt); err != nil {
		t.Fatalf("seed %d final Sync: %v", seed, err)
	}
	sameTree(t, src, dst)
	if d := Compare(before, mustScan(t, src), CompareOptions{}); len(d) > 0 {
		t.Fatalf("the final Sync changed the source: %v", d)
	}
	t.Logf("seed %d: %d changes while live; %d renamed, %d appended by the live passes", seed, steps.Load(), total.Renamed, total.Appended)
}

// TestPassFaults cuts a pass short at each kind of step (a Copy, a Sync
// with renames, appends, copies and removals to do) and checks that the
// source is untouched, that the partial copy can be removed, and that a
// later Sync still makes it exact.
func TestPassFaults(t *testing.T) {
	for _, event := range []string{"open-dir", "stat", "copy-dir", "copy", "rename", "grow"} {
		for _, first := range []bool{true, false} {
			if first && (event == "rename" || event == "grow") {
				continue // a first Copy has none
			}
			name := fmt.Sprintf("%s/copy=%v", event, first)
			t.Run(name, func(t *testing.T) {
				for _, cached := range []bool{false, true} {
					passFault(t, event, first, cached)
				}
			})
		}
	}
}

func passFault(t *testing.T, event string, first, cached bool) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	build(t, src, mailHome())
	w := &mailWriter{root: src, r: rand.New(rand.NewPCG(7, 7))}
	for range 200 {
		if err := w.step(); err != nil {
			t.Fatal(err)
		}
	}
	opt := Options{Workers: 3}
	if cached {
		opt.Cache = NewCache()
	}
	if !first {
		if _, err := Copy(context.Background(), src, dst, opt); err != nil {
			t.Fatal(err)
		}
		// Something of every kind for the next pass to do.
		for range 60 {
			if err := w.step(); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(filepath.Join(src, "Maildir/new/3.M3P3.host,S=51"), filepath.Join(src, "Maildir/cur/3.M3P3.host,S=51:2,S")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(src, "mail/inbox"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(mbox2)
		f.Close()
	}
	before := mustScan(t, src)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cut at the second step of the kind, so that the pass has done
	// something of it already; there is only one mbox to extend.
	at := int32(2)
	if event == "grow" {
		at = 1
	}
	var n atomic.Int32
	faulty := opt
	faulty.hook = func(ev, rel string) {
		if ev == event && n.Add(1) == at {
			cancel()
		}
	}
	var err error
	if first {
		_, err = Copy(ctx, src, dst, faulty)
	} else {
		_, err = Sync(ctx, src, dst, faulty)
	}
	if n.Load() < at {
		t.Fatalf("the pass had fewer than %d %q steps (%v)", at, event, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%s: pass cut short: %v, want canceled", event, err)
	}
	if d := Compare(before, mustScan(t, src), CompareOptions{}); len(d) > 0 {
		t.Fatalf("%s: a failed pass changed the source: %v", event, d)
	}
	// The next pass brings the partial copy up to date.
	if _, err := Sync(context.Background(), src, dst, opt); err != nil {
		t.Fatalf("%s: Sync after the failed pass: %v", event, err)
	}
	sameTree(t, src, dst)
	// And a partial copy is removable, whatever it holds.
	if err := os.RemoveAll(dst); err != nil {
		t.Fatalf("remove the copy: %v", err)
	}
	if d := Compare(before, mustScan(t, src), CompareOptions{}); len(d) > 0 {
		t.Fatalf("%s: the source changed: %v", event, d)
	}
}

// TestScanFolderRemovedWhileRead: a folder removed between its open and
// its listing (a user deleting a mail folder) has vanished; it is no error.
func TestScanFolderRemovedWhileRead(t *testing.T) {
	root := t.TempDir()
	build(t, root, mailHome())
	m, err := Scan(context.Background(), root, ScanOptions{hook: func(event, rel string) {
		if event == "read-dir" && rel == "Maildir/.Sent" {
			if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if !contains(m.Vanished, "Maildir/.Sent") || m.Find("Maildir/.Sent") != nil {
		t.Errorf("vanished %q; want Maildir/.Sent, and not in the manifest", m.Vanished)
	}
}
