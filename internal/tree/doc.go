// Package tree copies a home (a folder tree holding Maildirs) to another
// file system, and scans trees into manifests whose comparison says
// whether a copy is exact. A difference here means lost mail, so it is
// exact about everything Dovecot and the user can see: names byte for
// byte, contents, modes with setuid, setgid and sticky, owners, mtimes to
// the nanosecond (Dovecot takes a message's INTERNALDATE from them),
// symlinks as symlinks, hard links as hard links, empty folders.
//
// Words:
//
//   - root: the folder a tree hangs from. Paths in a manifest are relative
//     to it, names joined by "/", "." for the root itself.
//   - entry: one name in a tree: a folder, a file or a symlink. Anything
//     else (FIFO, socket, device) is refused with ErrSpecial, before a
//     Copy writes anything.
//   - manifest: the entries of a tree sorted by path, from Scan; with
//     hashing, the contents too (XXH3-128). Compare of two manifests
//     lists every Diff; none means equal. WriteTo and ReadManifest give
//     it a text form that keeps every byte of every name.
//   - copy: Copy makes a new tree (the staging folder of a move); Sync
//     brings an existing earlier copy up to date. Sync knows mail: a
//     Maildir message whose flags changed (same base name, same folder,
//     in cur/ or new/) is renamed in the copy, not copied again, and an
//     mbox file that only grew gets only its new end; each after checking
//     the contents on both sides (maildir.go).
//   - cache: a Cache, shared by the copies and scans of a move, keeps the
//     hashes of files that have not changed since they were read, and the
//     manifest of a copy as the last Sync left it, so that the passes
//     under the hold read and scan only what changed (cache.go says when
//     each is trusted).
//   - hard link: a further name of a file inside the tree; the manifest
//     names the first one in Entry.Link, and a copy keeps the sharing.
//   - vanished: a name that was listed but had gone, or had been replaced,
//     when it was opened, as happens when a live user expunges or flags a
//     message (ErrVanished).
//
// A walk never follows a symlink and never leaves the root: every folder
// is opened relative to its parent's descriptor, one name at a time, with
// O_NOFOLLOW, and checked to be the inode that was listed. A folder
// swapped for a symlink while the walk runs makes that open fail; the
// folder then counts as vanished. Nothing is ever written below the
// source root; files are read with O_NOATIME where allowed.
//
// What a crash leaves behind: Copy creates dst (mode 0700) before anything
// else, then folders, then files (each fsynced when written), then hard
// links, then sets the folders' metadata (read from the source at that
// moment) and fsyncs them, deepest first, and last the parent of dst. A crash or an error before Copy returns leaves a partial
// dst with no meaning: the caller removes it, or brings it up to date with
// Sync; either way it must be verified (Scan of both sides and Compare)
// before it is trusted. A Sync cut short leaves an earlier copy partly
// brought up to date, in the same state. The source is never changed.
package tree
