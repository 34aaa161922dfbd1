package dovelog

// userTable maps a user key to a user index. Open addressing with linear
// probing on the key's first word, which is already a good hash: a lookup
// usually touches one cache line (four 16-byte slots to a line) and
// hashes nothing. A slot keeps 96 bits of the key: two names that agree
// on all of them are one user, which for a million names happens with
// odds of about one in 10^17. It holds no pointers, so the garbage
// collector never scans it.
type userTable struct {
	slots []userSlot
	mask  uint64
	n     int
}

type userSlot struct {
	k0 uint64
	k1 uint32
	id int32 // index + 1; 0 is an empty slot
}

func newUserTable(hint int) *userTable {
	size := 1024
	for size < 2*hint {
		size *= 2
	}
	return &userTable{slots: make([]userSlot, size), mask: uint64(size - 1)}
}

// get returns the index stored for key, or -1.
func (t *userTable) get(k [2]uint64) int32 {
	k1 := uint32(k[1])
	for i := k[0] & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.id == 0 {
			return -1
		}
		if s.k0 == k[0] && s.k1 == k1 {
			return s.id - 1
		}
	}
}

// put stores a key that is not in the table.
func (t *userTable) put(k [2]uint64, id int32) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	t.insert(k[0], uint32(k[1]), id+1)
	t.n++
}

func (t *userTable) insert(k0 uint64, k1 uint32, id int32) {
	for i := k0 & t.mask; ; i = (i + 1) & t.mask {
		if s := &t.slots[i]; s.id == 0 {
			*s = userSlot{k0, k1, id}
			return
		}
	}
}

func (t *userTable) grow() {
	old := t.slots
	t.slots = make([]userSlot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.id != 0 {
			t.insert(s.k0, s.k1, s.id)
		}
	}
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
type sidTable struct {
	keys []uint64 // 0: empty
	vals []int32
	mask uint64
	n    int
}

func newSidTable() *sidTable {
	const size = 1024
	return &sidTable{keys: make([]uint64, size), vals: make([]int32, size), mask: size - 1}
}

func (t *sidTable) get(k uint64) (int32, bool) {
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// set stores or replaces k's value.
func (t *sidTable) set(k uint64, v int32) {
	if 2*(t.n+1) > len(t.keys) {
		t.resize(2 * len(t.keys))
	}
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			t.vals[i] = v
			return
		case 0:
			t.keys[i], t.vals[i] = k, v
			t.n++
			return
		}
	}
}

func (t *sidTable) del(k uint64) {
	i := k & t.mask
	for ; t.keys[i] != k; i = (i + 1) & t.mask {
		if t.keys[i] == 0 {
			return
		}
	}
	// Shift back every entry of the run that its home slot allows.
	for j := (i + 1) & t.mask; t.keys[j] != 0; j = (j + 1) & t.mask {
		home := t.keys[j] & t.mask
		// Move j to i if home is not in (i, j] cyclically.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
			i = j
		}
	}
	t.keys[i], t.vals[i] = 0, 0
	t.n--
}

func (t *sidTable) resize(size int) {
	oldK, oldV := t.keys, t.vals
	t.keys, t.vals, t.mask, t.n = make([]uint64, size), make([]int32, size), uint64(size-1), 0
	for i, k := range oldK {
		if k != 0 {
			t.set(k, oldV[i])
		}
	}
}
