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

// manifest returns how to make the manifest of the copy at root: base
// (the manifest it had before, or nil for a new copy) changed by what was
// recorded, every folder as it is now, for its ctime and for what setting
// its metadata did. The folders are looked at now; the rest waits until
// the manifest is asked for, as a Sync under the hold may be the last.
// It returns nil if that cannot be done.
func (l *ledger) manifest(root int, base *Manifest) func() *Manifest {
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
	kept := func(e *Entry) bool {
		_, ok := l.put[e.Path]
		return !ok && (len(l.del) == 0 || !under(e.Path))
	}
	// The folders the manifest will hold, as they are now.
	var dirs []*Entry
	if base != nil {
		for i := range base.Entries {
			if e := &base.Entries[i]; e.Kind == Dir && kept(e) {
				dirs = append(dirs, e)
			}
		}
	}
	put := make([]Entry, 0, len(l.put))
	for _, e := range l.put {
		put = append(put, e)
	}
	put = sortByPath(put)
	for i := range put {
		if put[i].Kind == Dir {
			dirs = append(dirs, &put[i])
		}
	}
	rst, err := fstat(root)
	if err != nil {
		return nil
	}
	sts, err := statDirs(root, &rst, dirs)
	if err != nil {
		return nil
	}
	now := make(map[string]*unix.Stat_t, len(dirs))
	for i, e := range dirs {
		if sts[i].Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		now[e.Path] = &sts[i]
	}
	if _, ok := now["."]; !ok {
		return nil
	}
	return func() *Manifest {
		// base is sorted and a pass under the hold writes a few names:
		// merge them in, rather than sort a Maildir's worth of entries
		// again.
		var entries []Entry
		rest := put
		if base != nil {
			entries = make([]Entry, 0, len(base.Entries)+len(rest))
			for i := range base.Entries {
				e := &base.Entries[i]
				if !kept(e) {
					continue
				}
				for len(rest) > 0 && rest[0].Path < e.Path {
					entries = append(entries, rest[0])
					rest = rest[1:]
				}
				entries = append(entries, *e)
			}
		}
		entries = append(entries, rest...)
		for i := range entries {
			e := &entries[i]
			// Hard links are found again from the inodes: a name
			// removed may have left the other name of its file alone.
			e.Link = ""
			if e.Kind == Dir {
				*e = entryOf(e.Path, now[e.Path])
			}
		}
		m := &Manifest{Entries: entries}
		m.finish()
		return m
	}
}
