package tree

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Cache keeps what the scans and copies of a move learned about its two
// trees, so that the passes under the hold need not learn it again. Give
// the same Cache (Options.Cache, ScanOptions.Cache) to every copy and
// scan of a move; one Cache may serve many moves and goroutines at once.
// It holds two things:
//
//   - Hashes of files, by inode, with the size, mtime and ctime the file
//     had when it was read. A hashing scan takes a file's hash from the
//     cache, without reading it, while all four are unchanged. Nothing
//     can change a file's contents without setting its ctime to the
//     current time, and ctime cannot be set back; so an unchanged ctime
//     means unchanged contents, except for a write within the same tick
//     of the file system's clock as the ctime seen (the "racy" case).
//     Hence a hash is only kept for a file whose ctime was older than the
//     moment the scan began by more than a tick: a later write then gets
//     a later ctime. A tick is that of the kernel's coarse clock (at most
//     10 ms) or of the file system's timestamps, whichever is longer: a
//     nanosecond on ext4, XFS or btrfs, but a whole second on ext3 or on
//     ext4 with small inodes, and more on FAT. A ctime that falls on a
//     whole millisecond is taken to come from such a coarse file system
//     (racyCoarse); others get racyMargin. This assumes the file system's
//     clock is this machine's (a local file system, as every host's
//     agent serves). A Copy or Sync that reads back what it copied
//     (Options.ReadBack) keeps the hashes of the source's files by the
//     same rule, and those of the copy's files regardless (putOwn).
//
//   - The manifest of each copy as the last Copy or Sync left it, so that
//     the next Sync into it need not scan it. It is trusted only while
//     every folder of the copy still has the inode, ctime, mtime, mode and
//     owner recorded when the Sync ended: any name created, removed or
//     renamed in a folder sets that folder's ctime, so a copy changed by
//     anything else is scanned again. What this cannot see is a file of
//     the copy rewritten in place by someone else; a copy is the private
//     staging folder of a move, written only by Copy and Sync, and the
//     verify that decides whether a copy is good scans both sides afresh
//     (it never uses this manifest), so at worst a stale manifest makes a
//     verify fail, never pass.
type Cache struct {
	// The hashes, split by inode number so that the workers of a scan,
	// each looking up tens of thousands of files, seldom wait for one
	// another.
	shards [hashShards]hashShard

	mu     sync.Mutex
	copies []*copyState // most recently used last
	// racyMargin and racyCoarse; tests change them.
	racy, racyCoarse time.Duration
}

// hashShard is one part of a Cache's hashes. Two generations keep the
// memory bounded: when cur is full it becomes old, and old is dropped.
type hashShard struct {
	mu       sync.Mutex
	cur, old map[inode]cachedHash
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	c := &Cache{racy: racyMargin, racyCoarse: racyCoarse}
	for i := range c.shards {
		c.shards[i].cur = make(map[inode]cachedHash)
	}
	return c
}

// See Cache. racyMargin is five times the longest tick of the kernel's
// coarse clock (10 ms at HZ=100), and short enough that the files a pass
// copied just before are cached by the scan that follows it. racyCoarse
// is for file systems whose timestamps count whole seconds, or two.
const (
	racyMargin = 50 * time.Millisecond
	racyCoarse = 3 * time.Second
)

// racyFor is the margin for a file whose ctime is ctime.
func (c *Cache) racyFor(ctime unix.Timespec) time.Duration {
	if ctime.Nsec%int64(time.Millisecond) == 0 {
		return c.racyCoarse
	}
	return c.racy
}

const (
	hashShards      = 16
	maxCachedHashes = 1 << 20 / hashShards // per generation and shard; about 64 MiB in all
	maxCachedCopies = 8
)

type inode struct{ dev, ino uint64 }

type cachedHash struct {
	size, mtime, ctime int64
	hash               Hash
}

// hash returns the cached hash of a file, if its stat shows it unchanged.
func (c *Cache) hash(st *unix.Stat_t) (Hash, bool) {
	if c == nil {
		return Hash{}, false
	}
	k := inode{st.Dev, st.Ino}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h, ok := sh.cur[k]
	if !ok {
		if h, ok = sh.old[k]; ok {
			sh.putLocked(k, h)
		}
	}
	if !ok || h.size != st.Size || h.mtime != st.Mtim.Nano() || h.ctime != st.Ctim.Nano() {
		return Hash{}, false
	}
	return h.hash, true
}

// putHash remembers the hash of a file read after st was taken, by a
// scan that began at began.
func (c *Cache) putHash(st *unix.Stat_t, h Hash, began time.Time) {
	if c == nil || st.Ctim.Nano() >= began.Add(-c.racyFor(st.Ctim)).UnixNano() {
		return
	}
	c.putOwn(st, h)
}

// putOwn remembers the hash of a file of a copy, read back by the Copy
// or Sync that wrote it, after its last write (Options.ReadBack). Its
// ctime is the time of that write, so putHash would refuse it; it is
// kept because the copy is private (see Cache): nothing else writes to
// it, and Copy and Sync change a copied file's contents only by making a
// new file or by appending, which changes its inode or its size.
func (c *Cache) putOwn(st *unix.Stat_t, h Hash) {
	if c == nil {
		return
	}
	k := inode{st.Dev, st.Ino}
	sh := c.shard(k)
	sh.mu.Lock()
	sh.putLocked(k, cachedHash{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), hash: h})
	sh.mu.Unlock()
}

func (c *Cache) shard(k inode) *hashShard { return &c.shards[k.ino%hashShards] }

func (sh *hashShard) putLocked(k inode, h cachedHash) {
	if len(sh.cur) >= maxCachedHashes {
		sh.old, sh.cur = sh.cur, make(map[inode]cachedHash)
	}
	sh.cur[k] = h
}

// copyState is a copy as the last Copy or Sync into it left it.
type copyState struct {
	root inode
	// build makes the manifest, once; its folders carry the ctime they
	// had when the Copy or Sync ended.
	build func() *Manifest
	once  sync.Once
	m     *Manifest
}

func (s *copyState) manifest() *Manifest {
	s.once.Do(func() { s.m = s.build() })
	return s.m
}

// copyOf returns the manifest of the copy whose root is open as fd, if
// one was recorded and the copy is unchanged since. The manifest is
// shared: callers must not change it.
func (c *Cache) copyOf(fd int) *Manifest {
	if c == nil {
		return nil
	}
	st, err := fstat(fd)
	if err != nil {
		return nil
	}
	k := inode{st.Dev, st.Ino}
	c.mu.Lock()
	var cs *copyState
	for _, s := range c.copies {
		if s.root == k {
			cs = s
		}
	}
	c.mu.Unlock()
	if cs == nil {
		return nil
	}
	m := cs.manifest()
	if !unchangedDirs(fd, &st, m) {
		c.forget(fd)
		return nil
	}
	return m
}

// unchangedDirs checks every folder of m against the tree at fd.
func unchangedDirs(fd int, root *unix.Stat_t, m *Manifest) bool {
	var dirs []*Entry
	for i := range m.Entries {
		if m.Entries[i].Kind == Dir {
			dirs = append(dirs, &m.Entries[i])
		}
	}
	sts, err := statDirs(fd, root, dirs)
	if err != nil {
		return false
	}
	for i, e := range dirs {
		st := &sts[i]
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != e.ino || st.Dev != e.dev ||
			st.Ctim.Nano() != e.ctime || st.Mtim.Nano() != e.MTime || st.Mode&0o7777 != e.Mode ||
			st.Uid != e.UID || st.Gid != e.GID {
			return false
		}
	}
	return true
}

// statDirs lstats the folders dirs of the tree at fd (whose own stat is
// root), each from its parent opened the safe way (openDir), each parent
// once.
func statDirs(fd int, root *unix.Stat_t, dirs []*Entry) ([]unix.Stat_t, error) {
	out := make([]unix.Stat_t, len(dirs))
	byParent := make(map[string][]int)
	var parents []string
	for i, e := range dirs {
		if e.Path == "." {
			out[i] = *root
			continue
		}
		dir, _ := splitPath(e.Path)
		if _, ok := byParent[dir]; !ok {
			parents = append(parents, dir)
		}
		byParent[dir] = append(byParent[dir], i)
	}
	for _, dir := range parents {
		pfd, err := openDir(fd, dir)
		if err != nil {
			return nil, err
		}
		for _, i := range byParent[dir] {
			_, name := splitPath(dirs[i].Path)
			if out[i], err = lstatat(pfd, name); err != nil {
				break
			}
		}
		unix.Close(pfd)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// putCopy records the manifest of the copy at fd, as build makes it: at
// once, or when it is first asked for if lazy.
func (c *Cache) putCopy(fd int, build func() *Manifest, lazy bool) {
	if c == nil {
		return
	}
	st, err := fstat(fd)
	if err != nil {
		return
	}
	k := inode{st.Dev, st.Ino}
	cs := &copyState{root: k, build: build}
	if !lazy {
		cs.manifest()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(k)
	c.copies = append(c.copies, cs)
	if len(c.copies) > maxCachedCopies {
		c.copies = c.copies[1:]
	}
}

// forget drops what is recorded of the copy at fd.
func (c *Cache) forget(fd int) {
	if c == nil {
		return
	}
	st, err := fstat(fd)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.dropLocked(inode{st.Dev, st.Ino})
	c.mu.Unlock()
}

func (c *Cache) dropLocked(k inode) {
	kept := c.copies[:0]
	for _, s := range c.copies {
		if s.root != k {
			kept = append(kept, s)
		}
	}
	clear(c.copies[len(kept):])
	c.copies = kept
}
