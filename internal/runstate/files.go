package runstate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
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
	rows, err := ReadTSV(path, RawColumns)
	if rows == nil && err != nil {
		return nil, err
	}
	bad := []error{err}
	users := make([]cluster.User, 0, len(rows))
	for _, r := range rows {
		f := r.Fields
		u := cluster.User{Name: f[0], Host: f[1], Pool: f[2], Home: f[3], Status: f[9]}
		var e error
		var errs []error
		if e = cluster.CheckUser(u.Name); e != nil {
			errs = append(errs, lineErr(path, r, "%v", e))
		}
		if u.ConnectS, e = parseInt(path, r, "connect_s", f[4]); e != nil {
			errs = append(errs, e)
		}
		if u.Sessions, e = parseInt(path, r, "sessions", f[5]); e != nil {
			errs = append(errs, e)
		}
		if f[6] != "" {
			if u.LastLogin, e = time.Parse(time.RFC3339, f[6]); e != nil {
				errs = append(errs, lineErr(path, r, "last_login %q is not an RFC 3339 time", f[6]))
			}
		}
		if u.Bytes, e = parseInt(path, r, "bytes", f[7]); e != nil {
			errs = append(errs, e)
		}
		if u.Messages, e = parseInt(path, r, "messages", f[8]); e != nil {
			errs = append(errs, e)
		}
		switch u.Status {
		case cluster.StatusOK, cluster.StatusMissingHome, cluster.StatusUnreadable:
		default:
			errs = append(errs, lineErr(path, r, "status %q: want ok, missing-home or unreadable", u.Status))
		}
		if len(errs) > 0 {
			bad = append(bad, errs[0])
			continue
		}
		users = append(users, u)
	}
	return users, errors.Join(bad...)
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
	rows, err := ReadTSV(path, SortColumns)
	if rows == nil && err != nil {
		return nil, err
	}
	bad := []error{err}
	var out []cluster.Sorted
	for _, r := range rows {
		c, e := cluster.ParseClass(r.Fields[2])
		if e == nil {
			e = cluster.CheckUser(r.Fields[0])
		}
		if e != nil {
			bad = append(bad, lineErr(path, r, "%v", e))
			continue
		}
		out = append(out, cluster.Sorted{User: r.Fields[0], Host: r.Fields[1], Class: c})
	}
	return out, errors.Join(bad...)
}

// WriteSort writes sort.tsv.
func WriteSort(path string, s []cluster.Sorted) error {
	rows := make([][]string, len(s))
	for i, x := range s {
		rows[i] = []string{x.User, x.Host, x.Class.String()}
	}
	return WriteTSV(path, SortColumns, rows)
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
	rows := make([][]string, len(todo))
	for i, t := range todo {
		rows[i] = []string{t.User, t.From, t.To, t.Class.String()}
	}
	return WriteTSV(path, TodoColumns, rows)
}
