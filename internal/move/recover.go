package move

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/fsutil"
)

// holdOf returns the hold a journal was made with: a move is undone or
// released the way it was held, even if the config changed since.
func (e *Engine) holdOf(p Plan) (delivery.Hold, error) {
	if e.Hold != nil && e.Hold.Kind() == p.Hold {
		return e.Hold, nil
	}
	if e.HoldKinds != nil {
		if h, err := e.HoldKinds(p.Hold); err == nil {
			return h, nil
		}
	}
	return nil, fmt.Errorf("move of %s was held with %q, which this config cannot release", p.User, p.Hold)
}

// Recover finishes or undoes every unfinished move in the journal folder:
// moves that had not switched are undone, the others finished. Moves whose
// user is locked by a live process are left alone. It returns one result
// per journal it looked at.
func (e *Engine) Recover(ctx context.Context) ([]Result, error) {
	js, errs := listJournals(e.JournalDir)
	var out []Result
	for _, j := range js {
		if j.Terminal() {
			continue
		}
		out = append(out, e.recoverOne(ctx, j))
	}
	return out, errors.Join(errs...)
}

func (e *Engine) recoverOne(ctx context.Context, j *Journal) Result {
	p := j.Plan
	res := Result{User: p.User, From: p.From, To: p.To, Journal: j.Path}
	defer j.Close()
	lock, err := e.lockUser(p.User)
	if errors.Is(err, fsutil.ErrLocked) {
		res.Outcome, res.Reason, res.Err = OutcomeInFlight, ReasonInProgress, err
		return res
	}
	if err != nil {
		res.Outcome, res.Reason, res.Err = OutcomeStuck, ReasonError, err
		return res
	}
	defer lock.Unlock()
	// Read again under the lock: the mover may have finished meanwhile.
	if fresh, err := readJournal(j.Path); err == nil {
		*j = *fresh
	} else if errors.Is(err, fs.ErrNotExist) {
		res.Outcome = "gone"
		return res
	}
	if j.Terminal() {
		res.Outcome = "finished"
		return res
	}
	src, err1 := e.Host(p.From)
	dst, err2 := e.Host(p.To)
	hold, err3 := e.holdOf(p)
	if err := errors.Join(err1, err2, err3); err != nil {
		res.Outcome, res.Reason, res.Err = OutcomeStuck, ReasonError, err
		return res
	}
	_ = hold // checked here so a move is not half recovered
	ee := e

	_, held := j.Has(StepHold)
	undo := func(reason string, cause error) Result {
		released, err := ee.undo(ctx, j, src, dst, reason, cause)
		if err != nil {
			res.Outcome, res.Reason, res.Err = OutcomeStuck, reason, err
			return res
		}
		res.Outcome, res.Reason, res.Err = OutcomeFailed, reason, cause
		res.Held = heldFor(j, released)
		ee.emit(res, RecUndone, "undone", reason, cause)
		return res
	}
	forward := func() Result {
		released, err := ee.finish(ctx, j, src)
		if err != nil {
			res.Outcome, res.Reason, res.Err = OutcomeStuck, ReasonError, err
			return res
		}
		res.Outcome = OutcomeMoved
		if held {
			res.Held = heldFor(j, released)
			ee.emitHeld(res, res.Held)
		}
		return res
	}

	switch last := j.Last().Step; last {
	case StepCheck:
		// Nothing was changed yet.
		j.Append(Record{Step: RecRefused, Reason: ReasonInterrupted, Note: "interrupted during the check"})
		j.archive()
		res.Outcome, res.Reason = OutcomeRefused, ReasonInterrupted
		return res
	case StepPreCopy, StepHold, StepSettle, StepCopy, StepVerify, StepCommit:
		return undo(ReasonInterrupted, fmt.Errorf("interrupted at %s", last))
	case RecUndo:
		r := j.Last()
		return undo(r.Reason, errors.New(r.Note))
	case StepSwitch:
		cur, err := e.Directory.Lookup(ctx, p.User)
		if err != nil {
			res.Outcome, res.Reason, res.Err = OutcomeStuck, ReasonError, fmt.Errorf("cannot tell whether the switch happened: %w", err)
			return res
		}
		switch cur.Home {
		case p.NewHome:
			return forward()
		case p.OldHome:
			// Committed and verified, not switched: go on.
			if _, err := dst.Lstat(ctx, p.NewHome); err != nil {
				return undo(ReasonInterrupted, fmt.Errorf("new home %s is missing before the switch: %w", p.NewHome, err))
			}
			if err := e.Directory.Switch(ctx, p.User, p.OldHome, p.NewHome); err != nil {
				return undo(ReasonDirectoryChanged, err)
			}
			e.afterSwitch(ctx, res)
			return forward()
		default:
			return undo(ReasonDirectoryChanged, fmt.Errorf("the directory now says %s, neither %s nor %s", cur.Home, p.OldHome, p.NewHome))
		}
	case StepStub, StepRelease:
		return forward()
	}
	res.Outcome, res.Reason, res.Err = OutcomeStuck, ReasonError, fmt.Errorf("journal %s ends with %q, which recover does not know", j.Path, j.Last().Step)
	return res
}
