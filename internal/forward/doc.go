// Package forward keeps maildist's forwarding entries in an MTA lookup
// table: the seed's funkyfor. People keep writing to user@HOST.domain (a
// host's own name, from an old address book or a Received line), long
// after the user moved to another host; the entries send that mail on.
//
// The table is a Postfix virtual(5) map ("key value" lines, # comments),
// shared with lines the site wrote itself. maildist owns exactly one
// section of it, between a "# BEGIN maildist forward" and a
// "# END maildist forward" line, with a "# user NAME" line before each
// user's entries. Every byte outside the section is written back as it
// was read; a line inside the section that maildist did not write is an
// error, never dropped. An entry whose key the site's own lines already
// have is left out (Postfix would keep only the first), and reported.
//
// For a user on host CUR, there is one entry for every other host H of
// the cluster: user@H.domain → user@CUR.domain (forward.to = "host", the
// default) or → user@domain (forward.to = "domain"). Every other host, not
// only the hosts the user is known to have been on: maildist's journals
// only reach back to the first maildist move, while address books reach
// back further, and an entry for a host the user never saw costs nothing.
//
// Why user@CUR.domain by default: where each host's MTA takes the domain
// as local and delivers by the directory, user@domain on the old host
// would be delivered there again, into a home that is not there (or a
// stub); user@CUR.domain is the one address that leaves the old host and
// lands where the directory says. Its cost is that it goes stale when the
// user moves again: run `maildist forward --refresh` after a round of
// moves. Where the domain is routed by a central relay that looks up the
// directory (as the stubs' .forward to user@domain assumes), "domain" is
// simpler and never goes stale.
//
// The package only edits bytes; the command reads the directory, writes
// the file atomically and runs postmap. A crash leaves the old file or
// the new one.
package forward
