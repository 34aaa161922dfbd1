package sql_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/directorytest"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
)

func TestMain(m *testing.M) { os.Exit(sqltest.Main(m)) }

var drivers = []string{"sqlite", "postgres"}

// hostOf says a home's host is its first path element: /bp04/alice is on bp04.
func hostOf(home string) string {
	h, _, _ := strings.Cut(strings.TrimPrefix(home, "/"), "/")
	return h
}

// open makes a database of the driver holding entries in the default
// schema, and opens it.
func open(t *testing.T, driver string, es []directory.Entry, opt dirsql.Options) (*dirsql.DB, string) {
	t.Helper()
	dsn := sqltest.Database(t, driver)
	sqltest.Fill(t, driver, dsn, es, hostOf)
	opt.Driver, opt.DSN = driver, dsn
	if opt.HostOf == nil {
		opt.HostOf = hostOf
	}
	d, err := dirsql.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dsn
}

// interrupt closes the connections under a directory: PostgreSQL ends
// the server sessions; for SQLite, which has no server, the pool's idle
// connections are closed.
func interrupt(driver, dsn string) func(*testing.T, directory.Directory) {
	return func(t *testing.T, d directory.Directory) {
		if driver == "postgres" {
			sqltest.Terminate(t, dsn)
			return
		}
		dirsql.DropIdle(d.(*dirsql.DB))
	}
}

func TestConformance(t *testing.T) {
	for _, driver := range drivers {
		for _, marker := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/marker=%v", driver, marker), func(t *testing.T) {
				var dsns = map[directory.Directory]string{}
				directorytest.RunHarness(t, directorytest.Harness{
					Open: func(t *testing.T, es []directory.Entry) directory.Directory {
						opt := dirsql.Options{}
						if !marker {
							q := dirsql.DefaultQueries
							q.Hold, q.Unhold = "", ""
							opt.Queries = q
						}
						d, dsn := open(t, driver, es, opt)
						dsns[d] = dsn
						return d
					},
					Interrupt: func(t *testing.T, d directory.Directory) {
						interrupt(driver, dsns[d])(t, d)
					},
				})
			})
		}
	}
}

// A site schema of its own: other names, the hold marker in a table of
// its own, uid and gid as text, positional parameters.
func TestSiteSchema(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			directorytest.Run(t, func(t *testing.T, es []directory.Entry) directory.Directory {
				dsn := sqltest.Database(t, driver)
				sqltest.Exec(t, driver, dsn,
					`CREATE TABLE mailbox (login TEXT NOT NULL UNIQUE, maildir TEXT NOT NULL, id_u TEXT, id_g TEXT, backend TEXT, moved_at BIGINT)`,
					`CREATE TABLE held (login TEXT PRIMARY KEY, why TEXT)`)
				for _, e := range es {
					esc := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
					sqltest.Exec(t, driver, dsn, fmt.Sprintf(`INSERT INTO mailbox VALUES (%s, %s, '%d', '%d', %s, NULL)`,
						esc(e.User), esc(e.Home), e.UID, e.GID, esc(hostOf(e.Home))))
				}
				d, err := dirsql.Open(context.Background(), dirsql.Options{
					Driver: driver, DSN: dsn, HostOf: hostOf,
					Queries: dirsql.Queries{
						List: `SELECT m.login AS "user", m.maildir AS home, m.id_u AS uid, m.id_g AS gid, m.backend AS host,
							h.login IS NOT NULL AS held FROM mailbox m LEFT JOIN held h ON h.login = m.login`,
						Lookup: `SELECT m.maildir AS home, m.login AS username, h.why = :reason AS held
							FROM mailbox m LEFT JOIN held h ON h.login = m.login WHERE m.login = :user`,
						Switch: `UPDATE mailbox SET maildir = $3, backend = $5, moved_at = $6 WHERE login = $1 AND maildir = $2`,
						Hold:   `INSERT INTO held (login, why) VALUES (:user, :reason) ON CONFLICT DO NOTHING`,
						Unhold: `DELETE FROM held WHERE login = :user AND why = :reason`,
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				return d
			})
		})
	}
}

// The SQL injection of the issue: the table is still there, and whole.
func TestInjectionThroughUserNames(t *testing.T) {
	const evil = "x'; DROP TABLE users; --"
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			es := append(directorytest.Seed(), directory.Entry{User: evil, Home: "/bp04/evil", UID: 1, GID: 1})
			d, _ := open(t, driver, es, dirsql.Options{})
			ctx := context.Background()
			for _, u := range []string{evil, "x'; DELETE FROM users; --", "' OR 1=1; UPDATE users SET home = '/pwned'; --"} {
				d.Lookup(ctx, u)
				d.Switch(ctx, u, "/bp04/evil", "/bp17/evil")
				d.SetHold(ctx, u, directory.HoldReason)
				d.ClearHold(ctx, u)
			}
			got, err := d.List(ctx)
			if err != nil || len(got) != len(es) {
				t.Fatalf("List: %d entries, %v", len(got), err)
			}
			for _, e := range got {
				if e.Home == "/pwned" {
					t.Fatalf("%s: home %s", e.User, e.Home)
				}
			}
			e, err := d.Lookup(ctx, evil)
			if err != nil || e.Home != "/bp17/evil" {
				t.Fatalf("the user with the odd name: %+v, %v", e, err)
			}
		})
	}
}

// A connection that dies between the update and the commit leaves the
// row as it was, and the one retry makes the switch.
func TestConnectionLostBeforeCommit(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d, dsn := open(t, driver, directorytest.Seed(), dirsql.Options{})
			ctx := context.Background()
			var calls atomic.Int32
			dirsql.SetHook(d, func(step string) error {
				if step != "commit" || calls.Add(1) > 1 {
					return nil
				}
				if driver == "postgres" {
					sqltest.Terminate(t, dsn)
					return nil // the commit itself finds the connection gone
				}
				return fmt.Errorf("lost: %w", errBadConn)
			})
			if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
				t.Fatal(err)
			}
			if calls.Load() != 2 {
				t.Fatalf("commit reached %d times, want 2", calls.Load())
			}
			dirsql.SetHook(d, nil)
			if e, _ := d.Lookup(ctx, "alice"); e.Home != "/bp17/alice" {
				t.Fatalf("home = %q", e.Home)
			}
		})
	}
}

// A commit that went through but whose answer was lost is not taken for
// a change by someone else when the retry finds the new home.
func TestCommitAnswerLost(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d, _ := open(t, driver, directorytest.Seed(), dirsql.Options{})
			ctx := context.Background()
			var calls atomic.Int32
			dirsql.SetHook(d, func(step string) error {
				if step == "committed" && calls.Add(1) == 1 {
					return fmt.Errorf("lost: %w", errBadConn)
				}
				return nil
			})
			if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
				t.Fatal(err)
			}
			// Without the lost answer, the same situation is a change by
			// someone else.
			if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); !errors.Is(err, directory.ErrChanged) {
				t.Fatalf("second switch: %v, want ErrChanged", err)
			}
		})
	}
}

// Losing the connection twice in a row is an error that says so, and
// changes nothing.
func TestConnectionLostTwice(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d, _ := open(t, driver, directorytest.Seed(), dirsql.Options{})
			ctx := context.Background()
			dirsql.SetHook(d, func(step string) error {
				if step == "commit" {
					return fmt.Errorf("lost: %w", errBadConn)
				}
				return nil
			})
			err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice")
			if err == nil || !strings.Contains(err.Error(), "tried again") || errors.Is(err, directory.ErrChanged) {
				t.Fatalf("err = %v", err)
			}
			dirsql.SetHook(d, nil)
			if e, _ := d.Lookup(ctx, "alice"); e.Home != "/bp04/alice" {
				t.Fatalf("home = %q", e.Home)
			}
		})
	}
}

// A switch query that would change more than one row is rolled back.
func TestSwitchOfManyRowsRolledBack(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			q := dirsql.DefaultQueries
			q.Switch = "UPDATE users SET home = :new_home WHERE username = :user OR home LIKE :old_home"
			d, _ := open(t, driver, directorytest.Seed(), dirsql.Options{Queries: q})
			ctx := context.Background()
			err := d.Switch(ctx, "alice", "/bp%", "/bp17/alice")
			var tm *dirsql.TooManyRows
			if !errors.As(err, &tm) || tm.N != int64(len(directorytest.Seed())) {
				t.Fatalf("err = %v", err)
			}
			for _, w := range directorytest.Seed() {
				if e, _ := d.Lookup(ctx, w.User); e.Home != w.Home {
					t.Fatalf("%s home = %q after a rolled back switch", w.User, e.Home)
				}
			}
		})
	}
}

// The host column follows the home, :delay_until is the switch time plus
// the delay, and a row whose host column disagrees with its home is
// reported but kept.
func TestHostAndDelay(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			q := dirsql.DefaultQueries
			q.Switch = "UPDATE users SET home = :new_home, host = :new_host, uid = :delay_until WHERE username = :user AND home = :old_home AND host = :old_host"
			d, dsn := open(t, driver, directorytest.Seed(), dirsql.Options{Queries: q, SwitchDelay: 1 << 40})
			ctx := context.Background()
			if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
				t.Fatal(err)
			}
			e, _ := d.Lookup(ctx, "alice")
			if e.Home != "/bp17/alice" || e.UID < 1<<40/1_000_000_000 {
				t.Fatalf("after switch: %+v", e)
			}
			sqltest.Exec(t, driver, dsn, "UPDATE users SET host = 'bp99' WHERE username = 'bob'")
			es, err := d.List(ctx)
			var hm *dirsql.HostMismatch
			if len(es) != len(directorytest.Seed()) || !errors.As(err, &hm) || hm.User != "bob" || hm.HomeHost != "bp04" {
				t.Fatalf("List = %d entries, %v", len(es), err)
			}
			// The site's query compares the host too; a row whose host is
			// wrong is not switched, and the message says why.
			err = d.Switch(ctx, "bob", "/bp04/bob", "/bp17/bob")
			if !errors.Is(err, directory.ErrChanged) || !strings.Contains(err.Error(), "compare more than the home") {
				t.Fatalf("switch of bob: %v", err)
			}
		})
	}
}

// Bad rows are named and left out; the others are listed.
func TestBadRows(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			d, dsn := open(t, driver, directorytest.Seed(), dirsql.Options{})
			ctx := context.Background()
			sqltest.Exec(t, driver, dsn,
				"INSERT INTO users (username, home) VALUES ('rel', 'bp04/rel')",
				"INSERT INTO users (username, home) VALUES ('', '/bp04/empty')",
				"UPDATE users SET nologin = 'something else' WHERE username = 'bob'")
			want := []string{`(user "rel"): home "bp04/rel" is not an absolute path`, "empty user name"}
			if driver == "sqlite" { // PostgreSQL keeps an INTEGER column integer
				sqltest.Exec(t, driver, dsn, "INSERT INTO users (username, home, uid, gid) VALUES ('textid', '/bp04/textid', 'x1', ' 7 ')")
				want = append(want, `(user "textid"): uid "x1" is not a number`)
			}
			es, err := d.List(ctx)
			if len(es) != len(directorytest.Seed()) {
				t.Fatalf("%d entries", len(es))
			}
			for _, w := range want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("List error %v lacks %q", err, w)
				}
			}
			if _, err := d.Lookup(ctx, "rel"); err == nil || errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Lookup of a bad row: %v", err)
			}
			if e, _ := d.Lookup(ctx, "bob"); e.Held {
				t.Error("the site's own nologin is taken for our hold")
			}
		})
	}
}

func TestColumnsChecked(t *testing.T) {
	for _, tc := range []struct{ name, list, want string }{
		{"unknown column", "SELECT username, home, nologin FROM users", `returns a column "nologin"`},
		{"no home", "SELECT username, uid FROM users", "must return the columns user (or username) and home"},
		{"twice", "SELECT username, username AS user, home FROM users", "the same column twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := dirsql.DefaultQueries
			q.List = tc.list
			d, _ := open(t, "sqlite", directorytest.Seed(), dirsql.Options{Queries: q})
			if _, err := d.List(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opt  dirsql.Options
		want string
	}{
		{"driver", dirsql.Options{Driver: "oracle", DSN: "x"}, `driver "oracle"`},
		{"missing switch", dirsql.Options{Driver: "sqlite", DSN: "x", Queries: dirsql.Queries{List: "SELECT username, home FROM u", Lookup: "SELECT username, home FROM u WHERE username = :user"}}, "switch query is missing"},
		{"hold without unhold", dirsql.Options{Driver: "sqlite", DSN: "x", Queries: func() dirsql.Queries { q := dirsql.DefaultQueries; q.Unhold = ""; return q }()}, "both hold and unhold"},
		{"switch without compare", dirsql.Options{Driver: "sqlite", DSN: "x", Queries: func() dirsql.Queries {
			q := dirsql.DefaultQueries
			q.Switch = "UPDATE users SET home = :new_home WHERE username = :user"
			return q
		}()}, "does not use :old_home"},
		{"no sqlite file", dirsql.Options{Driver: "sqlite", DSN: "/nonexistent/users.db"}, "no such file"},
		{"no server", dirsql.Options{Driver: "postgres", DSN: "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"}, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dirsql.Open(ctx, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// Many moves at once share the pool: the server sees at most MaxConns
// sessions, however many switches run.
func TestOnePool(t *testing.T) {
	es := users(200)
	d, dsn := open(t, "postgres", es, dirsql.Options{MaxConns: 3})
	ctx := context.Background()
	errs := make(chan error, len(es))
	for w := 0; w < 8; w++ {
		go func() {
			for i := w; i < len(es); i += 8 {
				e := es[i]
				if _, err := d.Lookup(ctx, e.User); err != nil {
					errs <- err
					continue
				}
				errs <- d.Switch(ctx, e.User, e.Home, e.Home+".new")
			}
		}()
	}
	for range es {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := sqltest.Terminate(t, dsn); n < 1 || n > 3 {
		t.Fatalf("%d server sessions for one directory, want 1 to 3", n)
	}
}
