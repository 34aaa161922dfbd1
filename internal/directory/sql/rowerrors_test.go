package sql_test

import (
	"context"
	stdsql "database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/directorytest"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
)

// siteTable is a site's own table that allows what the default schema
// does not (a NULL home, a uid that is text), and keeps its rows in order.
const siteTable = `CREATE TABLE accounts (n INTEGER, login TEXT, dir TEXT, u TEXT, g TEXT, srv TEXT, nologin TEXT)`

var siteQueries = dirsql.Queries{
	List:   `SELECT login AS "user", dir AS home, u AS uid, g AS gid, srv AS host, nologin AS held FROM accounts ORDER BY n`,
	Lookup: `SELECT login AS "user", dir AS home, u AS uid, g AS gid, srv AS host, nologin AS held FROM accounts WHERE login = :user`,
	Switch: `UPDATE accounts SET dir = :new_home, srv = :new_host WHERE login = :user AND dir = :old_home`,
	Hold:   `UPDATE accounts SET nologin = :reason WHERE login = :user AND nologin IS NULL`,
	Unhold: `UPDATE accounts SET nologin = NULL WHERE login = :user AND nologin = :reason`,
}

func openSite(t *testing.T, driver string, rows ...string) *dirsql.DB {
	t.Helper()
	dsn := sqltest.Database(t, driver)
	stmts := []string{siteTable}
	for _, r := range rows {
		stmts = append(stmts, "INSERT INTO accounts VALUES "+r)
	}
	sqltest.Exec(t, driver, dsn, stmts...)
	d, err := dirsql.Open(context.Background(), dirsql.Options{Driver: driver, DSN: dsn, HostOf: hostOf, Queries: siteQueries})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// One bad row never hides the others: List returns every row it can
// use, a host column that disagrees with the home included (the home
// decides), and names each bad row as a *directory.LineError, which is
// what the survey and directory check go on past.
func TestListBadRowsAreLineErrors(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := openSite(t, driver,
				`(1, 'alice', '/bp04/alice', '5001', '100', 'bp04', NULL)`,
				`(2, 'clindqvist', '/bp05/clindqvist', '5002', '100', 'bp03', NULL)`, // host disagrees
				`(3, 'nohome', NULL, '5003', '100', 'bp04', NULL)`,
				`(4, 'textuid', '/bp04/textuid', 'x1', '100', 'bp04', NULL)`,
				`(5, NULL, '/bp04/nobody', '5005', '100', 'bp04', NULL)`,
				`(6, '-rf', '/bp04/-rf', '5006', '100', 'bp04', NULL)`, // a bad name: for the caller to refuse
				`(7, 'bob', '/bp04/bob', '5007', '100', 'bp04', NULL)`,
				`(8, 'rel', 'bp04/rel', '5008', '100', 'bp04', NULL)`,
				`(9, 'textgid', '/bp04/textgid', '5009', '-', 'bp04', NULL)`,
			)
			es, err := d.List(context.Background())
			var got []string
			for _, e := range es {
				got = append(got, e.User+" "+e.Home)
			}
			want := []string{"alice /bp04/alice", "clindqvist /bp05/clindqvist", "-rf /bp04/-rf", "bob /bp04/bob"}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("List = %q, want %q", got, want)
			}
			j, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("List error %v is not a joined list", err)
			}
			errs := j.Unwrap()
			wantErrs := []struct {
				row  int
				text string
			}{
				{2, `list row 2 (user "clindqvist"): host column says bp03, but home /bp05/clindqvist is on bp05`},
				{3, `list row 3 (user "nohome"): no home (the home column is NULL or empty)`},
				{4, `list row 4 (user "textuid"): uid "x1" is not a number`},
				{5, `list row 5: empty user name`},
				{8, `list row 8 (user "rel"): home "bp04/rel" is not an absolute path`},
				{9, `list row 9 (user "textgid"): gid "-" is not a number`},
			}
			if len(errs) != len(wantErrs) {
				t.Fatalf("List gave %d errors, want %d: %v", len(errs), len(wantErrs), err)
			}
			for i, w := range wantErrs {
				e := errs[i]
				if e.Error() != w.text {
					t.Errorf("error %d = %q, want %q", i, e, w.text)
				}
				var le *directory.LineError
				if !errors.As(e, &le) {
					t.Errorf("error %q is not a *directory.LineError", e)
					continue
				}
				if le.Line != w.row || !strings.Contains(le.Error(), "list query") {
					t.Errorf("as a line error: %q (line %d), want row %d of the list query", le, le.Line, w.row)
				}
			}
			// The host mismatch is still told apart from a row that
			// cannot be read.
			var hm *dirsql.HostMismatch
			var re *dirsql.RowError
			if !errors.As(errs[0], &hm) || errors.As(errs[0], &re) || !errors.As(errs[1], &re) {
				t.Errorf("kinds: %T, %T", errs[0], errs[1])
			}
		})
	}
}

// Lookup stays strict for the one user asked about: a row it cannot
// read is an error, not "no such user"; a host column that disagrees
// with the home does not stop a move (the home decides).
func TestLookupOfBadAndMismatchedRows(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := openSite(t, driver,
				`(1, 'clindqvist', '/bp05/clindqvist', '5002', '100', 'bp03', NULL)`,
				`(2, 'nohome', NULL, '5003', '100', 'bp04', NULL)`,
				`(3, 'textuid', '/bp04/textuid', 'x1', '100', 'bp04', NULL)`)
			ctx := context.Background()
			if e, err := d.Lookup(ctx, "clindqvist"); err != nil || e.Home != "/bp05/clindqvist" {
				t.Errorf("Lookup(clindqvist) = %+v, %v", e, err)
			}
			for _, u := range []string{"nohome", "textuid"} {
				if _, err := d.Lookup(ctx, u); err == nil || errors.Is(err, directory.ErrNotFound) || !strings.Contains(err.Error(), u) {
					t.Errorf("Lookup(%s) = %v, want an error naming the row", u, err)
				}
			}
		})
	}
}

// A held column may be the nologin text itself: maildist's reason (in
// either wording) is held, NULL or empty is not, and a reason the site
// set itself is not maildist's hold. Booleans and numbers still work.
func TestHeldColumnText(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d := openSite(t, driver,
				`(1, 'ours', '/bp04/ours', '1', '1', 'bp04', '`+dirsql.HoldReason+`')`,
				`(2, 'older', '/bp04/older', '1', '1', 'bp04', '`+directory.HoldReason+`')`,
				`(3, 'site', '/bp04/site', '1', '1', 'bp04', 'Account disabled, call the help desk')`,
				`(4, 'empty', '/bp04/empty', '1', '1', 'bp04', '')`,
				`(5, 'null', '/bp04/null', '1', '1', 'bp04', NULL)`,
				`(6, 'yes', '/bp04/yes', '1', '1', 'bp04', 'Y')`,
				`(7, 'no', '/bp04/no', '1', '1', 'bp04', 'false')`,
				`(8, 'two', '/bp04/two', '1', '1', 'bp04', '2')`,
				`(9, 'zero', '/bp04/zero', '1', '1', 'bp04', '0')`)
			want := map[string]bool{"ours": true, "older": true, "site": false, "empty": false, "null": false, "yes": true, "no": false, "two": true, "zero": false}
			es, err := d.List(context.Background())
			if err != nil || len(es) != len(want) {
				t.Fatalf("List: %d entries, %v", len(es), err)
			}
			for _, e := range es {
				if e.Held != want[e.User] {
					t.Errorf("List: %s held = %v, want %v", e.User, e.Held, want[e.User])
				}
				if l, err := d.Lookup(context.Background(), e.User); err != nil || l.Held != want[e.User] {
					t.Errorf("Lookup(%s) = %+v, %v; want held %v", e.User, l, err, want[e.User])
				}
			}
		})
	}
}

// nologin reads a user's nologin column in the default schema.
func nologin(t *testing.T, driver, dsn, user string) stdsql.NullString {
	t.Helper()
	name := map[string]string{"postgres": "pgx", "sqlite": "sqlite"}[driver]
	db, err := stdsql.Open(name, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := "SELECT nologin FROM users WHERE username = $1"
	if driver == "sqlite" {
		q = "SELECT nologin FROM users WHERE username = ?1"
	}
	var s stdsql.NullString
	if err := db.QueryRow(q, user).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// In SQL the hold reason can have spaces (passwd-file's cannot), so
// users see a readable one; unhold clears exactly what hold wrote, and
// also the reason an older maildist wrote, but never a site's own.
func TestHoldReasonReadable(t *testing.T) {
	if !strings.Contains(dirsql.HoldReason, " ") || strings.Contains(dirsql.HoldReason, "_") {
		t.Fatalf("HoldReason %q: want words with spaces", dirsql.HoldReason)
	}
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d, dsn := open(t, driver, directorytest.Seed(), dirsql.Options{})
			ctx := context.Background()

			if err := d.SetHold(ctx, "alice", directory.HoldReason); err != nil {
				t.Fatal(err)
			}
			if got := nologin(t, driver, dsn, "alice"); got.String != dirsql.HoldReason {
				t.Fatalf("held: nologin = %q, want %q", got.String, dirsql.HoldReason)
			}
			if e, _ := d.Lookup(ctx, "alice"); !e.Held {
				t.Fatal("alice is not seen as held")
			}
			if err := d.ClearHold(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			if got := nologin(t, driver, dsn, "alice"); got.Valid {
				t.Fatalf("after unhold: nologin = %q", got.String)
			}

			// Held by an older maildist, with passwd-file's reason: seen as
			// held, and released.
			sqltest.Exec(t, driver, dsn,
				"UPDATE users SET nologin = '"+directory.HoldReason+"' WHERE username = 'bob'",
				"UPDATE users SET nologin = 'Account disabled' WHERE username = 'zoë'")
			es, err := d.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Held != (e.User == "bob") {
					t.Errorf("List: %s held = %v", e.User, e.Held)
				}
			}
			if err := d.ClearHold(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			if got := nologin(t, driver, dsn, "bob"); got.Valid {
				t.Fatalf("older hold after unhold: nologin = %q", got.String)
			}
			// A site's own nologin is neither overwritten nor cleared.
			if err := d.SetHold(ctx, "zoë", directory.HoldReason); err != nil {
				t.Fatal(err)
			}
			if err := d.ClearHold(ctx, "zoë"); err != nil {
				t.Fatal(err)
			}
			if got := nologin(t, driver, dsn, "zoë"); got.String != "Account disabled" {
				t.Fatalf("site's nologin = %q", got.String)
			}
			// A reason unhold could not clear is refused.
			if err := d.SetHold(ctx, "alice", "gone fishing"); err == nil {
				t.Fatal("SetHold with a reason of its own succeeded")
			}
			if got := nologin(t, driver, dsn, "alice"); got.Valid {
				t.Fatalf("refused hold wrote %q", got.String)
			}
		})
	}
}
