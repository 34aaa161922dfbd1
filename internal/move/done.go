package move

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// DoneOptions configure Done.
type DoneOptions struct {
	Flush   []string      // run on every host that held mail
	Queue   []string      // lists queued mail; empty: cannot tell, trust the flush
	Domain  string        // for matching user@domain in the queue
	Timeout time.Duration // how long to wait for the queue to empty
	Poll    time.Duration // between queue checks (default 2s)
	Log     func(format string, args ...any)
}

// Done statuses.
const (
	DoneFinished = "finished" // flushed, stub removed, trash purged
	DoneQueued   = "queued"   // mail for the user is still queued: stub kept
	DoneError    = "error"
)

// DoneEntry is what Done did for one moved user.
type DoneEntry struct {
	User, From, To string
	Status         string
	Detail         string
}

// machine groups hosts that are the same machine, so a command is run
// once per machine: every local host is this machine.
func machine(h host.Host) string {
	if _, ok := h.(*host.Local); ok {
		return "(local)"
	}
	return h.Name()
}

// Done finishes the moves of the batch: runs the flush command on every
// host that held mail, waits until the queue holds nothing more for the
// moved users (or the timeout passes), then removes their stubs and
// purges their trash. Users still queued keep their stub and are named.
func (e *Engine) Done(ctx context.Context, opt DoneOptions) ([]DoneEntry, error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	js, errs := listJournals(e.JournalDir)
	var moved []*Journal
	for _, j := range js {
		if j.Last().Step == RecMoved {
			moved = append(moved, j)
		}
	}
	if len(moved) == 0 {
		return nil, errors.Join(errs...)
	}
	defer func() {
		for _, j := range moved {
			j.Close()
		}
	}()

	// The machines that held mail, and the users they held.
	machines := map[string]host.Host{}
	var users []string
	for _, j := range moved {
		h, err := e.Host(j.Plan.From)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		machines[machine(h)] = h
		users = append(users, j.Plan.User)
	}
	names := make([]string, 0, len(machines))
	for n := range machines {
		names = append(names, n)
	}
	sort.Strings(names)

	flush := func() {
		if len(opt.Flush) == 0 {
			return
		}
		for _, n := range names {
			if _, err := machines[n].Run(ctx, opt.Flush); err != nil {
				logf("flush on %s: %v", n, err)
			}
		}
	}
	queued := func() (map[string]bool, error) {
		all := map[string]bool{}
		for _, n := range names {
			out, err := machines[n].Run(ctx, opt.Queue)
			if err != nil {
				return nil, fmt.Errorf("queue on %s: %w", n, err)
			}
			for u := range delivery.Queued(out, users, opt.Domain) {
				all[u] = true
			}
		}
		return all, nil
	}

	// A user held again by a move that did not finish has mail that
	// cannot leave the queue until recover ends that hold: not waited for.
	heldNow := map[string]string{}
	for _, u := range users {
		if jp := e.openJournalOf(u); jp != "" {
			heldNow[u] = jp
		}
	}
	waitable := func(q map[string]bool) int {
		n := 0
		for u := range q {
			if heldNow[u] == "" {
				n++
			}
		}
		return n
	}

	flush()
	still := map[string]bool{}
	if len(opt.Queue) > 0 {
		deadline := time.Now().Add(opt.Timeout)
		for {
			q, err := queued()
			if err != nil {
				return nil, errors.Join(append(errs, err)...)
			}
			still = q
			if waitable(q) == 0 || !time.Now().Before(deadline) {
				break
			}
			logf("waiting for queued mail of %d moved user(s)…", waitable(q))
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(opt.Poll):
			}
			flush()
		}
	} else {
		logf("no delivery.queue command: cannot see the queue; trusting the flush")
	}

	var out []DoneEntry
	for _, j := range moved {
		p := j.Plan
		d := DoneEntry{User: p.User, From: p.From, To: p.To}
		if still[p.User] {
			d.Status, d.Detail = DoneQueued, "mail still queued; kept for the next done"
			if p.Stub {
				d.Detail = "mail still queued; stub kept"
			}
			if jp := heldNow[p.User]; jp != "" {
				d.Detail += fmt.Sprintf("; held by a move that did not finish (%s): run `maildist recover`, then done again", jp)
			}
			out = append(out, d)
			continue
		}
		lock, err := e.lockUser(p.User)
		if err != nil {
			d.Status, d.Detail = DoneError, err.Error()
			out = append(out, d)
			continue
		}
		if err := e.finishDone(ctx, j); err != nil {
			d.Status, d.Detail = DoneError, err.Error()
		} else {
			d.Status = DoneFinished
		}
		lock.Unlock()
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// finishDone removes one move's stub and purges its trash, then archives
// its journal.
func (e *Engine) finishDone(ctx context.Context, j *Journal) error {
	p := j.Plan
	src, err := e.Host(p.From)
	if err != nil {
		return err
	}
	// A delivery that looked the old home up just before the switch may
	// have made it again since: carry its mail first.
	if err := e.rescueAfterSwitch(ctx, j, src, true); err != nil {
		return err
	}
	if p.Stub {
		if err := e.removeStub(ctx, src, j); err != nil {
			return err
		}
	}
	if err := src.RemoveAll(ctx, p.Trash); err != nil {
		return fmt.Errorf("purge %s on %s: %w", p.Trash, p.From, err)
	}
	// Recreated homes whose mail was carried (see rescue) go too.
	for n := 1; ; n++ {
		if _, err := src.Lstat(ctx, carriedPath(p, n)); err != nil {
			break
		}
		if err := src.RemoveAll(ctx, carriedPath(p, n)); err != nil {
			return fmt.Errorf("purge %s on %s: %w", carriedPath(p, n), p.From, err)
		}
	}
	if err := j.Append(Record{Step: RecFinished}); err != nil {
		return err
	}
	return j.archive()
}

// removeStub removes the .forward and the folders the stub step made, and
// nothing else: a stub that holds anything more is left for the operator,
// whole.
func (e *Engine) removeStub(ctx context.Context, src host.Host, j *Journal) error {
	p := j.Plan
	m, err := src.Scan(ctx, p.NewHome, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Gone already: a done cut short after removing it.
	case err != nil:
		return fmt.Errorf("remove stub: %w", err)
	default:
		if err := e.removeStubFolder(ctx, src, p, m); err != nil {
			return err
		}
	}
	// The folders above a stub on the old host exist only for stubs (the
	// old host keeps no homes under another host's root): remove them
	// while they are empty, up to the new host's root.
	fromRoot := ""
	if h, ok := e.Cluster.Host(p.From); ok {
		fromRoot = h.Root
	}
	for q := path.Dir(p.NewHome); q != "/" && q != "."; q = path.Dir(q) {
		if fromRoot != "" && cluster.Under(q, fromRoot) {
			break
		}
		if err := src.Remove(ctx, q); err != nil {
			break // not empty: another stub lives there
		}
	}
	return nil
}

// removeStubFolder removes a stub folder (m is what it holds) if it holds
// only what a stub step makes.
func (e *Engine) removeStubFolder(ctx context.Context, src host.Host, p Plan, m *tree.Manifest) error {
	// A stub step killed while it wrote the .forward leaves its
	// temporary file beside it: that goes too.
	_, temps, other := stubContents(m)
	if len(other) > 0 {
		if len(other) > 3 {
			other = append(other[:3], "…")
		}
		return fmt.Errorf("stub folder %s on %s holds what the stub step did not make (%s); left in place: look at it, remove it, and run done again", p.NewHome, p.From, strings.Join(other, ", "))
	}
	fwd := path.Join(p.NewHome, ".forward")
	if b, err := src.ReadFile(ctx, fwd); err == nil {
		if string(b) != e.forwardTo(p.User)+"\n" {
			return fmt.Errorf("stub %s on %s was changed; left in place", fwd, p.From)
		}
		if err := src.Remove(ctx, fwd); err != nil {
			return fmt.Errorf("remove stub: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stub: %w", err)
	}
	for _, t := range temps {
		if err := src.Remove(ctx, path.Join(p.NewHome, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stub: %w", err)
		}
	}
	if err := src.Remove(ctx, p.NewHome); err != nil {
		return fmt.Errorf("stub folder %s on %s is not empty; left in place: %w", p.NewHome, p.From, err)
	}
	return nil
}
