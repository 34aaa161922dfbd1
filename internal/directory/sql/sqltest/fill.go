package sqltest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
)

// SQLite returns the DSN of a new, empty SQLite database file in the
// test's temp folder.
func SQLite(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "users.db")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return p
}

// Database returns the DSN of a new, empty database for a driver:
// "postgres" (a schema of its own, see PostgresSchema) or "sqlite".
func Database(tb testing.TB, driver string) string {
	tb.Helper()
	switch driver {
	case "postgres":
		return PostgresSchema(tb)
	case "sqlite":
		return SQLite(tb)
	}
	tb.Fatalf("sqltest: no driver %q", driver)
	return ""
}

// Exec runs statements on a database.
func Exec(tb testing.TB, driver, dsn string, stmts ...string) {
	tb.Helper()
	db := open(tb, dbDriver(driver), dsn)
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// Fill makes the default users table (sql.DefaultSchema) and adds the
// entries, with hostOf(home) in the host column (NULL when hostOf is nil
// or says ""), and nologin set to sql.HoldReason for held entries.
func Fill(tb testing.TB, driver, dsn string, entries []directory.Entry, hostOf func(string) string) {
	tb.Helper()
	Exec(tb, driver, dsn, dirsql.DefaultSchema)
	Insert(tb, driver, dsn, entries, hostOf)
}

// Insert adds entries to the default users table, in batches.
func Insert(tb testing.TB, driver, dsn string, entries []directory.Entry, hostOf func(string) string) {
	tb.Helper()
	db := open(tb, dbDriver(driver), dsn)
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	const batch = 500
	for len(entries) > 0 {
		n := min(batch, len(entries))
		var b strings.Builder
		b.WriteString("INSERT INTO users (username, home, uid, gid, host, nologin) VALUES ")
		args := make([]any, 0, 6*n)
		for i, e := range entries[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			k := 6 * i
			if driver == "sqlite" {
				fmt.Fprintf(&b, "(?%d, ?%d, ?%d, ?%d, ?%d, ?%d)", k+1, k+2, k+3, k+4, k+5, k+6)
			} else {
				fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d)", k+1, k+2, k+3, k+4, k+5, k+6)
			}
			var host, nologin, uid, gid any
			if hostOf != nil {
				if h := hostOf(e.Home); h != "" {
					host = h
				}
			}
			if e.Held {
				nologin = dirsql.HoldReason
			}
			if e.UID >= 0 {
				uid = e.UID
			}
			if e.GID >= 0 {
				gid = e.GID
			}
			args = append(args, e.User, e.Home, uid, gid, host, nologin)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			tb.Fatal(err)
		}
		entries = entries[n:]
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// dbDriver is database/sql's name for a config driver name.
func dbDriver(driver string) string {
	if driver == "postgres" || driver == "pgx" || driver == "postgresql" {
		return "pgx"
	}
	return driver
}
