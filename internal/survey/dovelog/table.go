package dovelog

import "sync/atomic"

// userTable maps a user key to a user index. Open addressing with linear
// probing on the key's first word, which is already a good hash: a lookup
// usually touches one cache line (four 16-byte slots to a line) and
// hashes nothing. A slot keeps 96 bits of the key: two names that agree
// on all of them are one user, which for a million names happens with
// odds of about one in 10^17. It holds no pointers, so the garbage
// collector never scans it.
//
// One goroutine writes it (the pairer) while others may look keys up
// (the parsers, ahead of it): a slot, once filled, never changes, its
// key stored before the word that fills it, and a larger table replaces
// a full one whole. A reader may so miss a key put a moment ago (it then
// leaves the lookup to the pairer) but never finds a wrong one.
type userTable struct {
	cur atomic.Pointer[userSlots]
	n   int // the writer's
}

type userSlots struct {
	slots []userSlot
	mask  uint64
}

// userSlot holds k0 and, in w, k1 (low half) and the index + 1 (high
// half; 0 is an empty slot).
type userSlot struct {
	k0 uint64
	w  uint64
}

func newUserTable(hint int) *userTable {
	size := 1024
	for size < 2*hint {
		size *= 2
	}
	t := &userTable{}
	t.cur.Store(&userSlots{slots: make([]userSlot, size), mask: uint64(size - 1)})
	return t
}

// get returns the index stored for key, or -1. Any goroutine may call it.
func (t *userTable) get(k [2]uint64) int32 { return t.cur.Load().get(k) }

func (t *userSlots) get(k [2]uint64) int32 {
	k1 := uint64(uint32(k[1]))
	for i := k[0] & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		w := atomic.LoadUint64(&s.w)
		if w == 0 {
			return -1
		}
		if w&0xffffffff == k1 && atomic.LoadUint64(&s.k0) == k[0] {
			return int32(w>>32) - 1
		}
	}
}

// touch loads the slot a lookup of k starts at, so that the lookup finds
// it in the cache; it returns a value only so that the load is made.
func (t *userSlots) touch(k [2]uint64) uint64 {
	return atomic.LoadUint64(&t.slots[k[0]&t.mask].w)
}

// put stores a key that is not in the table. Only the writer calls it.
func (t *userTable) put(k [2]uint64, id int32) {
	cur := t.cur.Load()
	if 2*(t.n+1) > len(cur.slots) {
		cur = t.grow(cur)
	}
	cur.insert(k[0], uint64(uint32(k[1]))|uint64(id+1)<<32)
	t.n++
}

func (t *userSlots) insert(k0, w uint64) {
	for i := k0 & t.mask; ; i = (i + 1) & t.mask {
		if s := &t.slots[i]; s.w == 0 {
			atomic.StoreUint64(&s.k0, k0)
			atomic.StoreUint64(&s.w, w)
			return
		}
	}
}

// grow puts the slots into a table twice the size and puts that in the
// old one's place.
func (t *userTable) grow(old *userSlots) *userSlots {
	size := 2 * len(old.slots)
	nt := &userSlots{slots: make([]userSlot, size), mask: uint64(size - 1)}
	for i := range old.slots {
		if s := &old.slots[i]; s.w != 0 {
			nt.insert(s.k0, s.w)
		}
	}
	t.cur.Store(nt)
	return nt
}

// chunked is a growable array that never moves what it holds (no copying
// on growth) and, for pointer-free T, is never scanned by the collector.
type chunked[T any] struct {
	chunks [][]T
	n      int
}

const chunkBits = 14

func (c *chunked[T]) at(i int32) *T {
	return &c.chunks[i>>chunkBits][i&(1<<chunkBits-1)]
}

func (c *chunked[T]) add(v T) int32 {
	if c.n>>chunkBits == len(c.chunks) {
		c.chunks = append(c.chunks, make([]T, 1<<chunkBits))
	}
	i := int32(c.n)
	*c.at(i) = v
	c.n++
	return i
}

// arena keeps strings as bytes without a pointer each.
type arena struct {
	chunks [][]byte
}

// span is where an arena keeps a string: chunk, offset and length packed
// in one word (names are at most 64 KiB; chunks are 1 MiB unless a name
// is longer).
type span uint64

const arenaChunk = 1 << 20

func (a *arena) add(b []byte) span {
	if len(b) > 0xffff {
		b = b[:0xffff]
	}
	if len(a.chunks) == 0 || cap(a.chunks[len(a.chunks)-1])-len(a.chunks[len(a.chunks)-1]) < len(b) {
		a.chunks = append(a.chunks, make([]byte, 0, arenaChunk))
	}
	ci := len(a.chunks) - 1
	off := len(a.chunks[ci])
	a.chunks[ci] = append(a.chunks[ci], b...)
	return span(uint64(ci)<<36 | uint64(off)<<16 | uint64(len(b)))
}

func (a *arena) get(s span) string {
	ci, off, n := int(s>>36), int(s>>16&(1<<20-1)), int(s&0xffff)
	return string(a.chunks[ci][off : off+n])
}

// sidTable maps a session key (already a hash) to an open session's
// index. Linear probing; deletion shifts later entries back, so there are
// no tombstones and lookups stay short however many sessions come and go.
// A key and its value share a slot: a lookup reads one cache line.
type sidTable struct {
	slots []sidSlot
	mask  uint64
	n     int
}

type sidSlot struct {
	k uint64 // 0: empty
	v int32
}

func newSidTable() *sidTable {
	const size = 1024
	return &sidTable{slots: make([]sidSlot, size), mask: size - 1}
}

func (t *sidTable) get(k uint64) (int32, bool) {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch s := &t.slots[i]; s.k {
		case k:
			return s.v, true
		case 0:
			return 0, false
		}
	}
}

// set stores or replaces k's value.
func (t *sidTable) set(k uint64, v int32) {
	if 2*(t.n+1) > len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch s := &t.slots[i]; s.k {
		case k:
			s.v = v
			return
		case 0:
			*s = sidSlot{k, v}
			t.n++
			return
		}
	}
}

func (t *sidTable) del(k uint64) {
	i := k & t.mask
	for ; t.slots[i].k != k; i = (i + 1) & t.mask {
		if t.slots[i].k == 0 {
			return
		}
	}
	// Shift back every entry of the run that its home slot allows.
	for j := (i + 1) & t.mask; t.slots[j].k != 0; j = (j + 1) & t.mask {
		home := t.slots[j].k & t.mask
		// Move j to i if home is not in (i, j] cyclically.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = sidSlot{}
	t.n--
}

func (t *sidTable) resize(size int) {
	old := t.slots
	t.slots, t.mask, t.n = make([]sidSlot, size), uint64(size-1), 0
	for _, s := range old {
		if s.k != 0 {
			t.set(s.k, s.v)
		}
	}
}
