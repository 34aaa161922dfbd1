// Package stubdir makes empty homes for users whose directory entry names
// a home that is not there: the seed's funkydir. Such users (the survey's
// missing-home, usually accounts that are expiring) block a rebalance
// round, which cannot move a home that does not exist. With an empty home
// made, the next round moves them like anyone else, and the accounting
// deletes the home later.
//
// A home is made at the path the directory names now (not the path an old
// survey saw), on the host whose root holds it, owned by the user's uid
// and gid from the directory, mode 0700. Folders above it that are
// missing are made root-owned, mode 0711, like a host root: a user must
// not be able to write the folder above the home, or a rename hold would
// not hold (see delivery.Rename).
//
// Nothing that exists is touched. Each home is looked at again right
// before it is made; a home that exists is skipped, and so is one whose
// HOME.moving exists or whose user is locked by a move. A host whose root
// is missing is refused (a file system not mounted must not be filled
// with empty homes).
//
// A crash leaves some homes made and not yet recorded in stubdirs.tsv;
// running again skips them as existing, so the record lists only what a
// run made. The homes made are plain empty folders: removing them by hand
// undoes a run.
package stubdir
