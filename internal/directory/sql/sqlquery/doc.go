// Package sqlquery reads the queries a site writes for its SQL user
// directory and rewrites their named placeholders for a driver.
//
// A query names the values it needs as :user, :old_home, :new_home,
// :old_host, :new_host, :delay_until and :reason. Each query may use only
// the names its job provides (Kinds); PostgreSQL-style $1, $2, … are read
// as the same names in a fixed order per query, so a query written for
// Dovecot's own SQL config can be pasted as it is. Text inside string
// literals, quoted identifiers, dollar quotes and comments is never
// touched, and "::" is PostgreSQL's cast, not a placeholder.
//
// Values are always sent as bound parameters: no user name or home path is
// ever spliced into the SQL text. The package is pure: it opens nothing.
package sqlquery
