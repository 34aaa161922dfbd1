// Package move is the journaled move of one user's home from one host to
// another: the heart of maildist.
//
// A move is a sequence of steps:
//
//	check    the user, both homes, free space, locks, live sessions
//	precopy  (optional) the live home is copied to staging, pass after pass
//	hold     delivery deferred (delivery.Hold), logins refused (directory marker)
//	settle   no process has a file open under the held home
//	copy     the tree goes to a staging folder on the destination (after a
//	         precopy: only what changed since its last pass)
//	verify   manifests of both sides (with content hashes) must be equal;
//	         what changed is copied again and verified again
//	commit   staging is renamed into place on the destination
//	switch   the directory entry changes, compare and swap
//	stub     a .forward at the new home's path on the old host
//	release  the held tree goes to the old host's trash; the hold ends
//
// Each step is written to the move's journal (one JSON line, fsynced)
// before it is taken. A crash at any point leaves a journal whose last line
// names the step that may have been half taken; Recover reads it and
// finishes the move (from switch on) or undoes it (before switch): staging
// removed, the held home put back, the hold ended. Every action is
// idempotent so that recovering twice is the same as once.
//
// At every moment the user's mail exists complete in at least one verified
// place: the held source is only moved to the trash after the copy is
// verified, committed and the directory switched, and the trash is only
// purged by `done`.
//
// Journals live in a folder per batch: state_dir/journal for ad-hoc moves,
// RUN/journal for a run. A finished move's journal stays until `done` has
// flushed the held mail and removed the stub, then goes to journal/archive.
// A per-user lock (flock, so a crash never leaves it taken) keeps two
// movers off one user.
package move
