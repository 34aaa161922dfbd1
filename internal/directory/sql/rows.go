package sql

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/maildist/maildist/internal/directory"
)

// Columns of the list and lookup queries, by name; the order is free.
const (
	colUser = iota
	colHome
	colUID
	colGID
	colHost
	colHeld
	numCols
)

var columnNames = map[string]int{
	"user": colUser, "username": colUser,
	"home": colHome,
	"uid":  colUID, "gid": colGID,
	"host": colHost,
	"held": colHeld,
}

// rowFunc is told of each row: the entry and its host column, or why the
// row cannot be used.
type rowFunc func(row int, e directory.Entry, host string, err error)

// query runs a list or lookup query and hands each row to f.
func (d *DB) query(ctx context.Context, s stmt, vals map[string]any, f rowFunc) error {
	rows, err := d.db.QueryContext(ctx, s.sql, s.q.Args(vals)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return err
	}
	// where[c] is the index in the row of column c, -1 if absent.
	var where [numCols]int
	for i := range where {
		where[i] = -1
	}
	for i, n := range names {
		c, ok := columnNames[strings.ToLower(n)]
		if !ok {
			return fmt.Errorf("%s query returns a column %q; it may return user (or username), home, uid, gid, host and held", s.q.Kind, n)
		}
		if where[c] >= 0 {
			return fmt.Errorf("%s query returns %q and %q: the same column twice", s.q.Kind, names[where[c]], n)
		}
		where[c] = i
	}
	if where[colUser] < 0 || where[colHome] < 0 {
		return fmt.Errorf("%s query must return the columns user (or username) and home; it returns %s", s.q.Kind, strings.Join(names, ", "))
	}
	// Every value is read as text and checked here, so that one bad row
	// is reported with its user and does not stop the others. RawBytes
	// spare a string for each value: only the kept ones are copied. (They
	// make NULL and '' the same, which is how every column takes them.)
	raw := make([]stdsql.RawBytes, len(names))
	dest := make([]any, len(names))
	for i := range dest {
		dest[i] = &raw[i]
	}
	get := func(c int) []byte {
		if where[c] < 0 {
			return nil
		}
		return raw[where[c]]
	}
	row := 0
	for rows.Next() {
		row++
		// A Scan that fails stops at the failing column and leaves the
		// later ones as they were: clear them, so that the error names
		// this row's user or none, never the last row's.
		clear(raw)
		if err := rows.Scan(dest...); err != nil {
			f(row, directory.Entry{}, "", &RowError{Kind: s.q.Kind, Row: row, User: string(get(colUser)), Msg: err.Error()})
			continue
		}
		e, err := entryOf(get)
		if err != nil {
			f(row, e, "", &RowError{Kind: s.q.Kind, Row: row, User: e.User, Msg: err.Error()})
			continue
		}
		f(row, e, string(get(colHost)), nil)
	}
	return rows.Err()
}

func entryOf(get func(int) []byte) (directory.Entry, error) {
	e := directory.Entry{User: string(get(colUser)), Home: string(get(colHome)), UID: -1, GID: -1}
	if e.User == "" {
		return e, fmt.Errorf("empty user name")
	}
	if e.Home == "" {
		return e, fmt.Errorf("no home (the home column is NULL or empty)")
	}
	if !path.IsAbs(e.Home) {
		return e, fmt.Errorf("home %q is not an absolute path", e.Home)
	}
	var err error
	if e.UID, err = id(get(colUID)); err != nil {
		return e, fmt.Errorf("uid %q is not a number", get(colUID))
	}
	if e.GID, err = id(get(colGID)); err != nil {
		return e, fmt.Errorf("gid %q is not a number", get(colGID))
	}
	e.Held = held(get(colHeld))
	return e, nil
}

// id reads a uid or gid: digits, perhaps with spaces around them (a CHAR
// column); -1 for none.
func id(b []byte) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return -1, nil
	}
	if len(b) > 10 {
		return 0, strconv.ErrRange
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// held reads a held column, which says whether maildist's hold marker
// is set. It may be a boolean (true/false, t/f, yes/no, y/n), a number
// (0 is no), or the text of the marker itself (nologin AS held): either
// wording of maildist's reason (HoldReason, or directory.HoldReason that
// an older maildist wrote) is held; NULL, empty, or any other text (a
// nologin the site set for reasons of its own) is not held by maildist.
func held(v []byte) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	for _, w := range []string{"0", "f", "false", "n", "no"} {
		if bytes.EqualFold(v, []byte(w)) {
			return false
		}
	}
	for _, w := range []string{"t", "true", "y", "yes"} {
		if bytes.EqualFold(v, []byte(w)) {
			return true
		}
	}
	if digits(v) {
		return len(bytes.TrimLeft(v, "0")) > 0
	}
	return isReason(string(v))
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
