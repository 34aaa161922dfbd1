package tree

import (
	"sync"

	"golang.org/x/sys/unix"
)

// ledger records what a Copy or Sync did to the copy, so that the
// manifest of the copy can be made without scanning it (Cache): every
// name written is looked at (fstat of the open file, or lstat) once it is
// finished, and every name removed is noted.
type ledger struct {
	mu     sync.Mutex
	put    map[string]Entry
	del    map[string]bool
	broken bool // something could not be looked at: record nothing
}

func newLedger() *ledger {
	return &ledger{put: make(map[string]Entry), del: make(map[string]bool)}
}

// wrote records the name rel of the copy as st shows it now.
func (l *ledger) wrote(rel string, st *unix.Stat_t, target string) {
	if l == nil {
		return
	}
	e := entryOf(rel, st)
	e.Target = target
	l.mu.Lock()
	l.put[rel] = e
	l.mu.Unlock()
}

// wroteAt looks at the name rel in the open folder dirfd and records it.
func (l *ledger) wroteAt(dirfd int, name, rel string) {
	if l == nil {
		return
	}
	st, err := lstatat(dirfd, name)
	if err != nil {
		l.fail()
		return
	}
	target := ""
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if target, err = readlinkat(dirfd, name); err != nil {
			l.fail()
			return
		}
	}
	l.wrote(rel, &st, target)
}

// removed records that rel (with all below it) is gone from the copy.
func (l *ledger) removed(rel string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.del[rel] = true
	delete(l.put, rel)
	l.mu.Unlock()
}

func (l *ledger) fail() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.broken = true
	l.mu.Unlock()
}

// manifest returns the copy at root as base (the manifest it had before,
// or nil for a new copy) changed by what was recorded; every folder is
// looked at afresh, for its ctime and for what setting its metadata did.
// It returns nil if that cannot be done.
func (l *ledger) manifest(root int, base *Manifest) *Manifest {
	if l == nil || l.broken {
		return nil
	}
	under := func(rel string) bool {
		for r := rel; r != "."; r, _ = splitPath(r) {
			if l.del[r] {
				return true
			}
		}
		return false
	}
	// base is sorted and a pass under the hold writes a few names: merge
	// them in, rather than sort a Maildir's worth of entries again.
	put := make([]Entry, 0, len(l.put))
	for _, e := range l.put {
		put = append(put, e)
	}
	put = sortByPath(put)
	var entries []Entry
	if base != nil {
		entries = make([]Entry, 0, len(base.Entries)+len(put))
		for _, e := range base.Entries {
			if _, ok := l.put[e.Path]; ok || (len(l.del) > 0 && under(e.Path)) {
				continue
			}
			for len(put) > 0 && put[0].Path < e.Path {
				entries = append(entries, put[0])
				put = put[1:]
			}
			entries = append(entries, e)
		}
	}
	entries = append(entries, put...)
	// Hard links are found again from the inodes: a name removed may
	// have left the other name of its file alone.
	for i := range entries {
		entries[i].Link = ""
	}
	m := &Manifest{Entries: entries}
	m.finish()
	// Every folder afresh: for its ctime, and for what setting its
	// metadata at the end did.
	var dirs []*Entry
	for i := range m.Entries {
		if m.Entries[i].Kind == Dir {
			dirs = append(dirs, &m.Entries[i])
		}
	}
	rst, err := fstat(root)
	if err != nil || len(dirs) == 0 || dirs[0].Path != "." {
		return nil
	}
	sts, err := statDirs(root, &rst, dirs)
	if err != nil {
		return nil
	}
	for i, e := range dirs {
		if sts[i].Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		*e = entryOf(e.Path, &sts[i])
	}
	return m
}
