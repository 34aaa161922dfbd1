// Package delivery holds, releases and flushes a user's incoming mail
// around a move.
//
// A hold defers delivery while the home is copied: the MTA keeps the mail
// queued and delivers it after the switch, to the new home. Kinds:
//
//   - rename: the home is renamed to HOME.moving, so local delivery fails
//     with a temporary error and the MTA keeps the mail (the seed's way).
//     It is only a hold where the delivery agent cannot recreate the home:
//     Check refuses a home whose parent folder the user can write.
//   - command: a site's own hold and release programs.
//   - postfix: a per-recipient "retry:4.7.1" entry in a transport map
//     that maildist owns, so Postfix keeps the user's mail deferred in
//     its own queue; the release removes it and flushes. Check refuses a
//     Postfix that does not consult the map, that would refuse a held
//     recipient at RCPT time, or that lacks the retry service. Start
//     waits until no delivery begun before the hold is still under way;
//     End waits release_delay after the switch, so that Dovecot (which
//     re-reads a passwd-file at most once a second) delivers the held
//     mail to the new home. The map is edited under a lock and replaced
//     atomically, and every postmap is followed by a reload. A crash
//     leaves at most an entry that recover's Undo or End removes.
//
// Queue tells which users still have mail queued (a command's output, or
// Postfix's `postqueue -j`), so `done` knows when stubs can go.
package delivery
