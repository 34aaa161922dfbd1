package plan

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/maildist/maildist/internal/cluster"
)

func TestParseThresholds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Thresholds
		err  string
	}{
		{in: "c=60,600,3600:d=1M,10M,100M", want: Thresholds{Connect: [3]int64{60, 600, 3600}, Bytes: [3]int64{1 << 20, 10 << 20, 100 << 20}, ConnectSet: true, BytesSet: true}},
		{in: "d=4K,1MiB,2gb", want: Thresholds{Bytes: [3]int64{4096, 1 << 20, 2 << 30}, BytesSet: true}},
		{in: " c = 1m, 1h ,1d ", want: Thresholds{Connect: [3]int64{60, 3600, 86400}, ConnectSet: true}},
		{in: "c=10s,20,30", want: Thresholds{Connect: [3]int64{10, 20, 30}, ConnectSet: true}},
		{in: "", err: "empty"},
		{in: "c=1,2", err: "has 2 bounds, want 3"},
		{in: "c=1,2,3:c=4,5,6", err: "given twice"},
		{in: "x=1,2,3", err: `axis "x"`},
		{in: "c=3,2,1", err: "must increase"},
		{in: "c=0,2,3", err: "more than 0"},
		{in: "c=1,2,3M", err: "unknown unit"},
		{in: "d=1,2,99999999999T", err: "too large"},
		{in: "d=1,2,-3", err: "not a number"},
		{in: "c", err: "want c=T1,T2,T3"},
	} {
		got, err := ParseThresholds(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseThresholds(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseThresholds(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestThresholdsString(t *testing.T) {
	th := Thresholds{Connect: [3]int64{60, 5400, 86400 * 2}, Bytes: [3]int64{1000, 1 << 20, 3 << 40}}
	if got, want := th.String(), "c=1m,90m,2d:d=1000,1M,3T"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestClassify(t *testing.T) {
	th := Thresholds{Connect: [3]int64{10, 20, 30}, Bytes: [3]int64{100, 100, 300}}
	for _, tc := range []struct {
		c, d int64
		want string
	}{
		{0, 0, "c0d0"}, {1, 100, "c1d1"}, {10, 101, "c1d3"}, {11, 300, "c2d3"}, {30, 301, "c3d4"}, {31, 1, "c4d1"},
	} {
		if got := th.Class(tc.c, tc.d).String(); got != tc.want {
			t.Errorf("Class(%d, %d) = %s, want %s", tc.c, tc.d, got, tc.want)
		}
	}
	for i := range NumClasses {
		if ClassIndex(ClassAt(i)) != i {
			t.Fatalf("ClassAt/ClassIndex disagree at %d", i)
		}
	}
	if ClassAt(24) != (cluster.Class{C: 4, D: 4}) {
		t.Fatal("class 24 is not c4d4")
	}
}

func TestQuartiles(t *testing.T) {
	for _, tc := range []struct {
		vals []int64
		want [3]int64
	}{
		{nil, [3]int64{}},
		{[]int64{0, 0}, [3]int64{}},
		{[]int64{5}, [3]int64{5, 5, 5}},
		{[]int64{0, 4, 3, 2, 1, 0}, [3]int64{1, 2, 3}},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8}, [3]int64{2, 4, 6}},
		{[]int64{1, 2, 3, 4, 5}, [3]int64{2, 3, 4}},
	} {
		if got := quartiles(append([]int64(nil), tc.vals...)); got != tc.want {
			t.Errorf("quartiles(%v) = %v, want %v", tc.vals, got, tc.want)
		}
	}
}

// FuzzParseThresholds: the parser never panics; what it accepts is valid
// (positive, increasing) and survives a round trip through String.
func FuzzParseThresholds(f *testing.F) {
	for _, s := range []string{"c=60,600,3600:d=1M,10M,100M", "d=1K,2K,3K", "c=1m,1h,1d", "c=1,2,3:", "::", "c=,,", "d=1kib,1MB,1t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThresholds(s)
		if err != nil {
			return
		}
		for _, axis := range []struct {
			set bool
			v   [3]int64
		}{{th.ConnectSet, th.Connect}, {th.BytesSet, th.Bytes}} {
			if !axis.set {
				if axis.v != [3]int64{} {
					t.Fatalf("%q: unset axis has bounds %v", s, axis.v)
				}
				continue
			}
			if axis.v[0] <= 0 || axis.v[1] <= axis.v[0] || axis.v[2] <= axis.v[1] {
				t.Fatalf("%q: accepted bounds %v", s, axis.v)
			}
		}
		if !th.ConnectSet || !th.BytesSet {
			return
		}
		back, err := ParseThresholds(th.String())
		if err != nil || back != th {
			t.Fatalf("%q → %q → %+v, %v", s, th.String(), back, err)
		}
	})
}

func TestSelectNthAgreesWithSort(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.SliceOfN(rapid.Int64Range(0, rapid.Int64Range(1, 1000).Draw(t, "spread")), 1, 400).Draw(t, "v")
		k := rapid.IntRange(0, len(v)-1).Draw(t, "k")
		sorted := slices.Clone(v)
		slices.Sort(sorted)
		if got := selectNth(v, k); got != sorted[k] || v[k] != got {
			t.Fatalf("selectNth(%d) = %d, sorted says %d", k, got, sorted[k])
		}
		for i := range v {
			if (i < k && v[i] > v[k]) || (i > k && v[i] < v[k]) {
				t.Fatalf("not split around %d: %v", k, v)
			}
		}
		want := [3]int64{}
		var nz []int64
		for _, x := range sorted {
			if x > 0 {
				nz = append(nz, x)
			}
		}
		if n := len(nz); n > 0 {
			want = [3]int64{nz[(n+3)/4-1], nz[(2*n+3)/4-1], nz[(3*n+3)/4-1]}
		}
		if got := quartiles(slices.Clone(v)); got != want {
			t.Fatalf("quartiles = %v, want %v", got, want)
		}
	})
}
