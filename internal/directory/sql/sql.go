package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	// The drivers: PostgreSQL through pgx, SQLite in pure Go.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/maildist/maildist/internal/directory"
	q "github.com/maildist/maildist/internal/directory/sql/sqlquery"
)

// Queries are a site's SQL, one statement each; see the package doc for
// the placeholders and columns. All empty means DefaultQueries.
type Queries struct {
	List, Lookup, Switch string
	Hold, Unhold         string // both or neither
}

// HoldReason is the reason a held user's login is refused with, the
// value of :reason. A column can hold spaces, so users read words rather
// than passwd-file's directory.HoldReason (which Dovecot would cut at the
// first space there). A marker with directory.HoldReason, as maildist
// wrote before, is still taken for maildist's and cleared by unhold.
const HoldReason = "Mailbox is being moved, try again in a few minutes"

// isReason reports whether s is maildist's hold reason, in either
// wording.
func isReason(s string) bool { return s == HoldReason || s == directory.HoldReason }

// DefaultQueries work on DefaultSchema. The held column is the nologin
// text: it counts as held when it is maildist's reason (see held).
var DefaultQueries = Queries{
	List:   "SELECT username, home, uid, gid, host, nologin AS held FROM users",
	Lookup: "SELECT username, home, uid, gid, host, nologin AS held FROM users WHERE username = :user",
	Switch: "UPDATE users SET home = :new_home, host = COALESCE(:new_host, host) WHERE username = :user AND home = :old_home",
	Hold:   "UPDATE users SET nologin = :reason WHERE username = :user AND nologin IS NULL",
	Unhold: "UPDATE users SET nologin = NULL WHERE username = :user AND nologin = :reason",
}

// DefaultSchema is the table DefaultQueries expect, in SQL that both
// PostgreSQL and SQLite accept. A Dovecot passdb refuses logins where
// nologin is not NULL.
const DefaultSchema = `CREATE TABLE users (
	username TEXT PRIMARY KEY,
	home     TEXT NOT NULL,
	uid      INTEGER,
	gid      INTEGER,
	host     TEXT,
	nologin  TEXT
)`

// Options for Open.
type Options struct {
	Driver  string // "postgres" (or "pgx") or "sqlite"
	DSN     string
	Queries Queries
	// HostOf names the host a home is on, "" when none; it fills
	// :old_host and :new_host and checks a host column. Nil: always "".
	HostOf func(home string) string
	// SwitchDelay is added to the time of a switch to make :delay_until.
	SwitchDelay time.Duration
	// MaxConns bounds the pool; 0 means 4.
	MaxConns int
}

// DB is an SQL directory: one connection pool, used by every call.
type DB struct {
	db     *stdsql.DB
	name   string // "postgres directory", for messages
	style  q.Style
	list   stmt
	lookup stmt
	swap   stmt
	hold   stmt // zero without hold markers
	unhold stmt
	hostOf func(string) string
	delay  time.Duration
	now    func() time.Time
	// hook, in tests, is called at each step of a write ("exec",
	// "commit", "committed"); an error it returns is taken as the step's.
	hook       func(step string) error
	driverName string // database/sql's name of the driver
}

// stmt is a parsed query and its text for the driver.
type stmt struct {
	q   *q.Query
	sql string
}

var (
	_ directory.Directory = (*DB)(nil)
	_ directory.Marker    = (*DB)(nil)
)

// drivers maps the config's driver names to database/sql's.
var drivers = map[string]string{"postgres": "pgx", "pgx": "pgx", "postgresql": "pgx", "sqlite": "sqlite"}

// Open opens the directory and checks that the database answers. It does
// not run the site's queries: a wrong column shows at the first List.
func Open(ctx context.Context, opt Options) (*DB, error) {
	d, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	if err := d.connect(ctx, opt); err != nil {
		return nil, err
	}
	return d, nil
}

// prepare checks the options and parses the queries, touching nothing.
func prepare(opt Options) (*DB, error) {
	drv, ok := drivers[opt.Driver]
	if !ok {
		return nil, fmt.Errorf("sql directory: driver %q: want postgres or sqlite", opt.Driver)
	}
	d := &DB{name: opt.Driver + " directory", driverName: drv, hostOf: opt.HostOf, delay: opt.SwitchDelay, now: time.Now}
	if drv == "sqlite" {
		d.style = q.Question
	}
	qs := opt.Queries
	if qs == (Queries{}) {
		qs = DefaultQueries
	}
	var errs []error
	parse := func(kind, text string, into *stmt) {
		if text == "" {
			return
		}
		pq, err := q.Parse(kind, text)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*into = stmt{q: pq, sql: pq.SQL(d.style)}
	}
	for _, k := range []struct {
		kind, text string
		into       *stmt
	}{{"list", qs.List, &d.list}, {"lookup", qs.Lookup, &d.lookup}, {"switch", qs.Switch, &d.swap},
		{"hold", qs.Hold, &d.hold}, {"unhold", qs.Unhold, &d.unhold}} {
		if k.text == "" && k.kind != "hold" && k.kind != "unhold" {
			errs = append(errs, fmt.Errorf("%s query is missing: give list, lookup and switch, or none for the default schema", k.kind))
		}
		parse(k.kind, k.text, k.into)
	}
	if (qs.Hold == "") != (qs.Unhold == "") {
		errs = append(errs, errors.New("give both hold and unhold queries, or neither"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sql directory: %w", errors.Join(errs...))
	}
	return d, nil
}

func (d *DB) connect(ctx context.Context, opt Options) error {
	dsn := opt.DSN
	if strings.TrimSpace(dsn) == "" {
		return fmt.Errorf("%s: no dsn", d.name)
	}
	if d.driverName == "sqlite" {
		var err error
		if dsn, err = sqliteDSN(dsn); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	db, err := stdsql.Open(d.driverName, dsn)
	if err != nil {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	n := opt.MaxConns
	if n <= 0 {
		n = 4
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return fmt.Errorf("%s: connect: %w", d.name, err)
	}
	d.db = db
	return nil
}

// sqliteDSN checks that the database file exists (SQLite would make an
// empty one) and asks for a busy timeout and immediate write
// transactions unless the DSN says otherwise: other processes (Dovecot,
// another runner) use the file too, and two writers that both start
// reading and then want to write would deadlock.
func sqliteDSN(dsn string) (string, error) {
	file, query, _ := strings.Cut(dsn, "?")
	file = strings.TrimPrefix(file, "file:")
	if file != ":memory:" && !strings.Contains(query, "mode=memory") {
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("database file: %w", err)
		}
	}
	var add []string
	if !strings.Contains(query, "_busy_timeout=") && !strings.Contains(query, "_timeout=") && !strings.Contains(query, "busy_timeout") {
		add = append(add, "_busy_timeout=10000")
	}
	if !strings.Contains(query, "_txlock=") {
		add = append(add, "_txlock=immediate")
	}
	if len(add) == 0 {
		return dsn, nil
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(add, "&"), nil
}

// Close closes the pool.
func (d *DB) Close() error { return d.db.Close() }

// List runs the list query. Rows it cannot take are reported as *RowError
// in err, joined, and left out; a host column that disagrees with the home
// is reported as *HostMismatch, and the entry is kept (the home decides).
// Both are also a *directory.LineError (errors.As), the bad entry callers
// go on past. User names are returned as they are, for the caller to
// check like any other (cluster.CheckUser).
func (d *DB) List(ctx context.Context) ([]directory.Entry, error) {
	var out []directory.Entry
	var bad []error
	err := d.retry(ctx, "list", func() error {
		out, bad = nil, nil
		return d.query(ctx, d.list, map[string]any{q.Reason: HoldReason}, func(row int, e directory.Entry, host string, err error) {
			if err != nil {
				bad = append(bad, err)
				return
			}
			if m := d.mismatch(row, e, host); m != nil {
				bad = append(bad, m)
			}
			out = append(out, e)
		})
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(bad...)
}

// Lookup runs the lookup query for one user. A row of that user it
// cannot take is an error (not directory.ErrNotFound); a host column that
// disagrees with the home is not checked (the home decides).
func (d *DB) Lookup(ctx context.Context, user string) (directory.Entry, error) {
	var found []directory.Entry
	var bad error
	err := d.retry(ctx, "lookup "+user, func() error {
		found, bad = nil, nil
		return d.query(ctx, d.lookup, map[string]any{q.User: user, q.Reason: HoldReason}, func(row int, e directory.Entry, host string, err error) {
			if err != nil {
				bad = err
				return
			}
			found = append(found, e)
		})
	})
	switch {
	case err != nil:
		return directory.Entry{}, err
	case bad != nil:
		// A row for this user that cannot be read must not look like
		// "no such user".
		return directory.Entry{}, fmt.Errorf("%s: lookup %q: %w", d.name, user, bad)
	case len(found) == 0:
		return directory.Entry{}, fmt.Errorf("%s: user %q: %w", d.name, user, directory.ErrNotFound)
	case len(found) > 1:
		return directory.Entry{}, fmt.Errorf("%s: user %q: lookup gave %d rows: %w", d.name, user, len(found), directory.ErrDuplicate)
	case found[0].User != user:
		return directory.Entry{}, fmt.Errorf("%s: lookup %q gave user %q: the lookup query must compare the user name exactly", d.name, user, found[0].User)
	}
	return found[0], nil
}

// Switch sets the user's home from oldHome to newHome in one transaction,
// only if the row still holds oldHome.
func (d *DB) Switch(ctx context.Context, user, oldHome, newHome string) error {
	if newHome == "" || !path.IsAbs(newHome) {
		return fmt.Errorf("switch %s: home %q is not an absolute path", user, newHome)
	}
	vals := map[string]any{
		q.User: user, q.OldHome: oldHome, q.NewHome: newHome,
		q.OldHost: d.host(oldHome), q.NewHost: d.host(newHome),
		q.DelayUntil: d.now().Add(d.delay).Unix(),
	}
	var n int64
	unsure := false // a commit failed: it may have happened
	err := d.retry(ctx, "switch "+user, func() error {
		var err error
		n, err = d.write(ctx, d.swap, vals)
		if errors.Is(err, errCommitUnsure) {
			unsure = true
		}
		return err
	})
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	// No row changed: tell "no such user" from "someone changed it".
	e, err := d.Lookup(ctx, user)
	switch {
	case err != nil:
		return fmt.Errorf("switch %s: %w", user, err)
	case e.Home == newHome && (unsure || oldHome == newHome):
		// The first try did commit before its connection went; or the
		// database counts only rows whose values changed.
		return nil
	case e.Home == oldHome:
		return fmt.Errorf("switch %s: the switch query changed no row although the home is still %s (does it compare more than the home?): %w", user, oldHome, directory.ErrChanged)
	}
	return fmt.Errorf("switch %s: home is %s, not %s: %w", user, e.Home, oldHome, directory.ErrChanged)
}

// SetHold runs the hold query with :reason = HoldReason. reason must be
// maildist's (directory.HoldReason, which passwd-file needs, or
// HoldReason): a reason of another text could not be told from the
// site's own nologin, nor cleared by unhold. Without hold queries it does
// nothing.
func (d *DB) SetHold(ctx context.Context, user, reason string) error {
	if d.hold.q == nil {
		return nil
	}
	if !isReason(reason) {
		return fmt.Errorf("hold %s: reason %q: the sql directory holds only with maildist's reason %q", user, reason, HoldReason)
	}
	// First make sure the user is there: a hold query that inserts into a
	// table of its own would happily mark a user who does not exist.
	if _, err := d.Lookup(ctx, user); err != nil {
		return fmt.Errorf("hold %s: %w", user, err)
	}
	return d.retry(ctx, "hold "+user, func() error {
		_, err := d.write(ctx, d.hold, map[string]any{q.User: user, q.Reason: HoldReason})
		return err
	})
}

// ClearHold runs the unhold query with :reason = HoldReason and, if that
// changed no row, once more with directory.HoldReason: a user held by an
// older maildist, with passwd-file's wording, is released too. Without
// hold queries it does nothing.
func (d *DB) ClearHold(ctx context.Context, user string) error {
	if d.unhold.q == nil {
		return nil
	}
	var n int64
	var err error
	for _, reason := range []string{HoldReason, directory.HoldReason} {
		err = d.retry(ctx, "unhold "+user, func() error {
			var err error
			n, err = d.write(ctx, d.unhold, map[string]any{q.User: user, q.Reason: reason})
			return err
		})
		if err != nil || n > 0 {
			break
		}
	}
	if err == nil && n == 0 {
		if _, lerr := d.Lookup(ctx, user); errors.Is(lerr, directory.ErrNotFound) {
			return fmt.Errorf("unhold %s: %w", user, lerr)
		}
	}
	return err
}

func (d *DB) host(home string) any {
	if d.hostOf == nil {
		return nil
	}
	if h := d.hostOf(home); h != "" {
		return h
	}
	return nil
}

func (d *DB) mismatch(row int, e directory.Entry, host string) error {
	if host == "" || d.hostOf == nil {
		return nil
	}
	if want := d.hostOf(e.Home); want != "" && want != host {
		return &HostMismatch{Row: row, User: e.User, Home: e.Home, Host: host, HomeHost: want}
	}
	return nil
}

// errCommitUnsure marks a commit that failed in a way that leaves open
// whether it happened.
var errCommitUnsure = errors.New("the commit may or may not have happened")

// write runs one statement in a transaction and commits it only if it
// changed exactly one row. It returns the number of rows changed.
func (d *DB) write(ctx context.Context, s stmt, vals map[string]any) (int64, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() // after Commit, a no-op
	if err := d.step("exec"); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, s.sql, s.q.Args(vals)...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n > 1 {
		return n, &TooManyRows{Kind: s.q.Kind, User: fmt.Sprint(vals[q.User]), N: n}
	}
	if n == 0 {
		return 0, nil
	}
	if err := d.step("commit"); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%w: %w", errCommitUnsure, err)
	}
	if err := d.step("committed"); err != nil {
		return 0, fmt.Errorf("%w: %w", errCommitUnsure, err)
	}
	return n, nil
}

func (d *DB) step(name string) error {
	if d.hook == nil {
		return nil
	}
	return d.hook(name)
}

// TooManyRows is a write query that would have changed more than one row;
// it was rolled back.
type TooManyRows struct {
	Kind string
	User string
	N    int64
}

func (e *TooManyRows) Error() string {
	return fmt.Sprintf("%s %s: the %s query changed %d rows, rolled back: it must change at most one (check its WHERE clause)", e.Kind, e.User, e.Kind, e.N)
}

// RowError is a row of the list or lookup query that cannot be used.
// errors.As also finds it as a *directory.LineError.
type RowError struct {
	Kind string // list or lookup
	Row  int    // from 1, in the order the query returned them
	User string // "" if unknown
	Msg  string
}

func (e *RowError) Error() string {
	if e.User != "" {
		return fmt.Sprintf("%s row %d (user %q): %s", e.Kind, e.Row, e.User, e.Msg)
	}
	return fmt.Sprintf("%s row %d: %s", e.Kind, e.Row, e.Msg)
}

// As makes the row a *directory.LineError: the bad entry of a directory,
// which callers of List report and go on past.
func (e *RowError) As(target any) bool { return asLine(target, e.Kind, e.Row, e.User, e.Msg) }

// asLine sets target, if it is a **directory.LineError, to the row of a
// query's result: File is "list query" (or "lookup query"), Line the row.
func asLine(target any, kind string, row int, user, msg string) bool {
	le, ok := target.(**directory.LineError)
	if !ok {
		return false
	}
	if user != "" {
		msg = fmt.Sprintf("user %q: %s", user, msg)
	}
	*le = &directory.LineError{File: kind + " query", Line: row, Msg: msg}
	return true
}

// HostMismatch is a row whose host column names another host than the
// one its home is on. A Dovecot proxy routing by that column would send
// the user to the wrong backend. The entry itself is good (the home
// decides); errors.As also finds it as a *directory.LineError, so that
// callers report it with the bad rows and go on.
type HostMismatch struct {
	Row            int
	User, Home     string
	Host, HomeHost string
}

func (e *HostMismatch) Error() string {
	return fmt.Sprintf("list row %d (user %q): %s", e.Row, e.User, e.msg())
}

func (e *HostMismatch) msg() string {
	return fmt.Sprintf("host column says %s, but home %s is on %s", e.Host, e.Home, e.HomeHost)
}

// As makes the mismatch a *directory.LineError (see RowError.As).
func (e *HostMismatch) As(target any) bool { return asLine(target, "list", e.Row, e.User, e.msg()) }
