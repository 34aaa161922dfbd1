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
// left alone where the class allows; one outside is brought into it.
// K is per class, so it adds up over the classes: a host may end up to
// about K·C users from its total goal (C the classes with users), and a
// new, empty host, inside the band [0, ⌈s'⌉ + K] of every class whose
// share s' is below K + 1, may receive nobody at all. The plan plans the same
// rows once more without the tolerance and names the hosts that end more
// than K + 1 users and more than 1% from their goals, and at least one
// user further than that exact plan would leave them (Reasons, and the
// report's checks).
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
// why their share s' can differ from N·w/W (Target.Held shows the share
// each host is held to, or the number for a host held to one,
// Target.Share the plain one).
//
// # The totals
//
// Many targets have the fewest moves: Moves = Σ max(0, have − target) =
// Σ max(0, target − have), and each term is at least its part of A (of
// B), so a plan has the fewest moves exactly when
//
//   - A ≥ B: every host above hi goes to hi, and every other host keeps
//     what it has or gains, up to hi; or
//   - A < B: every host below lo goes to lo, and every other host keeps
//     what it has or loses, down to lo.
//
// That leaves |A − B| users of the class free to fall on any host whose
// range is open: which receiving hosts get ⌈s'⌉ rather than ⌊s'⌋, and
// which hosts already at or above ⌈s'⌉ keep it. Among these plans the
// plan takes, in this order of preference:
//
//  1. with a tolerance, the plans that put the fewest free users on hosts
//     inside their band: hosts outside their band take them first (past
//     the nearest edge of their band if need be), the others only what
//     those cannot;
//  2. the plan whose host totals T (the sum of a host's targets over the
//     classes) lie nearest the total shares g: Σ (T − g)² least, over the
//     accepting hosts of the group;
//  3. among those, the one whose bytes lie nearest the byte shares, as
//     far as swapping users of two classes between two hosts finds it
//     (sizes are estimated from the class means: spread says how).
//
// A host's total share g is the sum over the classes of the share the
// rule holds it to, Σ s' (HostPlan.Held), not its plain share of all the
// group's movable users, N·w/W. The two are the same unless a host of
// the group takes no new users; then that host keeps less than its share
// (rule 2), the accepting hosts must hold the rest between them, and Σ s'
// is exactly that rest split by weight, while the plain shares of the
// accepting hosts add up to fewer users than they must hold.
//
// What the totals reach. Each target lies in its band, less than K + 1
// from s', so |T − g| < (K + 1)·C always, C the number of classes with
// users in the group. The plan's totals have the least Σ (T − g)² of all
// plans with the fewest moves (with a tolerance: of those that put as
// few users on hosts inside their band), and so also the least largest excess T − g and the least
// largest shortfall g − T: no such plan brings its furthest host nearer.
// For each accepting host h:
//
//	T_h − g_h ≤ 1 + e⁺_h,   g_h − T_h ≤ 1 + e⁻_h,
//	e⁺_h = max over sets S of accepting hosts with h in S of (μ(S) − g(S)) / |S|,
//	e⁻_h = max over the same sets of (g(S) − ν(S)) / |S|,
//
// where μ(S) and ν(S) are the least and the most users the hosts of S
// can hold between them in any plan with the fewest moves (class by
// class: Σ_S least against r − Σ_notS most, and the like), and g(S) the
// sum of their shares. So every host ends within ±1 of its total share
// unless some set of hosts is forced, by the fewest moves alone, further
// over or under its shares; and then each host is within 1 of that set's
// forced average. Proof: let S be the hosts h can pass a free user to,
// directly (h above its least in a class in which the other is below its
// most) or through a chain of such passes. No host of S can pass one out
// of S, so S holds the least it can, μ(S). Passing one from h to j would
// lower Σ (T − g)² if T_h − g_h > T_j − g_j + 1, so at the least sum no
// host of S is more than 1 below h; their mean, (μ(S) − g(S))/|S|, is
// then at least T_h − g_h − 1. The same way down gives e⁻.
//
// ±1 cannot be promised even when every host accepts and none drains:
// a host that sends users of a class keeps ⌈s'⌉ of it, since one more
// out would be a move more, so a host that sends in many classes holds
// up to the sum of ⌈s'⌉ − s' over them above its share (the usual case
// for the fullest hosts of a pool, e⁺ > 0), and a host already inside
// its band in every class moves nobody. Two hosts of equal weight and 25
// classes of one user each, all on one host: the fewest moves are 0 and
// the totals stay 25 and 0 against shares of 12.5. The plan names the
// group's furthest host among its Reasons.
//
// # Shares and goals in the report
//
// A host's share is what its weight alone gives it: Share of its group's
// movable users (N·w/W summed over the classes), plus its users that
// never move. Its goal is what the plan can bring it to: HostPlan.Held
// (Σ s' for a host that accepts, the number it is held to for one that
// drains or takes no new users) plus those same users that never move.
// Shares and goals both add up to the group's users, and they differ
// only when a host of the group takes no new users (rule 2): it holds
// what its classes let it keep, more or less than its share, and the
// hosts that accept share the rest. Every distance the report and the
// table give ("furthest from its goal") is from the goal; the bars draw
// the goal, and the share too where it differs, and one line per group
// says why they differ (Reasons).
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
