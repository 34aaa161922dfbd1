package sql

import (
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
	// is reported with its user and does not stop the others.
	vals2 := make([]stdsql.NullString, len(names))
	dest := make([]any, len(names))
	for i := range dest {
		dest[i] = &vals2[i]
	}
	get := func(c int) stdsql.NullString {
		if where[c] < 0 {
			return stdsql.NullString{}
		}
		return vals2[where[c]]
	}
	row := 0
	for rows.Next() {
		row++
		for i := range vals2 {
			vals2[i] = stdsql.NullString{}
		}
		if err := rows.Scan(dest...); err != nil {
			f(row, directory.Entry{}, "", &RowError{Kind: s.q.Kind, Row: row, User: get(colUser).String, Msg: err.Error()})
			continue
		}
		e, err := entryOf(get)
		if err != nil {
			f(row, e, "", &RowError{Kind: s.q.Kind, Row: row, User: e.User, Msg: err.Error()})
			continue
		}
		f(row, e, get(colHost).String, nil)
	}
	return rows.Err()
}

func entryOf(get func(int) stdsql.NullString) (directory.Entry, error) {
	e := directory.Entry{User: get(colUser).String, Home: get(colHome).String, UID: -1, GID: -1}
	if e.User == "" {
		return e, fmt.Errorf("empty user name")
	}
	if !get(colHome).Valid || e.Home == "" {
		return e, fmt.Errorf("no home")
	}
	if !path.IsAbs(e.Home) {
		return e, fmt.Errorf("home %q is not an absolute path", e.Home)
	}
	for _, id := range []struct {
		col  int
		into *int
		name string
	}{{colUID, &e.UID, "uid"}, {colGID, &e.GID, "gid"}} {
		v := get(id.col)
		if !v.Valid || v.String == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v.String))
		if err != nil || n < 0 {
			return e, fmt.Errorf("%s %q is not a number", id.name, v.String)
		}
		*id.into = n
	}
	held, err := yes(get(colHeld))
	if err != nil {
		return e, err
	}
	e.Held = held
	return e, nil
}

// yes reads a held column: a boolean, 1/0, or Y/N; NULL is no.
func yes(v stdsql.NullString) (bool, error) {
	if !v.Valid {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v.String)) {
	case "", "0", "f", "false", "n", "no":
		return false, nil
	case "1", "t", "true", "y", "yes":
		return true, nil
	}
	return false, fmt.Errorf("held %q is not yes or no (want a boolean, 1/0 or Y/N)", v.String)
}
