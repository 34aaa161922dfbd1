package run

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

// HostStatus is where a run stands for one source host.
type HostStatus struct {
	Host    string         `json:"host"`
	Planned int            `json:"planned"`
	Moved   int            `json:"moved"`
	Refused int            `json:"refused"`
	Failed  int            `json:"failed"`
	Left    int            `json:"left"`
	Reasons map[string]int `json:"reasons,omitempty"` // last reason of each user left
}

// UserRefusals is a user refused more than once.
type UserRefusals struct {
	User    string `json:"user"`
	From    string `json:"from"`
	To      string `json:"to"`
	Tries   int    `json:"tries"`
	Last    string `json:"last_reason"`
	Forever bool   `json:"permanent"`
}

// Status is where a run stands.
type Status struct {
	Hosts         []HostStatus   `json:"hosts"`
	Total         HostStatus     `json:"total"`
	MostTried     []UserRefusals `json:"most_refused"`
	InFlight      int            `json:"in_flight"` // journals not finished: moving now, or to recover
	InFlightUsers []string       `json:"in_flight_users,omitempty"`
	Finished      int            `json:"done_users"` // moved users done has finished
	DoneRan       bool           `json:"done_ran"`
	HeldMS        HeldStats      `json:"held_ms"`
	Bad           []string       `json:"bad_lines,omitempty"`
}

// HeldStats summarises how long moved users were held.
type HeldStats struct {
	Count  int   `json:"count"`
	Total  int64 `json:"total"`
	Max    int64 `json:"max"`
	Median int64 `json:"median"`
	P95    int64 `json:"p95"`
}

// ReadStatus reads a run folder.
func ReadStatus(dir string) (*Status, error) {
	todo, bad := runstate.ReadTodo(filepath.Join(dir, runstate.TodoFile))
	if todo == nil && bad != nil {
		return nil, bad
	}
	st, err := LoadState(dir)
	if err != nil {
		return nil, err
	}
	s := &Status{}
	if bad != nil {
		for _, e := range flatten(bad) {
			s.Bad = append(s.Bad, e.Error())
		}
	}
	byHost := map[string]*HostStatus{}
	var order []string
	for _, t := range todo {
		h := byHost[t.From]
		if h == nil {
			h = &HostStatus{Host: t.From, Reasons: map[string]int{}}
			byHost[t.From] = h
			order = append(order, t.From)
		}
		h.Planned++
		k := Key{t.User, t.From, t.To}
		if st.Done[k] {
			h.Moved++
			continue
		}
		h.Left++
		u := st.Users[k]
		if u == nil {
			continue
		}
		switch u.Outcome {
		case move.OutcomeRefused:
			h.Refused++
		case move.OutcomeFailed, move.OutcomeStuck:
			h.Failed++
		}
		if u.Last != "" {
			h.Reasons[u.Last]++
		}
		if u.Attempts > 0 {
			_, perm := st.Permanent(k)
			s.MostTried = append(s.MostTried, UserRefusals{User: t.User, From: t.From, To: t.To, Tries: u.Attempts, Last: u.Last, Forever: perm})
		}
	}
	sort.Strings(order)
	s.Total = HostStatus{Host: "total", Reasons: map[string]int{}}
	for _, n := range order {
		h := byHost[n]
		s.Hosts = append(s.Hosts, *h)
		s.Total.Planned += h.Planned
		s.Total.Moved += h.Moved
		s.Total.Refused += h.Refused
		s.Total.Failed += h.Failed
		s.Total.Left += h.Left
		for r, c := range h.Reasons {
			s.Total.Reasons[r] += c
		}
	}
	sort.Slice(s.MostTried, func(i, j int) bool {
		a, b := s.MostTried[i], s.MostTried[j]
		if a.Tries != b.Tries {
			return a.Tries > b.Tries
		}
		return a.User < b.User
	})
	if len(s.MostTried) > 10 {
		s.MostTried = s.MostTried[:10]
	}

	finished, err := move.Finished(filepath.Join(dir, "journal"))
	if err != nil {
		return nil, err
	}
	s.Finished = len(finished)
	s.InFlightUsers, _ = move.UnfinishedUsers(filepath.Join(dir, "journal"))
	s.InFlight = len(s.InFlightUsers)
	if _, err := os.Stat(filepath.Join(dir, runstate.DoneFile)); err == nil {
		s.DoneRan = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	evs, _ := runstate.ReadLog(filepath.Join(dir, runstate.LogFile))
	var held []int64
	for _, e := range evs {
		// Every move that ended after its hold began, moved or undone,
		// by the runner or by a recover: each logs its end once, with
		// how long the user was held. (The runner's result line repeats
		// it.)
		if e.Step == string(move.RecMoved) || e.Step == string(move.RecUndone) && e.HeldMS > 0 {
			held = append(held, e.HeldMS)
		}
	}
	s.HeldMS = heldStats(held)
	return s, nil
}

func heldStats(ms []int64) HeldStats {
	h := HeldStats{Count: len(ms)}
	if len(ms) == 0 {
		return h
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
	for _, v := range ms {
		h.Total += v
	}
	h.Max = ms[len(ms)-1]
	h.Median = ms[len(ms)/2]
	if len(ms)%2 == 0 {
		h.Median = (ms[len(ms)/2-1] + ms[len(ms)/2]) / 2
	}
	h.P95 = ms[min(len(ms)-1, len(ms)*95/100)]
	return h
}

func flatten(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
