// Package activity tells whether a user has a live session: the seed's
// "watcher". A move refuses a user with a live session (unless forced),
// because a client holding the mailbox open would race the copy.
//
// Sources: proc (processes of the user's uid whose name is one of the
// configured services), doveadm (`doveadm who -1`), command (a site's own
// program printing one active user a line) and none.
//
// A source that cannot answer returns an error; callers treat that as
// "active" (fail closed) unless the operator forces the move.
package activity
