// Package passwd is the directory backend over a passwd-style file: the
// system's /etc/passwd, or Dovecot's passwd-file
// (user:password:uid:gid:gecos:home:shell:extra fields).
//
// Only the home field (and, with hold markers, Dovecot's "nologin reason=…"
// extra fields) is ever changed; every other byte of every line, comments
// and blank lines included, is written back as it was read.
//
// A write takes an exclusive lock on FILE.lock, re-reads the file, checks,
// copies the current file to FILE.bak, then replaces FILE atomically (temp
// file, fsync, rename, fsync of the folder). A crash leaves either the old
// or the new file, and FILE.bak holds the one before the last write.
//
// Every write dates the file at least a whole second after the file it
// replaces: Dovecot notices a changed passwd-file by its mtime in seconds
// and its size only (and looks at most once a second), so two writes of
// the same size within one second would otherwise leave it reading the
// first.
package passwd
