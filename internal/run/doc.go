// Package run carries out the moves of a run folder's todo.tsv, as the
// seed's mdist4 and mloop4 did: the moves whose source is one of the
// runner's hosts, several at once but never too many touching one host,
// round after round until nothing is left that can still succeed.
//
// What is done is read from the run's journals (RUN/journal), not from a
// file the runner keeps: a move is done when its journal says so, so a
// runner killed at any point and started again neither loses a move nor
// makes one twice. Each move's outcome is appended to RUN/log.jsonl as a
// "result" event; refusals and failures are counted from there, to tell
// what may be retried from what is permanent.
//
// Several runners may share one run folder if they take different source
// hosts: their moves never touch the same user, the per-user lock keeps
// them apart if they do, log.jsonl is appended one whole line at a time,
// and each writes only the todo.HOST.tsv files of its own hosts.
package run
