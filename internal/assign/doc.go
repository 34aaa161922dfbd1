// Package assign picks the concrete users a plan moves: it turns the
// counts of moves.tsv (so many users of class c from host A to host B)
// and the shuffled user list of sort.tsv into todo.tsv, one row a user.
//
// Words: a bucket is one source host and class; the policy (--pick) says
// which of a bucket's users go when only some must: random (sort.tsv
// order, itself random), idle (least recently active first, so fewer
// moves are refused for a live session) or small (fewest bytes first).
// The users of a bucket are dealt to its destinations at random, and the
// whole todo is shuffled, so that runners on several hosts, each working
// down its part of the list, fill the destinations evenly and each in its
// own order.
//
// Make is pure: no files, no clock. The same moves, sort, rows and seed
// give the same todo, on every Go release (Rand spells out its draws).
// It never hands out a user twice. Nothing is written here, so a crash
// leaves nothing behind; the command writes todo.tsv atomically.
package assign
