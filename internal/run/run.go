package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

// Mover is what the runner needs of the move engine.
type Mover interface {
	Move(ctx context.Context, req move.Request) move.Result
	Recover(ctx context.Context) ([]move.Result, error)
}

// Options configure a runner.
type Options struct {
	Dir       string   // the run folder
	Hosts     []string // source hosts this runner takes; empty: every host in the todo
	Parallel  int      // moves at once (default 2)
	PerHost   int      // moves at once touching one host, as source or destination (default 1)
	Loop      time.Duration
	MaxRounds int       // 0: no limit (with Loop) or 1 (without)
	Until     time.Time // start no move after this; zero: no limit
	Force     bool      // skip the live-session check
	Local     bool      // check live sessions on the source host only
	Kick      bool      // end live sessions once the hold has begun

	// KnownHost, if set, says whether a host is in the config: todo lines
	// naming another host are named and skipped.
	KnownHost func(string) bool

	// Progress, if set, is told what happens, from several goroutines.
	Progress Progress
	// Sleep waits between rounds; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Progress hears about a run as it goes.
type Progress interface {
	Round(n int, todo int)
	Start(worker int, t cluster.Todo)
	Finish(worker int, t cluster.Todo, r move.Result)
	Waiting(next time.Time, left int)
}

// Summary is what a runner did, over all its rounds.
type Summary struct {
	Rounds     int
	Planned    int            // todo lines for this runner's hosts
	Moved      int            // moved by this runner
	Already    int            // moved before this runner started
	Refused    map[string]int // by reason, of the last attempt of users still left
	Failed     map[string]int // by reason, of the last attempt of users still left
	Permanent  map[string]int // left for good, by reason
	Left       int            // not moved
	Bytes      int64
	HeldMoves  int           // moves that held their user: moved, or undone after the hold began (recovered ones too)
	HeldUndone int           // of those, the undone
	Held       time.Duration // total time users were held, in those moves
	MaxHeld    time.Duration
	Stuck      []string // moves recover must finish
	Bad        error    // malformed todo lines, named
	Stopped    bool     // stopped by a signal or --until
}

// addHeld counts a move that held its user (moved or undone; Held 0: it
// never held), in whole milliseconds as the log has them.
func (s *Summary) addHeld(r move.Result) {
	d := r.Held
	if d <= 0 {
		return
	}
	d = d.Truncate(time.Millisecond)
	s.HeldMoves++
	if r.Outcome != move.OutcomeMoved {
		s.HeldUndone++
	}
	s.Held += d
	s.MaxHeld = max(s.MaxHeld, d)
}

// Run carries out the run. It returns the summary and an error only for
// what stops it as a whole (an unreadable todo.tsv, a log that cannot be
// written); users that were not moved are in the summary.
func Run(ctx context.Context, m Mover, opt Options) (*Summary, error) {
	if opt.Parallel <= 0 {
		opt.Parallel = 2
	}
	if opt.PerHost <= 0 {
		opt.PerHost = 1
	}
	if opt.MaxRounds == 0 && opt.Loop == 0 {
		opt.MaxRounds = 1
	}
	if opt.Sleep == nil {
		opt.Sleep = sleep
	}
	sum := &Summary{Refused: map[string]int{}, Failed: map[string]int{}, Permanent: map[string]int{}}

	todo, bad := runstate.ReadTodo(filepath.Join(opt.Dir, runstate.TodoFile))
	if todo == nil && bad != nil {
		return nil, bad
	}
	sum.Bad = bad
	mine := map[string]bool{}
	for _, h := range opt.Hosts {
		mine[h] = true
	}
	var lines []cluster.Todo
	seen := map[string]int{}
	var dups []error
	for _, t := range todo {
		if len(mine) > 0 && !mine[t.From] {
			continue
		}
		if opt.KnownHost != nil {
			bad := ""
			for _, h := range []string{t.From, t.To} {
				if !opt.KnownHost(h) {
					bad = h
				}
			}
			if bad != "" {
				dups = append(dups, &runstate.LineError{File: filepath.Join(opt.Dir, runstate.TodoFile), Line: t.Line,
					Msg: fmt.Sprintf("host %s is not in the config", bad)})
				continue
			}
		}
		if prev, ok := seen[t.User]; ok {
			dups = append(dups, &runstate.LineError{File: filepath.Join(opt.Dir, runstate.TodoFile), Line: t.Line,
				Msg: fmt.Sprintf("user %s is also on line %d; moved once, by the first", t.User, prev)})
			continue
		}
		seen[t.User] = t.Line
		lines = append(lines, t.Todo)
	}
	if len(dups) > 0 {
		sum.Bad = errors.Join(sum.Bad, errors.Join(dups...))
	}
	sum.Planned = len(lines)
	hosts := opt.Hosts
	if len(hosts) == 0 {
		hs := map[string]bool{}
		for _, t := range lines {
			hs[t.From] = true
		}
		for h := range hs {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
	}

	// One runner a source host: a second runner for a host already taken
	// stops here, before it touches anything.
	locks, err := lockHosts(opt.Dir, hosts)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, l := range locks {
			l.Unlock()
		}
	}()

	log, err := runstate.OpenLog(filepath.Join(opt.Dir, runstate.LogFile))
	if err != nil {
		return nil, err
	}
	defer log.Close()

	// Moves a crash left half done are finished or undone first. Moves a
	// live runner of other hosts is making are left to it.
	if rs, err := m.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	} else {
		for _, r := range rs {
			if r.Outcome == move.OutcomeStuck {
				sum.Stuck = append(sum.Stuck, r.User)
			}
			sum.addHeld(r)
		}
	}

	st, err := LoadState(opt.Dir)
	if err != nil {
		return nil, err
	}
	for _, t := range lines {
		if st.Done[Key{t.User, t.From, t.To}] {
			sum.Already++
		}
	}

	for round := 1; ; round++ {
		if ctx.Err() != nil {
			sum.Stopped = true
			break
		}
		pending := pendingOf(lines, st)
		if len(pending) == 0 {
			break
		}
		if opt.MaxRounds > 0 && round > opt.MaxRounds {
			break
		}
		if round > 1 {
			next := time.Now().Add(opt.Loop)
			if !opt.Until.IsZero() && next.After(opt.Until) {
				sum.Stopped = true
				break
			}
			if opt.Progress != nil {
				opt.Progress.Waiting(next, len(pending))
			}
			if err := opt.Sleep(ctx, opt.Loop); err != nil {
				sum.Stopped = true
				break
			}
		}
		sum.Rounds = round
		if opt.Progress != nil {
			opt.Progress.Round(round, len(pending))
		}
		if err := runRound(ctx, m, opt, pending, st, log, sum); err != nil {
			return sum, err
		}
		if err := writeLeft(opt.Dir, hosts, lines, st); err != nil {
			return sum, err
		}
		if !opt.Until.IsZero() && time.Now().After(opt.Until) {
			sum.Stopped = true
			break
		}
	}
	if err := writeLeft(opt.Dir, hosts, lines, st); err != nil {
		return sum, err
	}
	for _, t := range lines {
		k := Key{t.User, t.From, t.To}
		if st.Done[k] {
			continue
		}
		sum.Left++
		u := st.Users[k]
		if u == nil {
			continue
		}
		if reason, ok := st.Permanent(k); ok {
			sum.Permanent[reason]++
		}
		switch u.Outcome {
		case move.OutcomeRefused:
			sum.Refused[u.Last]++
		case move.OutcomeFailed, move.OutcomeStuck:
			sum.Failed[u.Last]++
		}
	}
	return sum, nil
}

// pendingOf lists the todo lines still worth trying, in todo order.
func pendingOf(lines []cluster.Todo, st *State) []cluster.Todo {
	var out []cluster.Todo
	for _, t := range lines {
		k := Key{t.User, t.From, t.To}
		if st.Done[k] {
			continue
		}
		if _, perm := st.Permanent(k); perm {
			continue
		}
		out = append(out, t)
	}
	return out
}

// runRound tries every pending move once, with at most opt.Parallel at a
// time and opt.PerHost touching any one host.
func runRound(ctx context.Context, m Mover, opt Options, pending []cluster.Todo, st *State, log *runstate.Log, sum *Summary) error {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	busy := map[string]int{}
	inFlight := 0
	var logErr error
	taken := make([]bool, len(pending))
	left := len(pending)

	// next picks the first waiting move whose hosts have room, or says
	// to wait (-1) or that the round is over (-2).
	next := func() int {
		if ctx.Err() != nil || logErr != nil || (!opt.Until.IsZero() && time.Now().After(opt.Until)) {
			return -2
		}
		if left == 0 {
			return -2
		}
		if inFlight >= opt.Parallel {
			return -1
		}
		for i, t := range pending {
			if !taken[i] && busy[t.From] < opt.PerHost && busy[t.To] < opt.PerHost {
				return i
			}
		}
		return -1
	}

	var wg sync.WaitGroup
	for w := 1; w <= opt.Parallel; w++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			for {
				mu.Lock()
				i := next()
				for i == -1 {
					cond.Wait()
					i = next()
				}
				if i == -2 {
					mu.Unlock()
					cond.Broadcast()
					return
				}
				t := pending[i]
				taken[i] = true
				left--
				inFlight++
				busy[t.From]++
				busy[t.To]++
				mu.Unlock()

				if opt.Progress != nil {
					opt.Progress.Start(worker, t)
				}
				r := m.Move(ctx, move.Request{User: t.User, From: t.From, To: t.To, Force: opt.Force, Local: opt.Local, Kick: opt.Kick})
				if opt.Progress != nil {
					opt.Progress.Finish(worker, t, r)
				}
				ev := runstate.Event{User: t.User, From: t.From, To: t.To, Step: StepResult,
					Outcome: r.Outcome, Reason: r.Reason, Bytes: r.Bytes, HeldMS: r.Held.Milliseconds()}
				if r.Err != nil {
					ev.Detail = r.Err.Error()
				}
				err := log.Append(ev)

				mu.Lock()
				if err != nil && logErr == nil {
					logErr = err
				}
				k := Key{t.User, t.From, t.To}
				st.record(k, r.Outcome, r.Reason)
				sum.addHeld(r)
				switch r.Outcome {
				case move.OutcomeMoved:
					st.Done[k] = true
					sum.Moved++
					sum.Bytes += r.Bytes
				case move.OutcomeStuck:
					sum.Stuck = append(sum.Stuck, t.User)
				}
				inFlight--
				busy[t.From]--
				busy[t.To]--
				mu.Unlock()
				cond.Broadcast()
			}
		}(w)
	}
	wg.Wait()
	if ctx.Err() != nil {
		sum.Stopped = true
	}
	return logErr
}

// writeLeft writes todo.HOST.tsv for each of the runner's hosts: the moves
// from that host not done yet.
func writeLeft(dir string, hosts []string, lines []cluster.Todo, st *State) error {
	left := map[string][]cluster.Todo{}
	for _, t := range lines {
		if !st.Done[Key{t.User, t.From, t.To}] {
			left[t.From] = append(left[t.From], t)
		}
	}
	for _, h := range hosts {
		if err := runstate.WriteTodo(filepath.Join(dir, runstate.TodoHostFile(h)), left[h]); err != nil {
			return err
		}
	}
	return nil
}

// ErrHostTaken is returned when another runner works on one of the hosts.
var ErrHostTaken = errors.New("another runner is working on this host of the run")

// lockHosts takes RUN/locks/host.H.lock for every host, or none.
func lockHosts(dir string, hosts []string) ([]*fsutil.Lock, error) {
	ld := filepath.Join(dir, "locks")
	if err := os.MkdirAll(ld, 0o755); err != nil {
		return nil, err
	}
	var got []*fsutil.Lock
	for _, h := range hosts {
		l, err := fsutil.TryLock(filepath.Join(ld, "host."+h+".lock"))
		if err != nil {
			for _, g := range got {
				g.Unlock()
			}
			if errors.Is(err, fsutil.ErrLocked) {
				return nil, fmt.Errorf("host %s of %s: %w (one runner a source host; give the others --host)", h, dir, ErrHostTaken)
			}
			return nil, err
		}
		got = append(got, l)
	}
	return got, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
