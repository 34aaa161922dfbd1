package dovelog

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

func TestSidTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tab := newSidTable()
	ref := map[uint64]int32{}
	var keys []uint64
	for step := 0; step < 200_000; step++ {
		switch op := r.IntN(10); {
		case op < 5 || len(keys) == 0:
			// Small keys crowd the low slots: long runs that wrap.
			k := uint64(r.IntN(5000)) + 1
			if r.IntN(2) == 0 {
				k = r.Uint64() | 1
			}
			v := int32(step)
			tab.set(k, v)
			if _, ok := ref[k]; !ok {
				keys = append(keys, k)
			}
			ref[k] = v
		case op < 9:
			i := r.IntN(len(keys))
			k := keys[i]
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			tab.del(k)
			delete(ref, k)
		default:
			tab.del(r.Uint64() | 1) // absent: a no-op
		}
		if step%997 == 0 {
			if tab.n != len(ref) {
				t.Fatalf("step %d: n = %d, want %d", step, tab.n, len(ref))
			}
			for k, v := range ref {
				if got, ok := tab.get(k); !ok || got != v {
					t.Fatalf("step %d: get(%d) = %d %v, want %d", step, k, got, ok, v)
				}
			}
		}
	}
}

func TestUserTableGrows(t *testing.T) {
	tab := newUserTable(0)
	for i := 0; i < 100_000; i++ {
		tab.put([2]uint64{uint64(i) * 0x9e3779b97f4a7c15, uint64(i)}, int32(i))
	}
	for i := 0; i < 100_000; i++ {
		if got := tab.get([2]uint64{uint64(i) * 0x9e3779b97f4a7c15, uint64(i)}); got != int32(i) {
			t.Fatalf("get %d = %d", i, got)
		}
	}
	if tab.get([2]uint64{1, 2}) != -1 {
		t.Fatal("absent key found")
	}
}

// Readers that look keys up while the writer puts more (and the table
// grows under them) may miss a key, never find a wrong index.
func TestUserTableReadWhileWritten(t *testing.T) {
	const n = 50_000
	key := func(i int) [2]uint64 { return [2]uint64{uint64(i) * 0x9e3779b97f4a7c15, uint64(i) ^ 0x5555} }
	tab := newUserTable(0)
	var done atomic.Bool
	var wg sync.WaitGroup
	var found atomic.Int64
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for !done.Load() {
				i := rng.IntN(n)
				if got := tab.get(key(i)); got >= 0 {
					found.Add(1)
					if got != int32(i) {
						t.Errorf("key %d: index %d", i, got)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		tab.put(key(i), int32(i))
	}
	done.Store(true)
	wg.Wait()
	for i := 0; i < n; i++ {
		if got := tab.get(key(i)); got != int32(i) {
			t.Fatalf("after the writes: key %d: index %d", i, got)
		}
	}
	if found.Load() == 0 {
		t.Log("the readers found nothing while the table was written")
	}
}

func TestRecordSizes(t *testing.T) {
	if n := unsafe.Sizeof(userAgg{}); n != 64 {
		t.Errorf("userAgg is %d bytes, want one cache line (64)", n)
	}
	if n := unsafe.Sizeof(userSlot{}); n != 16 {
		t.Errorf("userSlot is %d bytes, want 16", n)
	}
}

func TestArena(t *testing.T) {
	var a arena
	var spans []span
	var want []string
	for i := 0; i < 200_000; i++ {
		s := strings.Repeat("x", i%40) + strconv.Itoa(i)
		spans = append(spans, a.add([]byte(s)))
		want = append(want, s)
	}
	for i, sp := range spans {
		if got := a.get(sp); got != want[i] {
			t.Fatalf("name %d = %q, want %q", i, got, want[i])
		}
	}
}
