package runstate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "a\tb", "x\ny\r", `back\slash`, "\\t literal"} {
		u, err := Unescape(Escape(s))
		if err != nil || u != s {
			t.Errorf("round trip %q: %q %v", s, u, err)
		}
	}
	if _, err := Unescape(`bad\q`); err == nil {
		t.Error("unknown escape accepted")
	}
}

func TestRawRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), RawFile)
	in := []cluster.User{
		{Name: "alice", Host: "bp04", Pool: "bp", Home: "/bp04/alice", ConnectS: 3600, Sessions: 4,
			LastLogin: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Bytes: 4096, Messages: 3, Status: "ok"},
		{Name: "bob", Home: "/weird\tpath/bob", Status: "missing-home"},
	}
	if err := WriteRaw(p, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadRaw(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("got %+v", out)
	}
}

func TestReadRawNamesBadLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), RawFile)
	body := strings.Join(RawColumns, "\t") + "\n" +
		"alice\tbp04\tbp\t/bp04/alice\t1\t1\t\t10\t1\tok\n" +
		"bob\tbp04\tbp\t/bp04/bob\tlots\t1\t\t10\t1\tok\n" +
		"short\tline\n" +
		"../x\tbp04\tbp\t/bp04/x\t1\t1\t\t10\t1\tok\n" +
		"carol\tbp04\tbp\t/bp04/carol\t1\t1\t\t10\t1\tgone\n"
	os.WriteFile(p, []byte(body), 0o644)
	out, err := ReadRaw(p)
	if len(out) != 1 || out[0].Name != "alice" {
		t.Fatalf("good rows = %+v", out)
	}
	for _, want := range []string{p + ":3: connect_s", p + ":4: 2 fields", p + ":5: user", p + ":6: status"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	var le *LineError
	if !errors.As(err, &le) {
		t.Error("not a LineError")
	}
}

func TestWrongHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), TodoFile)
	os.WriteFile(p, []byte("user\tfrom\n"), 0o644)
	if _, err := ReadTodo(p); err == nil || !strings.Contains(err.Error(), ":1: header") {
		t.Fatalf("err = %v", err)
	}
}

func TestTodoAndLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, TodoFile)
	todo := []cluster.Todo{{User: "a", From: "h1", To: "h2", Class: cluster.Class{C: 1, D: 2}}}
	if err := WriteTodo(p, todo); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTodo(p)
	if err != nil || len(got) != 1 || got[0].Todo != todo[0] || got[0].Line != 2 {
		t.Fatalf("got %+v %v", got, err)
	}
	lp := filepath.Join(dir, LogFile)
	l, err := OpenLog(lp)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Event{User: "a", Step: "check", Outcome: "ok"})
	l.Close()
	f, _ := os.OpenFile(lp, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"user":"torn`)
	f.Close()
	ev, err := ReadLog(lp)
	if len(ev) != 1 || ev[0].User != "a" || err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("events %+v err %v", ev, err)
	}
}

func FuzzParseTSV(f *testing.F) {
	f.Add("user\tfrom\tto\tclass\na\tb\tc\tc1d1\n")
	f.Add("user\tfrom\tto\tclass\na\\\tb\tc\td\n")
	f.Fuzz(func(t *testing.T, s string) {
		rows, _ := ParseTSV("f", strings.NewReader(s), TodoColumns)
		for _, r := range rows {
			if len(r.Fields) != len(TodoColumns) {
				t.Fatal("row with wrong field count")
			}
		}
	})
}

func TestRememberRun(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	a, b := t.TempDir(), t.TempDir()
	for _, r := range []string{a, b, a} {
		if err := RememberRun(state, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := KnownRuns(state)
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("known = %v, %v", got, err)
	}
	os.RemoveAll(b)
	if got, _ := KnownRuns(state); len(got) != 1 {
		t.Fatalf("a removed run folder is still listed: %v", got)
	}
}
