package runstate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

// Column headers of the run files.
var (
	RawColumns   = []string{"user", "host", "pool", "home", "connect_s", "sessions", "last_login", "bytes", "messages", "status"}
	MovesColumns = []string{"class", "from", "to", "count"}
	SortColumns  = []string{"user", "host", "class"}
	TodoColumns  = []string{"user", "from", "to", "class"}
)

// Names of the files in a run folder.
const (
	RawFile   = "raw.tsv"
	MovesFile = "moves.tsv"
	SortFile  = "sort.tsv"
	TodoFile  = "todo.tsv"
	LogFile   = "log.jsonl"
	DoneFile  = "done.tsv"
)

// TodoHostFile is the name of the file holding the moves left from host.
func TodoHostFile(host string) string { return "todo." + host + ".tsv" }

// Path joins a run folder and a file name.
func Path(run, name string) string { return filepath.Join(run, name) }

func lineErr(file string, r Row, format string, args ...any) error {
	return &LineError{File: file, Line: r.Line, Msg: fmt.Sprintf(format, args...)}
}

func parseInt(file string, r Row, col string, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, lineErr(file, r, "%s %q is not a count", col, s)
	}
	return n, nil
}

// ReadRaw reads raw.tsv. Good rows come back with bad lines joined in err
// (see ReadTSV).
func ReadRaw(path string) ([]cluster.User, error) {
	data, err := readAll(path)
	if err != nil {
		return nil, err
	}
	users := make([]cluster.User, 0, strings.Count(data, "\n"))
	ok, err := eachRow(path, data, RawColumns, func(line int, f []string) error {
		r := Row{Line: line}
		u := cluster.User{Name: f[0], Host: f[1], Pool: f[2], Home: f[3], Status: f[9]}
		var e error
		var first error
		note := func(e error) {
			if first == nil {
				first = e
			}
		}
		if e = cluster.CheckUser(u.Name); e != nil {
			note(lineErr(path, r, "%v", e))
		}
		if u.ConnectS, e = parseInt(path, r, "connect_s", f[4]); e != nil {
			note(e)
		}
		if u.Sessions, e = parseInt(path, r, "sessions", f[5]); e != nil {
			note(e)
		}
		if f[6] != "" {
			if u.LastLogin, e = parseTime(f[6]); e != nil {
				note(lineErr(path, r, "last_login %q is not an RFC 3339 time", f[6]))
			}
		}
		if u.Bytes, e = parseInt(path, r, "bytes", f[7]); e != nil {
			note(e)
		}
		if u.Messages, e = parseInt(path, r, "messages", f[8]); e != nil {
			note(e)
		}
		switch u.Status {
		case cluster.StatusOK, cluster.StatusMissingHome, cluster.StatusUnreadable:
		default:
			note(lineErr(path, r, "status %q: want ok, missing-home or unreadable", u.Status))
		}
		if first != nil {
			return first
		}
		users = append(users, u)
		return nil
	})
	if !ok {
		return nil, err
	}
	return users, err
}

// WriteRaw writes raw.tsv.
func WriteRaw(path string, users []cluster.User) error {
	rows := make([][]string, len(users))
	for i, u := range users {
		last := ""
		if !u.LastLogin.IsZero() {
			last = u.LastLogin.UTC().Format(time.RFC3339)
		}
		rows[i] = []string{u.Name, u.Host, u.Pool, u.Home,
			strconv.FormatInt(u.ConnectS, 10), strconv.FormatInt(u.Sessions, 10), last,
			strconv.FormatInt(u.Bytes, 10), strconv.FormatInt(u.Messages, 10), u.Status}
	}
	return WriteTSV(path, RawColumns, rows)
}

// ReadMoves reads moves.tsv.
func ReadMoves(path string) ([]cluster.MoveCount, error) {
	rows, err := ReadTSV(path, MovesColumns)
	if rows == nil && err != nil {
		return nil, err
	}
	bad := []error{err}
	var out []cluster.MoveCount
	for _, r := range rows {
		c, e := cluster.ParseClass(r.Fields[0])
		if e != nil {
			bad = append(bad, lineErr(path, r, "%v", e))
			continue
		}
		n, e := parseInt(path, r, "count", r.Fields[3])
		if e != nil {
			bad = append(bad, e)
			continue
		}
		out = append(out, cluster.MoveCount{Class: c, From: r.Fields[1], To: r.Fields[2], Count: int(n)})
	}
	return out, errors.Join(bad...)
}

// WriteMoves writes moves.tsv.
func WriteMoves(path string, moves []cluster.MoveCount) error {
	rows := make([][]string, len(moves))
	for i, m := range moves {
		rows[i] = []string{m.Class.String(), m.From, m.To, strconv.Itoa(m.Count)}
	}
	return WriteTSV(path, MovesColumns, rows)
}

// ReadSort reads sort.tsv.
func ReadSort(path string) ([]cluster.Sorted, error) {
	data, err := readAll(path)
	if err != nil {
		return nil, err
	}
	out := make([]cluster.Sorted, 0, strings.Count(data, "\n"))
	ok, err := eachRow(path, data, SortColumns, func(line int, f []string) error {
		c, e := cluster.ParseClass(f[2])
		if e == nil {
			e = cluster.CheckUser(f[0])
		}
		if e != nil {
			return lineErr(path, Row{Line: line}, "%v", e)
		}
		out = append(out, cluster.Sorted{User: f[0], Host: f[1], Class: c})
		return nil
	})
	if !ok {
		return nil, err
	}
	return out, err
}

// WriteSort writes sort.tsv.
func WriteSort(path string, s []cluster.Sorted) error {
	return writeRows(path, SortColumns, len(s), func(i int, row []string) {
		row[0], row[1], row[2] = s[i].User, s[i].Host, className(s[i].Class)
	})
}

// TodoLine is a todo row with the line it came from.
type TodoLine struct {
	cluster.Todo
	Line int
}

// ReadTodo reads todo.tsv or a todo.HOST.tsv.
func ReadTodo(path string) ([]TodoLine, error) {
	rows, err := ReadTSV(path, TodoColumns)
	if rows == nil && err != nil {
		return nil, err
	}
	bad := []error{err}
	var out []TodoLine
	for _, r := range rows {
		c, e := cluster.ParseClass(r.Fields[3])
		if e == nil {
			e = cluster.CheckUser(r.Fields[0])
		}
		if e == nil && (r.Fields[1] == "" || r.Fields[2] == "") {
			e = errors.New("from and to must name hosts")
		}
		if e != nil {
			bad = append(bad, lineErr(path, r, "%v", e))
			continue
		}
		out = append(out, TodoLine{Todo: cluster.Todo{User: r.Fields[0], From: r.Fields[1], To: r.Fields[2], Class: c}, Line: r.Line})
	}
	return out, errors.Join(bad...)
}

// WriteTodo writes todo.tsv or a todo.HOST.tsv.
func WriteTodo(path string, todo []cluster.Todo) error {
	return writeRows(path, TodoColumns, len(todo), func(i int, row []string) {
		t := &todo[i]
		row[0], row[1], row[2], row[3] = t.User, t.From, t.To, className(t.Class)
	})
}
