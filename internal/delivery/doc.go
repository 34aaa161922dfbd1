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
//   - postfix: a per-recipient transport entry (see postfix.go).
//
// Queue tells which users still have mail queued (a command's output, or
// Postfix's `postqueue -j`), so `done` knows when stubs can go.
package delivery
