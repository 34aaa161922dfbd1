package plan

import (
	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
)

// shuffled counts the movable users by host and class and returns them
// as sort.tsv rows in a random order, with the row of users each came
// from.
//
// A plain shuffle of a million rows leaves their names scattered over the
// whole raw.tsv in memory, and every later walk down the list (writing
// sort.tsv, picking, writing the todo) pays a cache miss a row. So the
// shuffle scatters instead: each user goes to one of a few hundred
// buckets drawn at random, its name copied to that bucket's stretch of
// one arena, and each bucket, small enough for the cache, is then
// shuffled on its own. Buckets in a row, each in random order, make a
// uniformly random order of the whole (Sanders, 1998), and the names lie
// in the order they are read. Host names are the host list's own strings,
// so a million of them are a few hundred in the cache.
func (p *Plan) shuffled(users []cluster.User, where []int32, movable int, seed uint64) ([]cluster.Sorted, []int32) {
	rng := assign.NewRand(seed, "sort")
	nb := min(256, movable/2048+1)
	bucket := make([]uint8, len(users))
	count := make([]int, nb+1)
	size := make([]int, nb+1)
	for i := range users {
		if where[i] < 0 {
			continue
		}
		b := int(rng.Uint64N(uint64(nb)))
		bucket[i] = uint8(b)
		count[b+1]++
		size[b+1] += len(users[i].Name)
	}
	for b := 1; b <= nb; b++ {
		count[b] += count[b-1]
		size[b] += size[b-1]
	}
	sorted := make([]cluster.Sorted, movable)
	row := make([]int32, movable)
	end := make([]int32, movable) // where each name ends in the arena
	buf := make([]byte, size[nb]) // the arena
	for i := range users {
		h := where[i]
		if h < 0 {
			continue
		}
		u := &users[i]
		c := p.Thresholds.Class(u.ConnectS, u.Bytes)
		p.Hosts[h].Have[ClassIndex(c)]++
		p.Hosts[h].haveBytes[ClassIndex(c)] += u.Bytes
		b := bucket[i]
		k := count[b]
		count[b]++
		sorted[k] = cluster.Sorted{Host: p.Hosts[h].Name, Class: c}
		row[k] = int32(i)
		size[b] += copy(buf[size[b]:], u.Name)
		end[k] = int32(size[b])
	}
	names := string(buf)
	for k := range sorted {
		start := int32(0)
		if k > 0 {
			start = end[k-1]
		}
		sorted[k].User = names[start:end[k]]
	}
	lo := 0
	for b := range nb {
		hi := count[b]
		s, r := sorted[lo:hi], row[lo:hi]
		rng.Shuffle(len(s), func(i, j int) {
			s[i], s[j] = s[j], s[i]
			r[i], r[j] = r[j], r[i]
		})
		lo = hi
	}
	return sorted, row
}
