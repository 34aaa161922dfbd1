package run

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

// StepResult is the Step of the event a runner appends for each move's
// outcome.
const StepResult = "result"

// UserState is what earlier rounds did with one user's move.
type UserState struct {
	Attempts int            // moves tried (results seen)
	Reasons  map[string]int // refusals and failures by reason
	Last     string         // the reason of the last refusal or failure
	Outcome  string         // the last outcome
}

// Key identifies one todo line: a user moved from one host to another.
type Key struct{ User, From, To string }

// State is what a run folder says has happened.
type State struct {
	Done  map[Key]bool       // moved, by the journals
	Users map[Key]*UserState // results, by log.jsonl
}

// LoadState reads the run's journals and log.
func LoadState(runDir string) (*State, error) {
	st := &State{Done: map[Key]bool{}, Users: map[Key]*UserState{}}
	plans, err := move.Completed(filepath.Join(runDir, "journal"))
	if err != nil {
		return nil, err
	}
	for _, p := range plans {
		st.Done[Key{p.User, p.From, p.To}] = true
	}
	evs, err := runstate.ReadLog(filepath.Join(runDir, runstate.LogFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		var le *runstate.LineError
		if !errors.As(err, &le) {
			return nil, err
		}
		// A torn last line after a crash: the events before it stand.
	}
	for _, e := range evs {
		if e.Step != StepResult {
			continue
		}
		k := Key{e.User, e.From, e.To}
		st.record(k, e.Outcome, e.Reason)
		if e.Outcome == move.OutcomeMoved {
			// The journal said so first; this covers journals an operator
			// cleared away.
			st.Done[k] = true
		}
	}
	return st, nil
}

func (st *State) record(k Key, outcome, reason string) {
	u := st.Users[k]
	if u == nil {
		u = &UserState{Reasons: map[string]int{}}
		st.Users[k] = u
	}
	u.Attempts++
	u.Outcome = outcome
	if outcome != move.OutcomeMoved {
		u.Reasons[reason]++
		u.Last = reason
	}
}

// Permanent reports whether a move that ended so should not be tried
// again: the reason will not go away by waiting.
func (st *State) Permanent(k Key) (string, bool) {
	u := st.Users[k]
	if u == nil || u.Outcome == move.OutcomeMoved {
		return "", false
	}
	switch u.Last {
	case move.ReasonMissingHome, move.ReasonDestExists, move.ReasonDirectoryChanged,
		move.ReasonBadUser, move.ReasonUnknownUser, move.ReasonUnknownHost,
		move.ReasonSameHost, move.ReasonDestDraining, move.ReasonDestClosed, move.ReasonUnsafeHold, move.ReasonNoSpace:
		return u.Last, true
	case move.ReasonVerifyFailed, move.ReasonCopyFailed:
		if u.Reasons[u.Last] >= 2 {
			return u.Last, true
		}
	}
	return "", false
}
