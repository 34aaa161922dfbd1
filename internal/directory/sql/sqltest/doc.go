// Package sqltest gives tests real SQL databases for the sql directory:
// a throwaway PostgreSQL cluster (or the server $MAILDIST_TEST_PG_DSN
// names), a fresh schema in it per test, a fresh SQLite file per test,
// the default users table filled with given entries, and the config
// snippets that point maildist (DirectoryTOML) and Dovecot (DovecotSQL)
// at it. An end-to-end test does:
//
//	dsn := sqltest.Database(t, "postgres") // or "sqlite"
//	sqltest.Fill(t, "postgres", dsn, entries, hostOf)
//	toml := sqltest.DirectoryTOML("postgres", dsn) // replaces [directory]
//
// and, in its package, func TestMain(m *testing.M) { os.Exit(sqltest.Main(m)) }.
//
// The PostgreSQL cluster is made with Debian's postgresql package
// (initdb and postgres from /usr/lib/postgresql/N/bin, or
// $MAILDIST_TEST_PG_BIN) in a temp folder, listens on a free loopback
// port and a Unix socket in that folder, runs without fsync, and is
// started at most once per test binary (about two seconds). When run as
// root, initdb and postgres run as the postgres user, which owns the
// folder. Main stops the server and removes its folder. If the test
// binary ends otherwise (killed, or no Main), the server gets SIGQUIT (a
// parent-death signal) and the next start removes the folder.
//
// Without initdb and without $MAILDIST_TEST_PG_DSN, PostgreSQL tests
// skip, unless $MAILDIST_TEST_PG_REQUIRED is set (CI sets it): then they
// fail.
package sqltest
