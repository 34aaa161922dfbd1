// Package sql is the directory backend over an SQL table, the way Dovecot
// (userdb and passdb sql) and Postfix (*_maps over SQL) sites keep their
// users: PostgreSQL through pgx, or SQLite (pure Go, no server) as the
// embedded default.
//
// # The site's schema
//
// The site names the queries; maildist brings no schema of its own:
//
//	list    every user: columns user (or username) and home; uid, gid,
//	        host and held if the site has them
//	lookup  the same columns, for one user (:user)
//	switch  one UPDATE that sets the new home (and host, delay_until)
//	        only where the row still holds the old home
//	hold    mark a user held, so the passdb refuses logins  (optional,
//	unhold  clear that mark again                           with hold)
//
// Columns are found by name, in any order; a column of another name is an
// error, so a typo shows at once. uid and gid may be NULL (-1). held
// means "held by maildist", not any nologin. It may be a boolean (true/
// false, t/f, yes/no, y/n), a number (0 is no), or the marker's text
// itself, as in nologin AS held: maildist's reason (HoldReason, or
// directory.HoldReason as older versions wrote it) is held; NULL, empty
// and any other text (a nologin the site set itself) are not.
//
// One row never hides the others. List returns every row it can use and
// reports each that it cannot (no user, no home or one that is not
// absolute, a uid or gid that is not a number) as a *RowError, joined.
// When the list query returns a host column, a row whose host is not the
// host its home is on is reported as a *HostMismatch (a Dovecot proxy
// routing by that column would send the user to the wrong backend), and
// its entry is returned: the home decides. Both are a *directory.LineError
// too (errors.As; File "list query", Line the row), the bad entry that
// callers go on past, as they do past a bad line of a passwd file. User
// names are returned as they are, for callers to check. Lookup is strict
// for the one user asked about: a row of that user it cannot use is an
// error, never directory.ErrNotFound; it does not look at the host
// column.
//
// Without queries, DefaultQueries work on DefaultSchema:
// users(username, home, uid, gid, host, nologin).
//
// # Placeholders
//
// Queries name their values, and the names are rewritten to the driver's
// bound parameters ($1 for PostgreSQL, ?1 for SQLite); values are never
// spliced into the SQL text (see sqlquery):
//
//	:user         the user name                     lookup switch hold unhold
//	:old_home     the home the row must still hold  switch (required)
//	:new_home     the new home                      switch (required)
//	:old_host     host of the old home, or NULL     switch
//	:new_host     host of the new home, or NULL     switch
//	:delay_until  Unix time of the switch plus      switch
//	              directory.switch_delay
//	:reason       HoldReason: "Mailbox is being     list lookup hold unhold
//	              moved, try again in a few
//	              minutes" (see Writes for unhold)
//
// $1, $2, … may be written instead, standing for the names in the order of
// that table's rows for each query (switch: $1 user, $2 old_home, $3
// new_home, $4 old_host, $5 new_host, $6 delay_until; lookup, hold and
// unhold: $1 user, $2 reason; list: $1 reason). A bare ? is refused.
//
// # Writes
//
// Switch, hold and unhold each run one statement in a transaction of
// their own, which is committed only if it changed exactly one row. More
// than one row: rolled back, *TooManyRows. No row: nothing changed, and a
// lookup tells directory.ErrNotFound from directory.ErrChanged. A switch
// that sets a home already there succeeds only when the old and new homes
// are the same.
//
// Hold writes HoldReason, words with spaces: a column keeps them, and
// Dovecot's SQL passdb passes them on whole (passwd-file's extra fields
// cannot, hence directory.HoldReason there). Unhold clears exactly what
// hold wrote; when that changes no row it runs again with :reason =
// directory.HoldReason, the reason an older maildist wrote into SQL too,
// so that a user it held is released (maildist recover). A site's own
// nologin text is neither overwritten (the default hold query sets only
// a NULL nologin) nor cleared.
//
// # Connections
//
// A DB is one pool (four connections by default) for the whole process;
// a run of many moves uses it throughout. A call that fails because its
// connection went away (server restart, network cut, an administrator
// ending the session) or because the server asked for a retry
// (serialization failure) is tried once more, after the pool drops its
// idle connections; a second failure is returned, saying so. A failed
// write changed nothing, as its transaction was not committed. The one
// doubtful case is a commit whose answer was lost: the retry then finds
// the row already holding the new home, and takes that as the switch
// having happened.
//
// SQLite databases get a busy timeout of ten seconds and write
// transactions that take the write lock at once (BEGIN IMMEDIATE), unless
// the DSN sets _busy_timeout or _txlock; the file must exist.
//
// # What a crash leaves
//
// Nothing of maildist's own: each write is one transaction, so the
// database holds the row either as it was or as switched. The move
// journal (package move) knows which step was under way.
package sql
