package sandbox

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// newRand returns a generator seeded from the build seed and what the
// choices are about (a kind, a name, a number). Every random decision is
// keyed this way, so it never depends on which goroutine gets there first:
// the same options give the same cluster however the work is scheduled.
func newRand(seed int64, kind, name string, n int) *rand.Rand {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
	s := h.Sum64()
	return rand.New(rand.NewPCG(splitmix(s), splitmix(s^0x9e3779b97f4a7c15)))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// logNormal draws exp(N(mu, sigma)) clamped to [lo, hi]: the skewed sizes
// mail has (many small, a long tail of large).
func logNormal(r *rand.Rand, mu, sigma, lo, hi float64) float64 {
	v := math.Exp(mu + sigma*r.NormFloat64())
	return min(max(v, lo), hi)
}

// between returns a whole second in [lo, hi).
func between(r *rand.Rand, lo, hi time.Time) time.Time {
	span := int64(hi.Sub(lo) / time.Second)
	if span <= 0 {
		return lo.Truncate(time.Second)
	}
	return lo.Truncate(time.Second).Add(time.Duration(r.Int64N(span)) * time.Second)
}

// pick returns one of xs.
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }
