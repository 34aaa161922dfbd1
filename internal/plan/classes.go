package plan

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/maildist/maildist/internal/cluster"
)

// NumClasses is the number of classes cXdY: five connect-time buckets by
// five disk buckets.
const NumClasses = 25

// ClassIndex numbers a class from 0 (c0d0) to 24 (c4d4).
func ClassIndex(c cluster.Class) int { return c.C*5 + c.D }

// ClassAt is the class numbered i by ClassIndex.
func ClassAt(i int) cluster.Class { return cluster.Class{C: i / 5, D: i % 5} }

// Thresholds are the upper bounds of buckets 1, 2 and 3 on each axis: a
// value v > 0 is in bucket 1 if v ≤ [0], 2 if v ≤ [1], 3 if v ≤ [2], else
// 4. A value of 0 is bucket 0 ("none"). An axis that is not Set is filled
// from the data by Make: the quartiles of its non-zero values.
type Thresholds struct {
	Connect    [3]int64 // seconds
	Bytes      [3]int64
	ConnectSet bool
	BytesSet   bool
}

// Class is the class of a user with the given connect time and size.
func (t *Thresholds) Class(connectS, bytes int64) cluster.Class {
	return cluster.Class{C: bucket(&t.Connect, connectS), D: bucket(&t.Bytes, bytes)}
}

func bucket(th *[3]int64, v int64) int {
	switch {
	case v <= 0:
		return 0
	case v <= th[0]:
		return 1
	case v <= th[1]:
		return 2
	case v <= th[2]:
		return 3
	}
	return 4
}

// quartiles returns the nearest-rank quartiles of the non-zero values:
// the values at ranks ⌈n/4⌉, ⌈n/2⌉ and ⌈3n/4⌉ of the sorted list. vals is
// reordered. With no non-zero value every threshold is 0.
func quartiles(vals []int64) [3]int64 {
	nz := vals[:0]
	for _, v := range vals {
		if v > 0 {
			nz = append(nz, v)
		}
	}
	var q [3]int64
	n := len(nz)
	if n == 0 {
		return q
	}
	var idx [3]int
	for k := 1; k <= 3; k++ {
		idx[k-1] = (k*n+3)/4 - 1 // ⌈k·n/4⌉, 0-based
	}
	// The median first; the others lie on either side of it.
	q[1] = selectNth(nz, idx[1])
	q[0] = selectNth(nz[:idx[1]+1], idx[0])
	q[2] = selectNth(nz[idx[1]:], idx[2]-idx[1])
	return q
}

// selectNth reorders v so that v[k] is the value sorted order would put
// there, everything before it no larger and everything after no smaller,
// and returns it: quickselect with a three-way split (survey values repeat
// a lot), falling back to a sort if the pivots keep going wrong.
func selectNth(v []int64, k int) int64 {
	lo, hi := 0, len(v) // the answer lies in v[lo:hi]
	for budget := 64; hi-lo > 16; budget-- {
		if budget == 0 {
			break
		}
		a, b, c := v[lo], v[lo+(hi-lo)/2], v[hi-1]
		pivot := max(min(a, b), min(max(a, b), c)) // median of three
		// v[lo:lt] < pivot, v[lt:i] == pivot, v[gt:hi] > pivot
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch x := v[i]; {
			case x < pivot:
				v[lt], v[i] = v[i], v[lt]
				lt++
				i++
			case x > pivot:
				gt--
				v[gt], v[i] = v[i], v[gt]
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt
		case k >= gt:
			lo = gt
		default:
			return pivot
		}
	}
	slices.Sort(v[lo:hi])
	return v[k]
}

// ParseThresholds reads the --thresholds flag: one or both of
//
//	c=T1,T2,T3   connect-time bounds in seconds; a unit s, m, h or d may follow a number
//	d=T1,T2,T3   disk bounds in bytes; a unit K, M, G or T (powers of 1024) may follow
//
// separated by ':', for example "c=10m,1h,8h:d=1M,50M,1G". The three
// bounds of an axis must be positive and strictly increasing. An axis
// left out is taken from the data (quartiles).
func ParseThresholds(s string) (Thresholds, error) {
	var t Thresholds
	if strings.TrimSpace(s) == "" {
		return t, errors.New("thresholds: empty; want c=T1,T2,T3 and/or d=T1,T2,T3 separated by ':'")
	}
	for _, part := range strings.Split(s, ":") {
		part = strings.TrimSpace(part)
		axis, list, ok := strings.Cut(part, "=")
		if !ok {
			return t, fmt.Errorf("thresholds: %q: want c=T1,T2,T3 or d=T1,T2,T3", part)
		}
		var dst *[3]int64
		var set *bool
		var units map[string]int64
		switch strings.TrimSpace(axis) {
		case "c":
			dst, set, units = &t.Connect, &t.ConnectSet, timeUnits
		case "d":
			dst, set, units = &t.Bytes, &t.BytesSet, byteUnits
		default:
			return t, fmt.Errorf("thresholds: axis %q: want c (connect time) or d (disk)", axis)
		}
		if *set {
			return t, fmt.Errorf("thresholds: axis %s given twice", axis)
		}
		vals := strings.Split(list, ",")
		if len(vals) != 3 {
			return t, fmt.Errorf("thresholds: %s has %d bounds, want 3 (the tops of buckets 1, 2 and 3)", axis, len(vals))
		}
		for i, v := range vals {
			n, err := parseAmount(strings.TrimSpace(v), units)
			if err != nil {
				return t, fmt.Errorf("thresholds: %s: %v", axis, err)
			}
			if n <= 0 {
				return t, fmt.Errorf("thresholds: %s: bound %q must be more than 0 (bucket 0 is exactly 0)", axis, v)
			}
			if i > 0 && n <= dst[i-1] {
				return t, fmt.Errorf("thresholds: %s: bounds must increase, but %q is not more than the one before", axis, v)
			}
			dst[i] = n
		}
		*set = true
	}
	return t, nil
}

var (
	timeUnits = map[string]int64{"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
	byteUnits = map[string]int64{"": 1, "B": 1,
		"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
		"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
)

func parseAmount(s string, units map[string]int64) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	unit := s[i:]
	if _, bytes := units["KIB"]; bytes {
		unit = strings.ToUpper(unit)
	}
	m, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q", s, s[i:])
	}
	if n > math.MaxInt64/m {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * m, nil
}

// String gives the thresholds in the syntax ParseThresholds reads, with
// the largest unit that divides each bound. Both axes are written.
func (t Thresholds) String() string {
	return "c=" + formatAxis(&t.Connect, timeOrder) + ":d=" + formatAxis(&t.Bytes, byteOrder)
}

type unit struct {
	name string
	size int64
}

var (
	timeOrder = []unit{{"d", 86400}, {"h", 3600}, {"m", 60}}
	byteOrder = []unit{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}
)

func formatAxis(th *[3]int64, order []unit) string {
	parts := make([]string, 3)
	for i, v := range th {
		parts[i] = formatAmount(v, order)
	}
	return strings.Join(parts, ",")
}

func formatAmount(v int64, order []unit) string {
	for _, u := range order {
		if v != 0 && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(v, 10)
}
