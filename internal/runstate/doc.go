// Package runstate reads and writes the run folder (RUN/): raw.tsv,
// moves.tsv, sort.tsv, todo.tsv, todo.HOST.tsv and log.jsonl.
//
// Every file is plain text with a header line naming its columns. Whole
// files are written atomically (temp, fsync, rename, fsync of the folder),
// so a crash leaves the old file or the new one. log.jsonl is appended one
// whole line at a time with O_APPEND and fsynced, so several runners may
// share it; a crash can leave at most a torn last line, which readers skip
// and name.
//
// Fields are separated by tabs. A field holding a tab, newline, carriage
// return or backslash is written with the escapes \t \n \r \\.
package runstate
