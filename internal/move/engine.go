package move

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/tree"
)

// Reasons a move did not happen. The set is small and fixed so that
// failures can be counted.
const (
	ReasonActive           = "active"            // a live session (or the check could not tell)
	ReasonMissingHome      = "missing-home"      // the home does not exist or is not a folder
	ReasonSpecialFile      = "special-file"      // the home holds a FIFO, socket or device, which no copy takes
	ReasonDestExists       = "dest-exists"       // the destination home exists already
	ReasonNoSpace          = "no-space"          // not enough room on the destination
	ReasonCopyFailed       = "copy-failed"       // the copy failed
	ReasonVerifyFailed     = "verify-failed"     // the copy kept differing from the source
	ReasonDirectoryChanged = "directory-changed" // the entry is not what the move expected
	ReasonBusy             = "busy"              // files stayed open under the held home
	ReasonBadUser          = "bad-user"          // not a plain user name
	ReasonUnknownUser      = "unknown-user"      // not in the directory
	ReasonUnknownHost      = "unknown-host"      // no such host, or the home is on none
	ReasonSameHost         = "same-host"         // the user is on that host already
	ReasonDestDraining     = "dest-draining"     // the destination is being emptied
	ReasonDestClosed       = "dest-closed"       // the destination takes no new users (accept_new = false)
	ReasonInProgress       = "in-progress"       // another move of the user is under way or unfinished
	ReasonHoldFailed       = "hold-failed"       // delivery could not be held
	ReasonUnsafeHold       = "unsafe-hold"       // the hold would not hold
	ReasonInterrupted      = "interrupted"       // stopped by a signal or a crash
	ReasonError            = "error"             // anything else
)

// Retryable reports whether a move refused or failed for reason may
// succeed if tried again later.
func Retryable(reason string) bool {
	switch reason {
	case ReasonActive, ReasonBusy, ReasonInProgress, ReasonInterrupted, ReasonHoldFailed, ReasonError:
		return true
	}
	return false
}

// Outcomes of a move.
const (
	OutcomeMoved   = "moved"   // the user lives on the new host
	OutcomeRefused = "refused" // the check said no; nothing was changed
	OutcomeFailed  = "failed"  // a step failed and the move was undone
	OutcomeStuck   = "stuck"   // it could not be finished or undone now; recover will
	// OutcomeInFlight is recover's word for a move a live maildist is
	// making: its user is locked, so recover leaves it alone.
	OutcomeInFlight = "in-flight"
)

// Activity tells whether a user has live sessions on some hosts.
type Activity interface {
	Active(ctx context.Context, user string, uid int, hosts []string) ([]activity.Session, error)
}

// Kicker ends a user's live sessions (doveadm kick, or signals).
type Kicker interface {
	Kick(ctx context.Context, user string, uid int, hosts []string) error
}

// Engine moves users. Its fields are set once; Move may be called from
// several goroutines for different users.
type Engine struct {
	Cluster   *cluster.Cluster
	Directory directory.Directory
	Host      func(name string) (host.Host, error)
	Copier    host.Copier
	Hold      delivery.Hold
	// HoldKinds returns a hold of another kind, for recovering a move
	// made before the config changed its hold.
	HoldKinds func(kind string) (delivery.Hold, error)
	Activity  Activity
	Kicker    Kicker // for Request.Kick; nil: kicking is refused
	// EntryChanged, if set, is told of every change maildist makes to a
	// user's directory entry: the switch, and the hold marker set and
	// cleared (e.g. to flush Dovecot's auth cache, which would go on
	// giving out the old home, or letting a held user in, or keeping a
	// released one out). An error is logged, not fatal.
	EntryChanged func(ctx context.Context, user string) error
	// OtherJournals, if set, names more journal folders (the ad-hoc
	// moves', other runs') where an unfinished move of a user makes a new
	// one wait for `maildist recover`.
	OtherJournals func() []string
	Stub          bool   // leave a .forward stub on the old host
	Marker        bool   // set the directory's hold marker while held
	JournalDir    string // journals of this batch
	LockDir       string // per-user locks, shared by every batch
	Settle        time.Duration
	PreCopy       bool  // copy the live home before the hold; hold only for the last difference
	Margin        int64 // free space kept on a destination beyond the mailbox
	Batch         string
	Runner        string

	// Events, if set, is told of every step taken.
	Events func(runstate.Event)

	// Hook, if set, is called after a step's record is durable and before
	// the step is taken. An error fails the step. Tests use it to crash or
	// to inject faults at a given step.
	Hook func(user string, s Step) error
}

// Request asks for one move.
type Request struct {
	User  string
	To    string
	From  string // if set, the user must be on this host now
	Force bool   // skip the live-session check
	Local bool   // check only the source host for live sessions
	Kick  bool   // end the user's live sessions once the hold has begun
	// AllowClosed moves to a host with accept_new = false, which is
	// otherwise refused.
	AllowClosed bool
}

// Result tells what became of a move.
type Result struct {
	User    string
	From    string
	To      string
	Outcome string
	Reason  string
	Err     error
	Bytes   int64
	Held    time.Duration
	Journal string
}

func (r Result) String() string {
	s := fmt.Sprintf("%s %s → %s: %s", r.User, r.From, r.To, r.Outcome)
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

func newID() string {
	var b [3]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

const (
	stagingDir = ".maildist-staging"
	trashDir   = ".maildist-trash"
)

// Move carries out one move and returns its result. It never returns
// without a result: errors are in Result.Err with a Reason.
func (e *Engine) Move(ctx context.Context, req Request) Result {
	res := Result{User: req.User, To: req.To, From: req.From}
	refuse := func(reason string, err error) Result {
		res.Outcome, res.Reason, res.Err = OutcomeRefused, reason, err
		e.emit(res, StepCheck, "refused", reason, err)
		return res
	}
	if err := cluster.CheckUser(req.User); err != nil {
		return refuse(ReasonBadUser, err)
	}
	to, ok := e.Cluster.Host(req.To)
	if !ok {
		return refuse(ReasonUnknownHost, fmt.Errorf("no host named %q in the config", req.To))
	}

	lock, err := e.lockUser(req.User)
	if err != nil {
		return refuse(ReasonInProgress, err)
	}
	defer lock.Unlock()
	if j := e.openJournalOf(req.User); j != "" {
		return refuse(ReasonInProgress, fmt.Errorf("an earlier move of %s did not finish (%s); run `maildist recover`", req.User, j))
	}

	ent, err := e.Directory.Lookup(ctx, req.User)
	if errors.Is(err, directory.ErrNotFound) {
		return refuse(ReasonUnknownUser, err)
	}
	if err != nil {
		return refuse(ReasonError, err)
	}
	from, ok := e.Cluster.HostOf(ent.Home)
	if !ok {
		return refuse(ReasonUnknownHost, fmt.Errorf("home %s of %s is under no host's root", ent.Home, req.User))
	}
	if err := ownName(ent.Home, from.Root); err != nil {
		return refuse(ReasonBadUser, fmt.Errorf("home %s of %s: %w", ent.Home, req.User, err))
	}
	if req.From != "" && req.From != from.Name {
		return refuse(ReasonDirectoryChanged, fmt.Errorf("%s is on %s now, not %s", req.User, from.Name, req.From))
	}
	res.From = from.Name
	if from.Name == to.Name {
		return refuse(ReasonSameHost, fmt.Errorf("%s is on %s already", req.User, to.Name))
	}
	if to.Drain {
		return refuse(ReasonDestDraining, fmt.Errorf("host %s is being drained", to.Name))
	}
	if !to.AcceptNew && !req.AllowClosed {
		return refuse(ReasonDestClosed, fmt.Errorf("host %s takes no new users (accept_new = false); to move %s there all the same, ask for it (maildist move --allow-closed)", to.Name, req.User))
	}
	src, err := e.Host(from.Name)
	if err != nil {
		return refuse(ReasonUnknownHost, err)
	}
	dst, err := e.Host(to.Name)
	if err != nil {
		return refuse(ReasonUnknownHost, err)
	}

	id := newID()
	p := Plan{
		ID: id, User: req.User, From: from.Name, To: to.Name,
		OldHome: ent.Home, NewHome: e.Cluster.HomeFor(req.User, to),
		UID: ent.UID, GID: ent.GID,
		Hold: e.Hold.Kind(), Held: e.Hold.HeldPath(ent.Home),
		Staging: path.Join(to.Root, stagingDir, req.User+"."+id),
		Trash:   path.Join(from.Root, trashDir, req.User+"."+id),
		Stub:    e.Stub, Marker: e.Marker, PreCopy: e.PreCopy,
		Batch: e.Batch, Runner: e.Runner, Started: time.Now().UTC(),
	}
	j, err := createJournal(e.JournalDir, p, Record{Step: StepCheck})
	if err != nil {
		return refuse(ReasonError, err)
	}
	defer j.Close()
	res.Journal = j.Path
	m := &mover{e: e, j: j, p: p, src: src, dst: dst, res: res}
	return m.run(ctx, req)
}

// ownName refuses a home whose path below its host's root uses a name
// maildist keeps for itself (its staging and trash folders), which a move
// would otherwise carry off with the home.
func ownName(home, root string) error {
	rel := strings.TrimPrefix(strings.TrimPrefix(path.Clean(home), path.Clean(root)), "/")
	for _, el := range strings.Split(rel, "/") {
		if strings.HasPrefix(el, ".maildist-") {
			return fmt.Errorf("%q is a name maildist keeps for its own folders", el)
		}
	}
	return nil
}

// mover is one move in progress.
type mover struct {
	e        *Engine
	j        *Journal
	p        Plan
	src, dst host.Host
	res      Result
	// copied is the hashed manifest of the held tree that the copy step
	// worked from, if the copier gave it (tree.Stats.Source).
	copied *tree.Manifest
}

// verifiedPath is where a move keeps the manifest of the held tree as it
// was verified, for the release to tell what was written there later.
func verifiedPath(j *Journal) string { return j.Path + ".verified" }

// step journals s, then lets the hook see it.
func (m *mover) step(s Step, extra Record) error { return m.e.step(m.j, s, extra) }

// step journals s durably, then lets the hook see it.
func (e *Engine) step(j *Journal, s Step, extra Record) error {
	extra.Step = s
	if err := j.Append(extra); err != nil {
		return err
	}
	if e.Hook != nil {
		if err := e.Hook(j.Plan.User, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func (m *mover) run(ctx context.Context, req Request) Result {
	e, p := m.e, m.p
	if reason, err := m.check(ctx, req); err != nil {
		m.j.Append(Record{Step: RecRefused, Reason: reason, Note: err.Error()})
		m.j.archive()
		m.res.Outcome, m.res.Reason, m.res.Err = OutcomeRefused, reason, err
		e.emit(m.res, StepCheck, "refused", reason, err)
		return m.res
	}
	e.emit(m.res, StepCheck, "ok", "", nil)

	fail := func(s Step, reason string, err error) Result {
		if ctx.Err() != nil && reason != ReasonDirectoryChanged {
			reason = ReasonInterrupted
		}
		e.emit(m.res, s, "failed", reason, err)
		// Undo must run even when the context was cancelled: a half move
		// must not be left behind by a signal.
		uctx := context.WithoutCancel(ctx)
		released, uerr := e.undo(uctx, m.j, m.src, m.dst, reason, err)
		if uerr != nil {
			m.res.Outcome, m.res.Reason = OutcomeStuck, reason
			m.res.Err = fmt.Errorf("%w; and undoing it failed: %v (run `maildist recover`)", err, uerr)
			e.emit(m.res, RecUndo, "failed", reason, uerr)
			return m.res
		}
		m.res.Outcome, m.res.Reason, m.res.Err = OutcomeFailed, reason, err
		m.res.Held = heldFor(m.j, released) // until the undo let them go
		e.emit(m.res, RecUndone, "undone", reason, err)
		return m.res
	}

	// precopy: while the user still works, so that the hold only has to
	// wait for the last difference.
	copyMode := host.CopyFresh
	if p.PreCopy {
		if err := m.step(StepPreCopy, Record{}); err != nil {
			return fail(StepPreCopy, ReasonCopyFailed, err)
		}
		if err := m.precopy(ctx); err != nil {
			return fail(StepPreCopy, copyReason(err), err)
		}
		copyMode = host.CopySync
		// The user may have logged in while the precopy ran: ask again
		// just before the hold, as the check did.
		if reason, err := m.live(ctx, req); err != nil {
			return fail(StepPreCopy, reason, fmt.Errorf("after the precopy: %w", err))
		}
	}

	// hold
	if err := m.step(StepHold, Record{}); err != nil {
		return fail(StepHold, ReasonHoldFailed, err)
	}
	if p.Marker {
		if mk, ok := e.Directory.(directory.Marker); ok {
			if err := mk.SetHold(ctx, p.User, directory.HoldReason); err != nil {
				return fail(StepHold, ReasonHoldFailed, err)
			}
			e.entryChanged(ctx, p.User, StepHold, "after setting the hold marker")
		}
	}
	if _, err := e.Hold.Start(ctx, m.src, p.User, p.OldHome); err != nil {
		return fail(StepHold, ReasonHoldFailed, err)
	}
	e.emit(m.res, StepHold, "ok", "", nil)
	if req.Kick {
		// Held: a client that reconnects now is refused, so ending its
		// sessions frees the mailbox for good.
		if err := e.Kicker.Kick(ctx, p.User, p.UID, e.sessionHosts(p, req)); err != nil {
			m.j.Append(Record{Step: RecNote, Note: "kick: " + err.Error()})
			e.emit(m.res, StepHold, "warning", ReasonActive, fmt.Errorf("kick: %w", err))
		} else {
			m.j.Append(Record{Step: RecNote, Note: "kicked the user's sessions"})
		}
	}

	// settle
	if err := m.step(StepSettle, Record{}); err != nil {
		return fail(StepSettle, ReasonBusy, err)
	}
	if err := m.settle(ctx); err != nil {
		return fail(StepSettle, ReasonBusy, err)
	}

	// copy
	if err := m.step(StepCopy, Record{}); err != nil {
		return fail(StepCopy, ReasonCopyFailed, err)
	}
	if _, err := m.dst.MkdirAll(ctx, path.Dir(p.Staging), 0o700, 0, 0); err != nil {
		return fail(StepCopy, ReasonCopyFailed, err)
	}
	began := time.Now()
	st, err := e.Copier.Copy(ctx, m.src, p.Held, m.dst, p.Staging, copyMode)
	if err != nil {
		return fail(StepCopy, copyReason(err), err)
	}
	m.j.Append(Record{Step: RecNote, Note: fmt.Sprintf("copy: %s in %v", passSummary(st), time.Since(began).Round(time.Millisecond))})
	if st.Source != nil && st.Source.Hashed && len(st.Source.Vanished) == 0 {
		m.copied = st.Source
	}
	m.res.Bytes += st.Bytes
	e.emitBytes(m.res, StepCopy, st.Bytes)

	// verify
	if err := m.step(StepVerify, Record{}); err != nil {
		return fail(StepVerify, ReasonVerifyFailed, err)
	}
	if err := m.verify(ctx); err != nil {
		reason := ReasonVerifyFailed
		if !errors.Is(err, errDiffers) {
			reason = copyReason(err)
		}
		return fail(StepVerify, reason, err)
	}
	e.emit(m.res, StepVerify, "ok", "", nil)

	// commit
	if err := m.step(StepCommit, Record{}); err != nil {
		return fail(StepCommit, ReasonCopyFailed, err)
	}
	if err := m.commit(ctx); err != nil {
		reason := ReasonCopyFailed
		if errors.Is(err, fs.ErrExist) {
			reason = ReasonDestExists
		}
		return fail(StepCommit, reason, err)
	}

	// switch
	if err := m.step(StepSwitch, Record{}); err != nil {
		return fail(StepSwitch, ReasonError, err)
	}
	if err := e.Directory.Switch(ctx, p.User, p.OldHome, p.NewHome); err != nil {
		cur, lerr := e.Directory.Lookup(context.WithoutCancel(ctx), p.User)
		switch {
		case lerr == nil && cur.Home == p.NewHome:
			// It did switch; the error came after.
		case lerr == nil && errors.Is(err, directory.ErrChanged):
			return fail(StepSwitch, ReasonDirectoryChanged, err)
		case lerr == nil && cur.Home == p.OldHome:
			return fail(StepSwitch, ReasonError, err)
		default:
			m.res.Outcome, m.res.Reason, m.res.Err = OutcomeStuck, ReasonError, fmt.Errorf("switch: %w; cannot tell whether it happened (run `maildist recover`)", err)
			return m.res
		}
	}
	e.emit(m.res, StepSwitch, "ok", "", nil)
	e.afterSwitch(ctx, m.res)

	// From here on the move only goes forward.
	fctx := context.WithoutCancel(ctx)
	released, err := e.finish(fctx, m.j, m.src)
	if err != nil {
		m.res.Outcome, m.res.Reason = OutcomeStuck, ReasonError
		m.res.Err = fmt.Errorf("moved, but not finished: %w (run `maildist recover`)", err)
		return m.res
	}
	m.res.Outcome = OutcomeMoved
	m.res.Held = heldFor(m.j, released)
	ev := m.res
	e.emitHeld(ev, m.res.Held)
	return m.res
}

// PreCopy passes: a first full copy, then passes of what changed while
// each still finds much to do, at most this many in all. A pass during
// which no name of the home changed is the last.
const maxPreCopyPasses = 4

// precopy copies the live home into staging, pass after pass, until a
// pass finds little left to do: then the final pass under the hold is
// short. A pass copies what is new or changed and removes what is gone;
// names that vanish mid-pass (an expunge) are simply left out.
func (m *mover) precopy(ctx context.Context) error {
	p := m.p
	if _, err := m.dst.MkdirAll(ctx, path.Dir(p.Staging), 0o700, 0, 0); err != nil {
		return err
	}
	var first tree.Stats
	for pass := 1; pass <= maxPreCopyPasses; pass++ {
		began := time.Now()
		st, err := m.e.Copier.Copy(ctx, m.src, p.OldHome, m.dst, p.Staging, host.CopyLive)
		if err != nil {
			return fmt.Errorf("precopy pass %d: %w", pass, err)
		}
		m.j.Append(Record{Step: RecNote, Note: fmt.Sprintf("precopy pass %d: %s in %v", pass, passSummary(st), time.Since(began).Round(time.Millisecond))})
		m.res.Bytes += st.Bytes
		m.e.emitBytes(m.res, StepPreCopy, st.Bytes)
		if pass == 1 {
			first = st
			// Hash both trees now rather than after the last pass: what
			// changes meanwhile is then caught by the next pass, not left
			// for the final pass under the hold. A copier that read back
			// what it copied (tree.Options.ReadBack) has done so already.
			if !st.ReadBack {
				if err := m.hashAhead(ctx); err != nil {
					return err
				}
				continue
			}
		}
		// Nothing was delivered, renamed or removed while the pass ran:
		// another would find only files changed in place (indexes),
		// which the final pass copies as fast.
		if st.Quiet {
			m.j.Append(Record{Step: RecNote, Note: fmt.Sprintf("precopy pass %d: no name changed in the home meanwhile; no further pass", pass)})
			break
		}
		if pass == 1 {
			continue
		}
		// Little left: a pass that copied under 2% of the first pass's
		// bytes and names, or under 1 MB and 100 names.
		changed := st.Files + st.Dirs + st.Symlinks + st.HardLinks + st.Removed + st.Fixed
		firstN := first.Files + first.Dirs + first.Symlinks + first.HardLinks
		if (st.Bytes <= first.Bytes/50 || st.Bytes < 1<<20) && (changed <= firstN/50 || changed < 100) {
			break
		}
		if pass == maxPreCopyPasses {
			// The home changes as fast as it is copied: the hold will
			// have much to copy. Say so; the move stays safe.
			m.e.emit(m.res, StepPreCopy, "warning", "", fmt.Errorf(
				"the precopy did not settle after %d passes (the last copied %d bytes, %d names): the hold will copy what changes meanwhile, and may be long",
				pass, st.Bytes, changed))
		}
	}
	return nil
}

// hashAhead reads and hashes both trees once while the user still works,
// so that the passes under the hold, whose scans go through the hosts'
// caches (tree.Cache), read only the files that changed since: without
// it the verify reads every file of both trees while the user waits. Its
// manifests are thrown away; nothing is decided from them. A scan that
// fails here only leaves the verify more to read.
func (m *mover) hashAhead(ctx context.Context) error {
	began := time.Now()
	_, _, err := m.scanBoth(ctx, m.p.OldHome)
	if err != nil && ctx.Err() == nil {
		m.j.Append(Record{Step: RecNote, Note: "hashing ahead of the hold: " + err.Error()})
		return nil
	}
	if err == nil {
		m.j.Append(Record{Step: RecNote, Note: fmt.Sprintf("hashed both trees ahead of the hold in %v", time.Since(began).Round(time.Millisecond))})
	}
	return ctx.Err()
}

// passSummary says what a copy pass did, for the journal.
func passSummary(st tree.Stats) string {
	s := fmt.Sprintf("%d file(s), %d byte(s)", st.Files, st.Bytes)
	for _, c := range []struct {
		n    int
		what string
	}{{st.Dirs, "folder(s)"}, {st.Symlinks, "symlink(s)"}, {st.HardLinks, "hard link(s)"}, {st.Renamed, "renamed"},
		{st.Appended, "appended"}, {st.Removed, "removed"}, {st.Fixed, "metadata fixed"}, {len(st.Vanished), "vanished"}} {
		if c.n > 0 {
			s += fmt.Sprintf(", %d %s", c.n, c.what)
		}
	}
	return s
}

// scanBoth makes hashed manifests of src at srcPath and of staging, both
// at once: they are on different hosts, or at least different trees.
func (m *mover) scanBoth(ctx context.Context, srcPath string) (a, b *tree.Manifest, err error) {
	var aerr, berr error
	var wg sync.WaitGroup
	wg.Go(func() { a, aerr = m.src.Scan(ctx, srcPath, true) })
	wg.Go(func() { b, berr = m.dst.Scan(ctx, m.p.Staging, true) })
	wg.Wait()
	if aerr != nil {
		return nil, nil, fmt.Errorf("scan source: %w", aerr)
	}
	if berr != nil {
		return nil, nil, fmt.Errorf("scan copy: %w", berr)
	}
	return a, b, nil
}

// check refuses a move that cannot or should not happen now.
func (m *mover) check(ctx context.Context, req Request) (string, error) {
	e, p := m.e, m.p
	fi, err := m.src.Lstat(ctx, p.OldHome)
	if errors.Is(err, fs.ErrNotExist) {
		return ReasonMissingHome, fmt.Errorf("home %s of %s does not exist on %s", p.OldHome, p.User, p.From)
	}
	if err != nil {
		return ReasonError, err
	}
	if !fi.IsDir() {
		return ReasonMissingHome, fmt.Errorf("home %s of %s on %s is not a folder (%v)", p.OldHome, p.User, p.From, fi.Mode.Type())
	}
	if p.Held != p.OldHome {
		if _, err := m.src.Lstat(ctx, p.Held); err == nil {
			return ReasonInProgress, fmt.Errorf("%s exists on %s: an earlier move was interrupted; look at it before moving %s", p.Held, p.From, p.User)
		}
	}
	if _, err := m.dst.Lstat(ctx, p.NewHome); err == nil {
		return ReasonDestExists, fmt.Errorf("%s exists on %s already", p.NewHome, p.To)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return ReasonError, err
	}
	if p.Stub {
		_, err := m.src.Lstat(ctx, p.NewHome)
		switch {
		case err == nil && !e.isStub(ctx, m.src, p):
			return ReasonDestExists, fmt.Errorf("%s exists on %s (the old host), where the stub would go", p.NewHome, p.From)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			// Found out now, not after the switch: the stub could not be
			// made (an agent that does not know the new home's root).
			return ReasonError, fmt.Errorf("the stub %s cannot be made on %s: %w", p.NewHome, p.From, err)
		}
	}
	if err := e.Hold.Check(ctx, m.src, p.User, p.OldHome, p.UID, p.GID); err != nil {
		return ReasonUnsafeHold, err
	}
	used, err := m.src.Usage(ctx, p.OldHome)
	if errors.Is(err, tree.ErrSpecial) {
		return ReasonSpecialFile, fmt.Errorf("%s of %s on %s: %w (remove it, or move it out of the home, and try again)", p.OldHome, p.User, p.From, err)
	}
	if err != nil {
		return ReasonError, fmt.Errorf("size of %s: %w", p.OldHome, err)
	}
	free, err := m.dst.FreeBytes(ctx, path.Dir(p.NewHome))
	if err != nil {
		return ReasonError, err
	}
	if free < used+e.Margin {
		return ReasonNoSpace, fmt.Errorf("%s has %d bytes free; %s needs %d plus a margin of %d", p.To, free, p.User, used, e.Margin)
	}
	if req.Kick && e.Kicker == nil {
		return ReasonError, fmt.Errorf("cannot end %s's sessions: the activity source cannot kick (use doveadm or proc)", p.User)
	}
	return m.live(ctx, req)
}

// live refuses a user with a live session, or whose sessions cannot be
// known, unless the request forces the move or kicks the sessions.
func (m *mover) live(ctx context.Context, req Request) (string, error) {
	e, p := m.e, m.p
	if req.Force || req.Kick || e.Activity == nil {
		return "", nil
	}
	ss, err := e.Activity.Active(ctx, p.User, p.UID, e.sessionHosts(p, req))
	if err != nil {
		how := "--local asks only the source host; --force moves without asking"
		if req.Local {
			how = "--force moves without asking"
		}
		return ReasonActive, fmt.Errorf("cannot tell whether %s is logged in, so not moving (%s): %w", p.User, how, err)
	}
	if len(ss) > 0 {
		var who []string
		for _, s := range ss {
			who = append(who, s.String())
		}
		return ReasonActive, fmt.Errorf("%s has %d live session(s): %s", p.User, len(ss), strings.Join(who, "; "))
	}
	return "", nil
}

func (e *Engine) afterSwitch(ctx context.Context, r Result) {
	e.entryChanged(ctx, r.User, StepSwitch, "after the switch")
}

// entryChanged tells EntryChanged that user's entry changed at step s.
func (e *Engine) entryChanged(ctx context.Context, user string, s Step, what string) {
	if e.EntryChanged == nil {
		return
	}
	if err := e.EntryChanged(context.WithoutCancel(ctx), user); err != nil {
		e.emit(Result{User: user}, s, "warning", "", fmt.Errorf("%s: %w", what, err))
	}
}

// sessionHosts are the hosts whose sessions count: the source host with
// --local, every host otherwise.
func (e *Engine) sessionHosts(p Plan, req Request) []string {
	if req.Local {
		return []string{p.From}
	}
	var hosts []string
	for _, h := range e.Cluster.Hosts {
		hosts = append(hosts, h.Name)
	}
	return hosts
}

// settle waits until no process has a file open under the held tree.
func (m *mover) settle(ctx context.Context) error {
	deadline := time.Now().Add(m.e.Settle)
	wait := 10 * time.Millisecond
	for {
		open, err := m.src.OpenFiles(ctx, m.p.Held)
		if err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		if len(open) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if len(open) > 5 {
				open = append(open[:5], "…")
			}
			return fmt.Errorf("files still open under %s after %v: %s", m.p.Held, m.e.Settle, strings.Join(open, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if wait < 500*time.Millisecond {
			wait *= 2
		}
	}
}

var errDiffers = errors.New("the copy differs from the source")

const verifyRounds = 3

// verify compares manifests (with content hashes) of the held tree and
// staging; what differs is copied again, up to verifyRounds times.
//
// The first round takes the held tree's manifest from the copy step when
// the copier gave it: that is the tree as it was copied, scanned under
// the hold after it settled, so a fresh scan a moment later would only
// repeat it; and staging, scanned afresh, must equal it. Mail written
// into the held tree after that scan (which the hold should prevent) is
// found the same way as mail written after the verify: if the hold left
// the tree in place, it is compared with this manifest after the release,
// and what is new is carried over (carryLate). Later rounds scan both
// sides.
func (m *mover) verify(ctx context.Context) error {
	opt := tree.CompareOptions{IgnoreOwners: os.Geteuid() != 0}
	// Only a hold that leaves the tree in place looks for late mail; the
	// manifest is not written for nothing while the user waits.
	keep := m.p.Held == m.p.OldHome
	var diffs []tree.Diff
	for round := 1; ; round++ {
		var a, b *tree.Manifest
		var err error
		saved := make(chan error, 1)
		if round == 1 && m.copied != nil {
			// The held side is known already: keep it while staging is
			// scanned, not after.
			a = m.copied
			if keep {
				go func() { saved <- saveVerified(verifiedPath(m.j), a) }()
			} else {
				saved <- nil
			}
			if b, err = m.dst.Scan(ctx, m.p.Staging, true); err != nil {
				err = fmt.Errorf("scan copy: %w", err)
			}
		} else {
			a, b, err = m.scanBoth(ctx, m.p.Held)
			saved <- nil
		}
		serr := <-saved
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		diffs = tree.Compare(a, b, opt)
		if len(diffs) == 0 {
			if keep && a != m.copied { // not saved above
				serr = saveVerified(verifiedPath(m.j), a)
			}
			return serr
		}
		m.j.Append(Record{Step: RecNote, Note: fmt.Sprintf("verify round %d: %d difference(s), first: %s", round, len(diffs), diffs[0])})
		if round == verifyRounds {
			break
		}
		// Take away what differs, so the copy cannot keep a stale version
		// that looks the same by size and mtime, then bring it up to date.
		for _, d := range diffs {
			if d.Path == "." {
				continue
			}
			if err := m.dst.RemoveAll(ctx, path.Join(m.p.Staging, d.Path)); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
		}
		if _, err := m.e.Copier.Copy(ctx, m.src, m.p.Held, m.dst, m.p.Staging, host.CopySync); err != nil {
			return fmt.Errorf("verify: copy the difference: %w", err)
		}
	}
	show := diffs
	if len(show) > 3 {
		show = show[:3]
	}
	var s []string
	for _, d := range show {
		s = append(s, d.String())
	}
	return fmt.Errorf("%w after %d rounds: %d difference(s): %s", errDiffers, verifyRounds, len(diffs), strings.Join(s, "; "))
}

// commit renames staging into place, making the home's parent folders
// like the old home's parent if they are missing.
func (m *mover) commit(ctx context.Context) error {
	p := m.p
	parent := path.Dir(p.NewHome)
	mode, uid, gid := os.FileMode(0o711), 0, 0
	if fi, err := m.src.Lstat(ctx, path.Dir(p.OldHome)); err == nil {
		mode, uid, gid = fi.Mode.Perm(), fi.UID, fi.GID
	}
	if _, err := m.dst.MkdirAll(ctx, parent, mode, uid, gid); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := m.dst.Rename(ctx, p.Staging, p.NewHome); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func copyReason(err error) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return ReasonNoSpace
	}
	return ReasonCopyFailed
}

// finish takes the steps after the switch: stub, release. Each is
// idempotent, so recover may run it again. released is when the hold
// ended.
func (e *Engine) finish(ctx context.Context, j *Journal, src host.Host) (released time.Time, err error) {
	p := j.Plan
	r := Result{User: p.User, From: p.From, To: p.To}
	if _, released := j.Has(StepRelease); !released {
		if p.Stub {
			rec, stubbed := j.Has(StepStub)
			if !stubbed {
				made, err := missingDirs(ctx, src, p.NewHome)
				if err != nil {
					return time.Time{}, err
				}
				rec = Record{Made: made}
				if err := e.step(j, StepStub, rec); err != nil {
					return time.Time{}, err
				}
			}
			if err := e.makeStub(ctx, src, p); err != nil {
				return time.Time{}, err
			}
			e.emit(r, StepStub, "ok", "", nil)
		}
		if err := e.step(j, StepRelease, Record{}); err != nil {
			return time.Time{}, err
		}
	}
	if err := e.rescueAfterSwitch(ctx, j, src, false); err != nil {
		return time.Time{}, err
	}
	if err := e.release(ctx, src, p); err != nil {
		return time.Time{}, err
	}
	released = time.Now()
	if p.Held == p.OldHome {
		if err := e.rescueAfterSwitch(ctx, j, src, true); err != nil {
			return released, err
		}
		// A hold that leaves the tree in place cannot stop what bypasses
		// it: mail written there after the verify is in the trash now.
		if err := e.carryLate(ctx, j, src); err != nil {
			return released, err
		}
	}
	if err := j.Append(Record{Step: RecMoved, HeldMS: heldFor(j, released).Milliseconds()}); err != nil {
		return released, err
	}
	os.Remove(verifiedPath(j))
	e.emit(r, StepRelease, "ok", "", nil)
	return released, nil
}

// missingDirs lists the folders of p (and above) missing on h.
func missingDirs(ctx context.Context, h host.Host, p string) ([]string, error) {
	var miss []string
	for q := p; q != "/" && q != "."; q = path.Dir(q) {
		_, err := h.Lstat(ctx, q)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			if errors.Is(err, host.ErrOutside) {
				break
			}
			return nil, err
		}
		miss = append([]string{q}, miss...)
	}
	return miss, nil
}

// makeStub leaves, on the old host, a folder at the new home's path with a
// .forward to user@domain, so mail still queued there finds its way.
func (e *Engine) makeStub(ctx context.Context, src host.Host, p Plan) error {
	if _, err := src.MkdirAll(ctx, path.Dir(p.NewHome), 0o755, 0, 0); err != nil {
		return fmt.Errorf("stub: %w", err)
	}
	if _, err := src.MkdirAll(ctx, p.NewHome, 0o700, p.UID, p.GID); err != nil {
		return fmt.Errorf("stub: %w", err)
	}
	if err := src.WriteFile(ctx, path.Join(p.NewHome, ".forward"), []byte(e.forwardTo(p.User)+"\n"), 0o600, p.UID, p.GID); err != nil {
		return fmt.Errorf("stub: %w", err)
	}
	return nil
}

// isStubTemp reports whether a name in a stub folder is the temporary
// file of a .forward being written (fsutil.WriteFile), left by a stub
// step that was killed.
func isStubTemp(name string) bool {
	digits, ok := strings.CutPrefix(name, "..forward.tmp-")
	if !ok || digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// stubContents sorts what a stub folder holds (m): whether it has the
// .forward, the temporary files of a .forward being written
// (isStubTemp), and the names at its top of anything else.
func stubContents(m *tree.Manifest) (fwd bool, temps, other []string) {
	for _, en := range m.Entries[1:] {
		switch {
		case en.Path == ".forward" && en.Kind == tree.File:
			fwd = true
		case en.Kind == tree.File && isStubTemp(en.Path):
			temps = append(temps, en.Path)
		case !strings.Contains(en.Path, "/"):
			other = append(other, en.Path)
		}
	}
	return fwd, temps, other
}

// isStub reports whether what is at the new home's path on the old host is
// a stub an earlier move left (the user went away and came back before
// done): a folder holding only the .forward this move would write.
func (e *Engine) isStub(ctx context.Context, h host.Host, p Plan) bool {
	m, err := h.Scan(ctx, p.NewHome, false)
	if err != nil {
		return false
	}
	if fwd, _, other := stubContents(m); !fwd || len(other) > 0 {
		return false
	}
	b, err := h.ReadFile(ctx, path.Join(p.NewHome, ".forward"))
	return err == nil && string(b) == e.forwardTo(p.User)+"\n"
}

// forwardTo is where a stub forwards user's mail.
func (e *Engine) forwardTo(user string) string {
	if strings.Contains(user, "@") {
		return user
	}
	return user + "@" + e.Cluster.Domain
}

// release moves the held tree to the trash and ends the hold.
func (e *Engine) release(ctx context.Context, src host.Host, p Plan) error {
	_, herr := src.Lstat(ctx, p.Held)
	switch {
	case herr == nil:
		if _, err := src.MkdirAll(ctx, path.Dir(p.Trash), 0o700, 0, 0); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if err := src.Rename(ctx, p.Held, p.Trash); err != nil {
			return fmt.Errorf("release: move %s to the trash: %w", p.Held, err)
		}
	case errors.Is(herr, fs.ErrNotExist):
		if _, err := src.Lstat(ctx, p.Trash); err != nil {
			return fmt.Errorf("release: the held tree %s is gone and is not in the trash (%s): %w", p.Held, p.Trash, err)
		}
	default:
		return fmt.Errorf("release: %w", herr)
	}
	hold, err := e.holdOf(p)
	if err != nil {
		return err
	}
	if err := hold.End(ctx, src, p.User, p.OldHome); err != nil {
		return err
	}
	if p.Marker {
		if mk, ok := e.Directory.(directory.Marker); ok {
			if err := mk.ClearHold(ctx, p.User); err != nil {
				return err
			}
			e.entryChanged(ctx, p.User, StepRelease, "after clearing the hold marker")
		}
	}
	return nil
}

// undo puts a move that has not switched back as it was: the new home (if
// committed), staging, the hold, the marker. Every action is idempotent.
// released is when the hold ended, before staging is removed; zero if the
// move never held its user.
func (e *Engine) undo(ctx context.Context, j *Journal, src, dst host.Host, reason string, cause error) (released time.Time, err error) {
	p := j.Plan
	if j.Last().Step != RecUndo {
		note := ""
		if cause != nil {
			note = cause.Error()
		}
		if err := j.Append(Record{Step: RecUndo, Reason: reason, Note: note}); err != nil {
			return released, err
		}
	}
	if _, committed := j.Has(StepCommit); committed {
		// The new home is ours only if staging is gone: the commit renamed
		// it there. The check saw no new home before we began.
		_, serr := dst.Lstat(ctx, p.Staging)
		if _, nerr := dst.Lstat(ctx, p.NewHome); nerr == nil && errors.Is(serr, fs.ErrNotExist) {
			if err := dst.Rename(ctx, p.NewHome, p.Staging); err != nil {
				return released, fmt.Errorf("undo commit: %w", err)
			}
		}
	}
	if _, held := j.Has(StepHold); held {
		hold, err := e.holdOf(p)
		if err != nil {
			return released, err
		}
		err = hold.Undo(ctx, src, p.User, p.OldHome)
		if errors.Is(err, delivery.ErrRecreated) {
			// Something made a new home while the old one was held: set
			// it aside, put the old one back, carry the new mail in.
			if _, err := e.setAside(ctx, src, p); err != nil {
				return released, err
			}
			err = hold.Undo(ctx, src, p.User, p.OldHome)
		}
		if err != nil {
			return released, err
		}
		if _, err := e.carryAll(ctx, src, p, src, p.OldHome); err != nil {
			return released, err
		}
		if p.Marker {
			if mk, ok := e.Directory.(directory.Marker); ok {
				if err := mk.ClearHold(ctx, p.User); err != nil {
					return released, err
				}
				e.entryChanged(ctx, p.User, StepRelease, "after clearing the hold marker")
			}
		}
		released = time.Now()
	}
	// Staging last: the user has mail and logins back while it goes.
	if err := dst.RemoveAll(ctx, p.Staging); err != nil {
		return released, fmt.Errorf("undo: remove staging: %w", err)
	}
	if err := j.Append(Record{Step: RecUndone, Reason: reason, HeldMS: heldFor(j, released).Milliseconds()}); err != nil {
		return released, err
	}
	return released, j.archive()
}

// heldFor is how long the move of j held its user, if it did: from its
// journal's hold record until released, however long an interruption
// between them lasted. The result, the log and the journal all count it
// so.
func heldFor(j *Journal, released time.Time) time.Duration {
	rec, held := j.Has(StepHold)
	if !held || released.IsZero() {
		return 0
	}
	return released.Sub(rec.Time)
}

func (e *Engine) lockUser(user string) (*fsutil.Lock, error) {
	if err := os.MkdirAll(e.LockDir, 0o700); err != nil {
		return nil, err
	}
	l, err := fsutil.TryLock(filepath.Join(e.LockDir, user+".lock"))
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, fmt.Errorf("%s is being moved by another maildist: %w", user, fsutil.ErrLocked)
	}
	return l, err
}

// LockPath is the file whose lock keeps two movers off one user.
func (e *Engine) LockPath(user string) string { return filepath.Join(e.LockDir, user+".lock") }

// openJournalOf returns the path of an unfinished journal of user, if any.
// It looks in JournalDir and in the folders OtherJournals names (other
// runs, ad-hoc moves), reading only the journals named for user.
func (e *Engine) openJournalOf(user string) string {
	dirs := []string{e.JournalDir}
	if e.OtherJournals != nil {
		dirs = append(dirs, e.OtherJournals()...)
	}
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, de := range ents {
			name := de.Name()
			if !strings.HasPrefix(name, user+".") || !strings.HasSuffix(name, ".journal") {
				continue
			}
			j, err := readJournal(filepath.Join(dir, name))
			if err == nil && j.Plan.User == user && !j.Terminal() {
				return j.Path
			}
		}
	}
	return ""
}

func (e *Engine) emit(r Result, s Step, outcome, reason string, err error) {
	if e.Events == nil {
		return
	}
	ev := runstate.Event{User: r.User, From: r.From, To: r.To, Step: string(s), Outcome: outcome, Reason: reason, Runner: e.Runner}
	if r.Held > 0 {
		ev.HeldMS = r.Held.Milliseconds() // an undo after the hold began
	}
	if err != nil {
		ev.Detail = err.Error()
	}
	e.Events(ev)
}

func (e *Engine) emitBytes(r Result, s Step, n int64) {
	if e.Events != nil {
		e.Events(runstate.Event{User: r.User, From: r.From, To: r.To, Step: string(s), Outcome: "ok", Bytes: n, Runner: e.Runner})
	}
}

func (e *Engine) emitHeld(r Result, held time.Duration) {
	if e.Events != nil {
		e.Events(runstate.Event{User: r.User, From: r.From, To: r.To, Step: string(RecMoved), Outcome: "ok", Bytes: r.Bytes, HeldMS: held.Milliseconds(), Runner: e.Runner})
	}
}
