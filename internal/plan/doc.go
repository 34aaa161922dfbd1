// Package plan decides a balanced spread of users over the hosts of a mail
// cluster, and how many users of each class move between which hosts to
// reach it with the fewest moves. It turns raw.tsv rows and the host list
// into the contents of moves.tsv, sort.tsv and the report.
//
// Words: a class cXdY puts a user in one of five connect-time buckets and
// one of five disk buckets (0 = none; 1–4 split at the Thresholds, by
// default the quartiles of the non-zero values of the movable users). A
// group is the hosts balanced together: a pool, or every host with
// AcrossPools. have is how many users of a class a host holds now, target
// how many it should hold. Only users whose status is ok are movable;
// the others stay where they are and are listed in Plan.Unmoved.
//
// # The rule
//
// For each group and class, with N movable users, host weights w (0 for a
// draining host) and W their sum:
//
//  1. A host of weight 0 (drain = true, or weight = 0) is held to 0,
//     whatever the tolerance: every movable user leaves it.
//  2. A host with accept_new = false never receives. Its exact share is
//     s = N·w/W, and it is held to min(have, ⌈s⌉ + K). It gives away
//     only what it holds above ⌈s⌉ (+K); if it holds less than its share
//     it keeps what it has and gets nothing.
//  3. The accepting hosts of weight > 0 share the rest, R = N − Σ (2), by
//     weight: s' = R·w/W', W' their weight. Each target lies in the band
//     [⌊s'⌋ − K, ⌈s'⌉ + K] (never below 0), and the targets sum to R.
//     When every host accepts, s' is the plain share N·w/W.
//
// K is the tolerance (--tolerance, default 0): a host inside its band is
// left alone; one outside is brought to the nearest edge of the band.
//
// Among all targets the rule allows, the plan takes those with the fewest
// moves, Σ max(0, have − target). That least number is
//
//	max(A, B),  A = Σ max(0, have − hi),  B = Σ max(0, lo − have)
//
// over the hosts of the class (for hosts of rules 1 and 2, lo = hi = the
// held number): every host must shed down to the top of its band and
// fill up to the bottom, so no plan moves fewer, and solve reaches it.
//
// Why rule 2 reads so: a host that takes no new users cannot be held to
// the bottom of a floor/ceil band it is already below, so it keeps what it
// has; and holding it to the most it may keep, rather than to a share
// recomputed around it, makes the plan a fixed point: carrying the moves
// out and planning again moves nobody, which the property tests check.
// The users such a host lacks are shared by the accepting hosts, which is
// why their share s' can differ slightly from N·w/W (Target.Held shows
// the share each host is held to, Target.Share the plain one).
//
// # Pairing
//
// Which source sends how many to which destination: the surplus of every
// source is spread over every destination in proportion to its deficit
// (see pair), so each source feeds many destinations. The concrete users
// come from package assign, which also shuffles the todo so that no two
// sources fill the destinations in the same order.
//
// Make is pure: no files, no clock, no global state; the same rows, hosts
// and options give the same Plan. With Seed 0 the seed is derived from
// the rows. Nothing is written here, so a crash leaves nothing behind; the
// plan command writes the files, each atomically.
package plan
