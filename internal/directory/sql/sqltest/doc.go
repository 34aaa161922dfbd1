// Package sqltest gives tests real SQL databases for the sql directory:
// a throwaway PostgreSQL cluster (or the server $MAILDIST_TEST_PG_DSN
// names), a fresh schema in it per test, a fresh SQLite file per test,
// and the default users table filled with given entries.
//
// The PostgreSQL cluster is made with Debian's postgresql package
// (initdb and postgres from /usr/lib/postgresql/N/bin, or
// $MAILDIST_TEST_PG_BIN) in a temp folder, listens on a free loopback
// port and a Unix socket in that folder, runs without fsync, and is
// started at most once per test binary. When run as root, initdb and
// postgres run as the postgres user, which owns the folder. A test
// binary that uses it calls Main from TestMain, which stops the server
// and removes its folder; if the binary is killed, the server gets
// SIGQUIT (it is started with a parent-death signal) and only the temp
// folder is left.
//
// Without initdb and without $MAILDIST_TEST_PG_DSN, PostgreSQL tests
// skip, unless $MAILDIST_TEST_PG_REQUIRED is set (CI sets it): then they
// fail.
package sqltest
