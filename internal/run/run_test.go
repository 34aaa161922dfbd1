package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

// fakeMover answers moves from a table of outcomes per user and attempt,
// and records how many moves touched each host at once.
type fakeMover struct {
	mu        sync.Mutex
	answers   map[string][]string // user → reasons per attempt ("" = moved)
	tries     map[string]int
	busy      map[string]int
	maxBusy   map[string]int
	inFlight  int
	maxIn     int
	delay     time.Duration
	held      time.Duration // how long a move holds its user, if it gets that far
	recovered []move.Result // what Recover finishes or undoes
}

func newFake(answers map[string][]string) *fakeMover {
	return &fakeMover{answers: answers, tries: map[string]int{}, busy: map[string]int{}, maxBusy: map[string]int{}, delay: 5 * time.Millisecond}
}

func (f *fakeMover) Recover(context.Context) ([]move.Result, error) { return f.recovered, nil }

func (f *fakeMover) Move(ctx context.Context, req move.Request) move.Result {
	f.mu.Lock()
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	for _, h := range []string{req.From, req.To} {
		f.busy[h]++
		f.maxBusy[h] = max(f.maxBusy[h], f.busy[h])
	}
	n := f.tries[req.User]
	f.tries[req.User]++
	reason := ""
	if as := f.answers[req.User]; n < len(as) {
		reason = as[n]
	}
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	f.inFlight--
	f.busy[req.From]--
	f.busy[req.To]--
	f.mu.Unlock()
	r := move.Result{User: req.User, From: req.From, To: req.To, Outcome: move.OutcomeMoved, Bytes: 10, Held: f.held}
	if reason != "" {
		if reason != move.ReasonBusy { // refused before the hold
			r.Held = 0
		}
		r.Reason = reason
		r.Outcome = move.OutcomeRefused
		if reason == move.ReasonVerifyFailed || reason == move.ReasonCopyFailed {
			r.Outcome = move.OutcomeFailed
		}
		r.Err = fmt.Errorf("%s", reason)
	}
	return r
}

func writeTodo(t *testing.T, dir string, todo []cluster.Todo, extra string) {
	t.Helper()
	if err := runstate.WriteTodo(filepath.Join(dir, runstate.TodoFile), todo); err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		f, _ := os.OpenFile(filepath.Join(dir, runstate.TodoFile), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(extra)
		f.Close()
	}
}

func todoOf(n int, hosts ...string) []cluster.Todo {
	var out []cluster.Todo
	for i := 0; i < n; i++ {
		out = append(out, cluster.Todo{User: fmt.Sprintf("u%02d", i), From: hosts[i%len(hosts)], To: hosts[(i+1)%len(hosts)]})
	}
	return out
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func TestParallelAndPerHostLimits(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(40, "a", "b", "c", "d", "e", "f"), "")
	f := newFake(nil)
	sum, err := Run(context.Background(), f, Options{Dir: dir, Parallel: 3, PerHost: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 40 || sum.Left != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if f.maxIn > 3 {
		t.Errorf("%d moves at once, want at most 3", f.maxIn)
	}
	if f.maxIn < 2 {
		t.Errorf("moves never ran in parallel (max %d)", f.maxIn)
	}
	for h, n := range f.maxBusy {
		if n > 1 {
			t.Errorf("host %s had %d moves at once, want at most 1", h, n)
		}
	}
	for u, n := range f.tries {
		if n != 1 {
			t.Errorf("%s tried %d times", u, n)
		}
	}
}

func TestLoopRetriesRefusalsNotPermanentFailures(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(6, "a", "b"), "")
	f := newFake(map[string][]string{
		"u00": {move.ReasonActive, move.ReasonActive},                                                          // moves in round 3
		"u01": {move.ReasonMissingHome},                                                                        // never again
		"u02": {move.ReasonVerifyFailed},                                                                       // once more, then moves
		"u03": {move.ReasonVerifyFailed, move.ReasonVerifyFailed},                                              // twice: given up
		"u04": {move.ReasonDirectoryChanged},                                                                   // moved by hand: given up
		"u05": {move.ReasonActive, move.ReasonActive, move.ReasonActive, move.ReasonActive, move.ReasonActive}, // outlasts the rounds
	})
	rounds := 0
	sum, err := Run(context.Background(), f, Options{Dir: dir, Loop: time.Minute, MaxRounds: 4,
		Sleep: func(ctx context.Context, d time.Duration) error { rounds++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"u00": 3, "u01": 1, "u02": 2, "u03": 2, "u04": 1, "u05": 4}
	for u, n := range want {
		if f.tries[u] != n {
			t.Errorf("%s tried %d times, want %d", u, f.tries[u], n)
		}
	}
	if sum.Moved != 2 || sum.Left != 4 || sum.Rounds != 4 {
		t.Errorf("summary %+v", sum)
	}
	if sum.Permanent[move.ReasonMissingHome] != 1 || sum.Permanent[move.ReasonVerifyFailed] != 1 || sum.Permanent[move.ReasonDirectoryChanged] != 1 {
		t.Errorf("permanent %v", sum.Permanent)
	}
	if sum.Refused[move.ReasonActive] != 1 {
		t.Errorf("refused %v", sum.Refused)
	}
	left, err := runstate.ReadTodo(filepath.Join(dir, runstate.TodoHostFile("a")))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range left {
		names = append(names, l.User)
	}
	// Hosts alternate a, b: u00 u02 u04 from a; u00 and u02 moved.
	if strings.Join(names, " ") != "u04" {
		t.Errorf("todo.a.tsv = %v", names)
	}

	// A new runner on the same folder reads the log: nothing permanent is
	// tried again, u05 is.
	f2 := newFake(nil)
	sum, err = Run(context.Background(), f2, Options{Dir: dir, Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.tries) != 1 || f2.tries["u05"] != 1 {
		t.Errorf("second runner tried %v", f2.tries)
	}
}

func TestOnlyMyHostsAndBadLines(t *testing.T) {
	dir := t.TempDir()
	extra := "badline\tonly-two\n" +
		"../x\ta\tb\tc1d1\n" +
		"u00\ta\tc\tc0d0\n" + // a second line for u00
		"u99\ta\tb\tc9d9\n"
	writeTodo(t, dir, todoOf(6, "a", "b"), extra)
	f := newFake(nil)
	sum, err := Run(context.Background(), f, Options{Dir: dir, Hosts: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 3 || len(f.tries) != 3 {
		t.Fatalf("moved %d, tried %v", sum.Moved, f.tries)
	}
	for u := range f.tries {
		if u != "u00" && u != "u02" && u != "u04" {
			t.Errorf("runner for a moved %s", u)
		}
	}
	if sum.Bad == nil {
		t.Fatal("bad lines not reported")
	}
	msg := sum.Bad.Error()
	for _, w := range []string{":8: 2 fields", ":9: user", ":10: user u00 is also on line 2", ":11: class"} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in %s", w, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, runstate.TodoHostFile("b"))); err == nil {
		t.Error("runner for a wrote todo.b.tsv")
	}
}

func TestStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(30, "a", "b", "c", "d"), "")
	f := newFake(nil)
	f.delay = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(60 * time.Millisecond); cancel() }()
	sum, err := Run(ctx, f, Options{Dir: dir, Parallel: 2, PerHost: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Stopped || sum.Moved == 0 || sum.Moved >= 30 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Left != 30-sum.Moved {
		t.Fatalf("left %d, moved %d", sum.Left, sum.Moved)
	}
}

// A second runner for a host another runner holds stops before it touches
// anything; todo lines naming hosts the config lacks are named.
func TestOneRunnerPerHost(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(4, "a", "b"), "u90\ta\tzz\tc1d1\n")
	locks, err := lockHosts(dir, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(nil)
	if _, err := Run(context.Background(), f, Options{Dir: dir}); !errors.Is(err, ErrHostTaken) {
		t.Fatalf("second runner: %v", err)
	}
	if len(f.tries) != 0 {
		t.Fatalf("the refused runner moved %v", f.tries)
	}
	sum, err := Run(context.Background(), f, Options{Dir: dir, Hosts: []string{"a"},
		KnownHost: func(h string) bool { return h == "a" || h == "b" }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 2 || sum.Bad == nil || !strings.Contains(sum.Bad.Error(), ":6: host zz is not in the config") {
		t.Fatalf("moved %d, bad %v", sum.Moved, sum.Bad)
	}
	for _, l := range locks {
		l.Unlock()
	}
}

// The summary counts how long users were held by every move that held
// them, moved or undone, in whole milliseconds as the log has them.
func TestSummaryHeld(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(4, "a", "b"), "")
	f := newFake(map[string][]string{"u01": {move.ReasonBusy}, "u02": {move.ReasonActive}})
	f.held = 2500 * time.Microsecond
	// Moves a killed runner left, finished and undone as it starts again.
	f.recovered = []move.Result{
		{User: "x1", Outcome: move.OutcomeMoved, Held: 7911 * time.Millisecond},
		{User: "x2", Outcome: move.OutcomeFailed, Reason: move.ReasonInterrupted, Held: 10326 * time.Millisecond},
		{User: "x3", Outcome: move.OutcomeRefused, Reason: move.ReasonInterrupted},
	}
	sum, err := Run(context.Background(), f, Options{Dir: dir, MaxRounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 2 || sum.HeldMoves != 5 || sum.HeldUndone != 2 || sum.Held != (6+7911+10326)*time.Millisecond || sum.MaxHeld != 10326*time.Millisecond {
		t.Errorf("moved %d, held %d moves (%d undone), %v in all, longest %v; want 2, 5 (2), 18.243s, 10.326s", sum.Moved, sum.HeldMoves, sum.HeldUndone, sum.Held, sum.MaxHeld)
	}
}

// status counts each move that held its user once, from the line that
// ends it (moved, or undone with a hold), whoever wrote it: a runner or a
// recover.
func TestStatusHeld(t *testing.T) {
	dir := t.TempDir()
	writeTodo(t, dir, todoOf(3, "a", "b"), "")
	log, err := runstate.OpenLog(filepath.Join(dir, runstate.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []runstate.Event{
		{User: "u00", Step: string(move.RecMoved), Outcome: "ok", HeldMS: 40},
		{User: "u00", Step: StepResult, Outcome: move.OutcomeMoved, HeldMS: 40},
		{User: "u01", Step: string(move.RecUndone), Outcome: "undone", Reason: move.ReasonBusy, HeldMS: 3300},
		{User: "u01", Step: StepResult, Outcome: move.OutcomeFailed, Reason: move.ReasonBusy, HeldMS: 3300},
		{User: "u02", Step: string(move.RecUndone), Outcome: "undone", Reason: move.ReasonCopyFailed},
		{User: "u02", Step: string(move.RecUndone), Outcome: "undone", Reason: move.ReasonInterrupted, HeldMS: 17000},
		{User: "u02", Step: string(move.RecMoved), Outcome: "ok", HeldMS: 60},
	} {
		if err := log.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	s, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := HeldStats{Count: 4, Total: 40 + 3300 + 17000 + 60, Max: 17000, Median: (60 + 3300) / 2, P95: 17000}
	if s.HeldMS != want {
		t.Errorf("held %+v, want %+v", s.HeldMS, want)
	}
}

// A refusal that waiting cannot cure is not tried again by --loop; one
// that it can is.
func TestPermanentReasons(t *testing.T) {
	for reason, perm := range map[string]bool{
		move.ReasonDestClosed: true, move.ReasonDestDraining: true, move.ReasonNoSpace: true,
		move.ReasonActive: false, move.ReasonBusy: false, move.ReasonInProgress: false,
	} {
		st := &State{Done: map[Key]bool{}, Users: map[Key]*UserState{}}
		k := Key{"u", "a", "b"}
		st.record(k, move.OutcomeRefused, reason)
		if _, got := st.Permanent(k); got != perm {
			t.Errorf("%s: permanent %v, want %v", reason, got, perm)
		}
	}
}
