// Package dovelog reads Dovecot's logs and turns them into sessions: who
// was connected, over which service, from when to when.
//
// It knows the shapes Dovecot has written from 1.x to 2.4, in its own log
// files (log_path, with the default or an ISO log_timestamp) and through
// syslog (with or without a host name, with RFC 3339 stamps too):
//
//	imap-login: Login: user=<u>, method=PLAIN, rip=…, mpid=P, TLS, session=<S>
//	imap-login: Info: Logged in: user=<u>, …                       (2.4)
//	imap(u)<P><S>: Info: Logged out in=… out=…                      (2.3)
//	imap(u): Info: Disconnected: Logged out in=… out=…              (2.2)
//	IMAP(u): Disconnected: Logged out bytes=i/o                     (1.x)
//	pop3(u): Disconnected: Logged out top=…, retr=…, del=…, size=…
//	imap(u): Connection closed (IDLE running for …), Disconnected for inactivity
//	master: Dovecot v2.3.21 starting up …                          (a restart)
//	master: Error: service(imap): child P killed with signal 9      (P's sessions end)
//
// Words: a line is parsed into an Event of one Kind; a Pairer pairs
// logins with ends into sessions and adds each user's sessions up: the
// connect time is the length of the union of a user's sessions (three
// parallel connections count once), clipped to a window. A source is one
// host's log, its rotated files read oldest first; Scan parses each
// source's blocks in parallel and merges the sources by time.
//
// Scan's goroutines: pairing cannot be shared out, so one goroutine pairs
// and the others (one fewer than the processors) read and parse blocks
// ahead of it, and do what they can of the pairer's work: they look the
// users of a block up in the pairer's user table (which the pairer alone
// writes, and which they read without locks) and ask Normalize about the
// names they do not find there. The pairing goroutine never sleeps on a
// block no one is working on: it reads and parses a block itself when no
// helper has taken it, parses a later block while it waits for a helper,
// and parses a copy when a helper that took a block does not finish in
// about the time parsing should take (on a busy machine, a thread that
// sleeps, or is not run, waits many milliseconds for its turn). A file
// given as Mapped (a mapped file) is cut into blocks where it lies,
// without a copy.
//
// Dates: a line whose date no calendar has (Feb 30, Apr 31,
// 2026-02-30T10:00:00Z, 2026-13-01), whose time no clock shows (25:00:00,
// 10:61:00) or whose zone offset is out of range (+25:00) is malformed,
// never rolled over into another day; so is a year outside 1900–2200,
// which Unix nanoseconds would wrap or no log has. A syslog date has no year: it is placed in the year that ends two
// days after the file's mtime (so December lines read in January are last
// year's). Feb 29 goes to the last leap year whose Feb 29 is at most two
// days after the mtime, if that is less than a year (366 days) back;
// further back it is malformed, not placed years before every other line.
//
// Failed logins, delivery (lmtp, lda) and every other line are counted by
// kind and never make a session. A master that is stopped ("Killed with
// signal") ends its host's sessions as a restart does. A session whose end
// line is lost ends when its mail process's pid comes back in another
// login's mpid= on the same host (the process must have ended for its pid
// to be handed out again). Dovecot 1.x's login "PID=" is the login
// process's pid, not the mail process's, and one login process serves
// many logins at once: it neither pairs nor ends anything.
//
// Memory: the pairer keeps the sessions open now and one 64-byte record
// a user (with the name); it never grows with the length of the log. The
// parsers hash user names and session ids; users are told apart by 96
// bits of a name's hash, so two names are taken for one user with odds
// of about one in 10^17 for a million names.
//
// Parsing and pairing are pure: they read only what they are given (the
// year of a syslog date comes from an anchor the caller passes, the log
// file's mtime). The package opens no file itself and leaves nothing
// behind.
package dovelog
