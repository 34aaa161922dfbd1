package move

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/fsutil"
)

// Step is one step of a move, as written in its journal.
type Step string

// The steps of a move, in order.
const (
	StepCheck   Step = "check"
	StepPreCopy Step = "precopy"
	StepHold    Step = "hold"
	StepSettle  Step = "settle"
	StepCopy    Step = "copy"
	StepVerify  Step = "verify"
	StepCommit  Step = "commit"
	StepSwitch  Step = "switch"
	StepStub    Step = "stub"
	StepRelease Step = "release"
)

// Journal records that are not steps.
const (
	RecMoved    Step = "moved"    // the move is complete; waiting for done
	RecRefused  Step = "refused"  // the check refused; nothing was changed
	RecUndo     Step = "undo"     // undoing (before switch)
	RecUndone   Step = "undone"   // undone: the user is back as before
	RecFinished Step = "finished" // done has flushed, unstubbed and purged
	RecNote     Step = "note"     // information, no state change
)

// Steps lists the steps of a move in order.
var Steps = []Step{StepCheck, StepPreCopy, StepHold, StepSettle, StepCopy, StepVerify, StepCommit, StepSwitch, StepStub, StepRelease}

// Plan is what a move will do, fixed before it does anything.
type Plan struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	OldHome string    `json:"old_home"`
	NewHome string    `json:"new_home"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	Hold    string    `json:"hold"`    // kind of hold
	Held    string    `json:"held"`    // where the tree is while held (source host)
	Staging string    `json:"staging"` // destination host
	Trash   string    `json:"trash"`   // source host
	Stub    bool      `json:"stub"`    // a .forward stub at NewHome on the source host
	Marker  bool      `json:"marker"`  // the directory's hold marker is used
	PreCopy bool      `json:"precopy"` // the live home is copied before the hold
	Batch   string    `json:"batch,omitempty"`
	Runner  string    `json:"runner,omitempty"`
	Started time.Time `json:"started"`
}

// Record is one line of a journal.
type Record struct {
	Time   time.Time `json:"time"`
	Step   Step      `json:"step"`
	Plan   *Plan     `json:"plan,omitempty"`
	Made   []string  `json:"made,omitempty"`   // stub: folders the stub step makes
	Reason string    `json:"reason,omitempty"` // refused, undo
	Note   string    `json:"note,omitempty"`
	Bytes  int64     `json:"bytes,omitempty"`
	HeldMS int64     `json:"held_ms,omitempty"` // moved, undone: how long the user was held
}

// Journal is one move's journal file.
type Journal struct {
	Path    string
	Plan    Plan
	Records []Record
	f       *os.File
}

// journalName is USER.ID.journal; user names never hold '/'.
func journalName(user, id string) string { return user + "." + id + ".journal" }

// createJournal makes a new journal holding the plan and its first record.
func createJournal(dir string, p Plan, first Record) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, journalName(p.User, p.ID))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{Path: path, Plan: p, f: f}
	first.Plan = &p
	if err := j.Append(first); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, err
	}
	return j, nil
}

// Append writes a record durably: one write of one line, then fsync.
func (j *Journal) Append(r Record) error {
	if j.f == nil {
		f, err := os.OpenFile(j.Path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.f = f
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal %s: %w", j.Path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: fsync: %w", j.Path, err)
	}
	r.Plan = nil
	j.Records = append(j.Records, r)
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// Last is the last state record (notes skipped).
func (j *Journal) Last() Record {
	for i := len(j.Records) - 1; i >= 0; i-- {
		if j.Records[i].Step != RecNote {
			return j.Records[i]
		}
	}
	return Record{}
}

// Has reports whether the journal holds a record of step s.
func (j *Journal) Has(s Step) (Record, bool) {
	for _, r := range j.Records {
		if r.Step == s {
			return r, true
		}
	}
	return Record{}, false
}

// Terminal reports whether the move needs nothing more from recover.
func (j *Journal) Terminal() bool {
	switch j.Last().Step {
	case RecMoved, RecRefused, RecUndone, RecFinished:
		return true
	}
	return false
}

// readJournal reads a journal. A torn last line (a crash in the middle of
// a write) is dropped: its step was never taken, since a step is only
// taken after its record is durable.
func readJournal(path string) (*Journal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	j := &Journal{Path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	var torn error
	for sc.Scan() {
		line++
		if torn != nil {
			return nil, torn // a bad line that is not the last one
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			torn = fmt.Errorf("%s:%d: not a journal record: %v", path, line, err)
			continue
		}
		if r.Plan != nil {
			if line != 1 {
				return nil, fmt.Errorf("%s:%d: a plan after the first line", path, line)
			}
			j.Plan = *r.Plan
			r.Plan = nil
		}
		j.Records = append(j.Records, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if j.Plan.User == "" || j.Plan.ID == "" {
		return nil, fmt.Errorf("%s: no plan on the first line", path)
	}
	return j, nil
}

// listJournals reads every journal in dir (not the archive), oldest first.
func listJournals(dir string) ([]*Journal, []error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{err}
	}
	var js []*Journal
	var errs []error
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".journal") {
			continue
		}
		j, err := readJournal(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		js = append(js, j)
	}
	sort.Slice(js, func(a, b int) bool { return js[a].Plan.Started.Before(js[b].Plan.Started) })
	return js, errs
}

// archive moves a terminal journal to dir/archive.
func (j *Journal) archive() error {
	j.Close()
	dir := filepath.Join(filepath.Dir(j.Path), "archive")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	to := filepath.Join(dir, filepath.Base(j.Path))
	if err := os.Rename(j.Path, to); err != nil {
		return err
	}
	j.Path = to
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(filepath.Dir(to)))
}

// Completed lists the plans of the moves in a journal folder (and its
// archive) that were carried out: moved, or moved and finished by done.
func Completed(dir string) ([]Plan, error) {
	var out []Plan
	for _, d := range []string{dir, filepath.Join(dir, "archive")} {
		js, errs := listJournals(d)
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		for _, j := range js {
			switch j.Last().Step {
			case RecMoved, RecFinished:
				out = append(out, j.Plan)
			}
		}
	}
	return out, nil
}

// Finished lists the plans of the moves done has finished.
func Finished(dir string) ([]Plan, error) {
	js, errs := listJournals(filepath.Join(dir, "archive"))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []Plan
	for _, j := range js {
		if j.Last().Step == RecFinished {
			out = append(out, j.Plan)
		}
	}
	return out, nil
}

// Unfinished counts the journals that are not terminal: moves under way,
// or interrupted and waiting for recover.
func Unfinished(dir string) (int, error) {
	js, errs := listJournals(dir)
	n := 0
	for _, j := range js {
		if !j.Terminal() {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// UnfinishedUsers names the users of the journals that are not terminal.
func UnfinishedUsers(dir string) ([]string, error) {
	js, errs := listJournals(dir)
	var out []string
	for _, j := range js {
		if !j.Terminal() {
			out = append(out, j.Plan.User)
		}
	}
	return out, errors.Join(errs...)
}
