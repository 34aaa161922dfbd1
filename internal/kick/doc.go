// Package kick ends live mail sessions: the seed's "kill processes for
// people who have been logged in since last January". A session that has
// been up for months is usually stuck, and it keeps its user from being
// moved.
//
// A process is ended only if it is still the process that was listed: the
// same pid, real uid, name and start time. Between listing and signalling
// a pid can be reused by something else, so each process is first opened
// as a pidfd (which names one process, never its successor), then
// checked in /proc, then signalled through the pidfd: SIGTERM, and
// SIGKILL after a grace period if it is still there. On a kernel without
// pidfds (before 5.3) the check is made right before kill(2), which
// leaves a window of microseconds instead of none.
//
// Dovecot's sessions are ended with `doveadm kick USER`, which ends every
// session of the user on that server. A site's own activity command can
// list sessions but not end them.
package kick
