package runstate

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

// readRawByRows is ReadRaw as first written, over ReadTSV and time.Parse:
// the reference the fast reader must agree with.
func readRawByRows(path string) ([]cluster.User, error) {
	rows, err := ReadTSV(path, RawColumns)
	if rows == nil && err != nil {
		return nil, err
	}
	bad := []error{err}
	var users []cluster.User
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

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	l := strings.Split(err.Error(), "\n")
	slices.Sort(l)
	return l
}

func checkSameAsRows(t *testing.T, body string) {
	p := filepath.Join(t.TempDir(), RawFile)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, gerr := ReadRaw(p)
	want, werr := readRawByRows(p)
	if len(got) == 0 && len(want) == 0 {
		got, want = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows differ for %q:\n got %+v\nwant %+v", body, got, want)
	}
	if !slices.Equal(errLines(gerr), errLines(werr)) {
		t.Fatalf("errors differ for %q:\n got %v\nwant %v", body, gerr, werr)
	}
}

var rawHeader = strings.Join(RawColumns, "\t") + "\n"

func TestReadRawAgreesWithRows(t *testing.T) {
	for _, body := range []string{
		"",
		"\n",
		"user\thost\n",
		rawHeader,
		rawHeader + "alice\tbp04\tbp\t/bp04/alice\t1\t1\t2026-01-02T03:04:05Z\t10\t1\tok",
		rawHeader + "alice\tbp04\tbp\t/bp04/alice\t1\t1\t2026-01-02T03:04:05Z\t10\t1\tok\r\n# note\n\n",
		rawHeader + "a\\tb\tbp04\tbp\t/x\\\\y\t1\t1\t\t10\t1\tok\n",
		rawHeader + "bad\\q\tbp04\tbp\t/x\t1\t1\t\t10\t1\tok\n",
		rawHeader + "a\tb\tc\td\t1\t1\t2026-02-30T00:00:00Z\t1\t1\tok\n",
		rawHeader + "a\tb\tc\td\t1\t1\t2026-02-28T24:00:00Z\t1\t1\tok\n",
		rawHeader + "a\tb\tc\td\t1\t1\t2026-02-28T23:59:60Z\t1\t1\tok\n",
		rawHeader + "a\tb\tc\td\t1\t1\t2026-02-28T10:00:00+02:00\t1\t1\tok\n",
		rawHeader + "a\tb\tc\td\t-1\tx\t\t1\t1\tgone\n..\tb\tc\td\t1\t1\t\t1\t1\tok\n",
	} {
		checkSameAsRows(t, body)
	}
}

// FuzzReadRaw: the fast reader returns what the row-by-row reader did.
func FuzzReadRaw(f *testing.F) {
	f.Add("alice\tbp04\tbp\t/bp04/alice\t1\t1\t2026-01-02T03:04:05Z\t10\t1\tok\n")
	f.Add("a\\tb\tbp04\tbp\t/x\t1\t1\t\t10\t1\tmissing-home\r\n#c\n\nshort\n")
	f.Add("a\tb\tc\td\t1\t1\t0000-01-01T00:00:00Z\t1\t1\tok\n")
	f.Fuzz(func(t *testing.T, rows string) {
		checkSameAsRows(t, rawHeader+rows)
	})
}

func TestSortAndTodoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := []cluster.Sorted{{User: "alice", Host: "bp04", Class: cluster.Class{C: 1, D: 2}}, {User: "b\tob", Host: "bp05"}}
	if err := WriteSort(filepath.Join(dir, SortFile), s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSort(filepath.Join(dir, SortFile))
	if err == nil || len(got) != 1 || got[0] != s[0] {
		t.Fatalf("sort: %+v, %v (a tab in a user name must be refused by CheckUser)", got, err)
	}
	todo := []cluster.Todo{{User: "alice", From: "bp04", To: "bp05", Class: cluster.Class{C: 4, D: 0}}}
	if err := WriteTodo(filepath.Join(dir, TodoFile), todo); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTodo(filepath.Join(dir, TodoFile))
	if err != nil || len(back) != 1 || back[0].Todo != todo[0] || back[0].Line != 2 {
		t.Fatalf("todo: %+v, %v", back, err)
	}
}
