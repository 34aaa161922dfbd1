package assign

import (
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
)

// Rand is a seeded random source whose draws depend only on the seed and
// the stream name: PCG-DXSM with a bounded draw and a Fisher–Yates shuffle
// written out here, so that a seed gives the same files whatever the Go
// release's own Shuffle and IntN do.
type Rand struct{ pcg *rand.PCG }

// NewRand returns the source for one seed and one named use of it, so that
// the sort order, the dealing of destinations and the todo order are
// independent of each other.
func NewRand(seed uint64, stream string) *Rand {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return &Rand{rand.NewPCG(seed, h.Sum64())}
}

// Uint64N returns a uniform number in [0, n); n must be positive.
// Lemire's multiply-and-reject method.
func (r *Rand) Uint64N(n uint64) uint64 {
	hi, lo := bits.Mul64(r.pcg.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.pcg.Uint64(), n)
		}
	}
	return hi
}

// Shuffle permutes n elements uniformly.
func (r *Rand) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		j := int(r.Uint64N(uint64(i + 1)))
		swap(i, j)
	}
}
