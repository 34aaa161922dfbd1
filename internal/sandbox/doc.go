// Package sandbox builds a mail cluster in a folder on one machine, for
// `maildist demo` and for the tests of every package that moves, surveys
// or plans: several storage hosts, each with a file system of its own, a
// passwd-file directory, real Maildirs, a maildist.toml and a Dovecot log.
//
// # Layout
//
//	DIR/maildist.toml             config.Load reads it as it is
//	DIR/etc/passwd                user:{PLAIN}password:uid:gid::home:: (Dovecot passwd-file)
//	DIR/cluster/<host>/           the host's fsroot: its file system
//	DIR/cluster/<host>/<host>/    the host's root, /<host> on the host
//	DIR/cluster/<host>/<host>/<user>/Maildir/   a home, /<host>/<user> in the directory
//	DIR/state/                    state_dir
//	DIR/logs/dovecot.log          the survey's log
//
// Cluster.RealPath turns a host-absolute home into where it lies here.
//
// # Mailboxes
//
// Homes hold Dovecot's maildir:~/Maildir: cur/, new/, tmp/, Maildir++
// folders (.Sent, .Archive, …, each with maildirfolder), dovecot-uidlist
// (version 3, one line per message), subscriptions, and dovecot-keywords
// for users who use keywords. Messages are named as Dovecot names them,
// <secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>:2,<flags>, where S= is
// the file's size and W= its size with CRLF line ends; most are seen,
// some answered or flagged, a few unseen, and a few just delivered in new/
// with no ":2," part. A message file's mtime and atime are the time of its
// Date header as net/mail parses it (a message with no usable Date gets a
// seeded time, which its name also carries).
//
// Mailboxes are either generated (made-up RFC 5322 messages, skewed sizes,
// a few heavy users, many light ones, a few empty) or read from the Enron
// corpus (see FindCorpus), streamed from its archive without unpacking it,
// every message byte for byte. The corpus's subfolders of inbox/ become
// Maildir++ folders (inbox/a/b → .a.b). Nothing ever prints a message.
//
// Users are spread over the hosts unevenly, by HostSpec.Share, so that a
// rebalancer has work to do; some users have a directory entry but no
// home (Options.MissingHomes), which the survey reports as missing-home.
//
// # Owners
//
// Run as root, a sandbox is owned as a careful site owns its mail store:
// each home and everything in it belong to the user's uid and gid (which
// need not exist in /etc/passwd), and the host root above the homes (and
// any {hash2} folder between) belongs to root with mode 0711, so that a
// delivery agent running as the user cannot recreate a home that has been
// renamed away: that is what makes hold = "rename" safe. Run as anyone
// else, every file belongs to the current user; modes are the same.
// Build opens DIR itself (0755); for a real Dovecot over a sandbox, the
// folders above DIR must be searchable by the users' uids too.
//
// A test of this package runs a real Dovecot 2.3 over a sandbox: it reads
// every mailbox with the UIDs, flags, keywords and INTERNALDATEs the
// sandbox meant, and leaves dovecot-uidlist as it is.
//
// # Determinism
//
// Everything random is drawn from Options.Seed, keyed by what it is about
// (a user, a message), so the same options give the same cluster byte for
// byte, with the same names, owners and mtimes, however the parallel
// writers are scheduled. Nothing depends on the clock: the log ends at a
// time derived from the seed (Cluster.LogEnd), and every folder and every
// file that is not a message is dated by the mailbox or by LogEnd. Reading
// a message updates its atime, as it would on a real host.
//
// # The Dovecot log
//
// DIR/logs/dovecot.log is Dovecot 2.3's log_path format with UTC time
// stamps ("Jan 02 15:04:05 imap-login: Info: Login: user=<u>, …, mpid=P,
// TLS, session=<S>" … "imap(u)<P><S>: Info: Logged out in=… out=…"): IMAP
// and POP3 sessions, parallel connections, idle timeouts, failed logins,
// password guessing for names not in the directory, connections that
// never log in, and LMTP deliveries. Every session ends inside the log.
// The truth is in each User: Sessions (logins that succeeded), ConnectS
// (seconds covered by the union of the user's sessions) and LastLogin.
//
// # Durability and failures
//
// Nothing is fsynced: a sandbox is rebuilt, not recovered. A build first
// writes mailboxes to DIR/.build and renames each home into place once
// every user is known; a failed or cancelled build leaves DIR half made,
// for the caller to remove.
package sandbox
