// Package survey finds out who lives where in the cluster, how much they
// connect and how much disk they use: the rows of a run's raw.tsv.
//
// For every user of the directory it takes the host from the home (the
// host whose root is the longest prefix of it), looks at the home through
// that host's file system (status ok, missing-home or unreadable), walks
// it for its disk use and message count, and takes the connect time,
// session count and last login from the Dovecot logs (package dovelog)
// or from sessions files (TSV: user start end).
//
// Words: bytes are allocated blocks, each inode once, folders included,
// as `du --block-size=1 -s` counts them; messages are the files in cur/
// and new/ of every Maildir folder (a folder that has cur/ or new/, as
// Dovecot sees a mailbox in a folder with cur/ and makes new/ and tmp/
// when it needs them: the home's Maildir, Maildir++ dot-folders such as
// an archive's .Archive.2020 with cur/ alone, any other) plus the "From "
// lines of mbox files (regular files outside Maildir folders that start
// with "From "). Connect time is the length of the union of a user's
// sessions within the window; three parallel connections count once.
//
// Homes are read through a DiskReader. LocalDisk reads a local host's
// homes under its fsroot, walking by file descriptor (openat, fstatat with
// no symlink following), so a walk never follows a symlink and never
// leaves the home. Hosts reached through an agent need a reader that
// talks to it.
//
// A survey only reads. It leaves nothing behind; writing raw.tsv
// (atomically) is the caller's part.
package survey
