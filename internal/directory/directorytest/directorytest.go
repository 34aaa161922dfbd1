// Package directorytest is the conformance suite every directory backend
// must pass: list, lookup, compare-and-swap, concurrent switches, hold
// markers, names that need quoting, and (for backends that talk to a
// server) a connection closed in the middle.
package directorytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/maildist/maildist/internal/directory"
)

// Opener makes a fresh directory holding exactly entries.
type Opener func(t *testing.T, entries []directory.Entry) directory.Directory

// Seed is the entries every test starts from. Names are chosen to need
// quoting in SQL and care in files.
func Seed() []directory.Entry {
	return []directory.Entry{
		{User: "alice", Home: "/bp04/alice", UID: 5001, GID: 100},
		{User: "bob", Home: "/bp04/bob", UID: 5002, GID: 100},
		{User: "carol@example.edu", Home: "/bp17/d22/carol@example.edu", UID: 5003, GID: 100},
		{User: "o'brien", Home: "/bp17/o'brien", UID: 5004, GID: 100},
		{User: `x';DROP_TABLE_users;--`, Home: "/bp17/x", UID: 5005, GID: 100},
		{User: "zoë", Home: "/bp17/zoë", UID: 5006, GID: 100},
	}
}

// Harness is what a backend gives the suite.
type Harness struct {
	Open Opener
	// Interrupt, if set, closes every connection d holds to its store
	// under it, as a server restart or a network cut would. Calls after it
	// must succeed (the backend reconnects) and never leave a change half
	// made. Nil for backends without connections: those tests skip.
	Interrupt func(t *testing.T, d directory.Directory)
}

// Run runs the suite.
func Run(t *testing.T, open Opener) { RunHarness(t, Harness{Open: open}) }

// RunHarness runs the suite with the extras a harness gives.
func RunHarness(t *testing.T, h Harness) {
	ctx := context.Background()
	open := h.Open

	t.Run("List", func(t *testing.T) {
		d := open(t, Seed())
		got, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := Seed()
		sortEntries(got)
		sortEntries(want)
		if len(got) != len(want) {
			t.Fatalf("List gave %d entries, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			if got[i].User != want[i].User || got[i].Home != want[i].Home {
				t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
			}
			if got[i].UID != -1 && (got[i].UID != want[i].UID || got[i].GID != want[i].GID) {
				t.Errorf("entry %d ids = %d:%d, want %d:%d", i, got[i].UID, got[i].GID, want[i].UID, want[i].GID)
			}
		}
	})

	t.Run("Lookup", func(t *testing.T) {
		d := open(t, Seed())
		for _, w := range Seed() {
			e, err := d.Lookup(ctx, w.User)
			if err != nil || e.Home != w.Home || e.User != w.User {
				t.Errorf("Lookup(%q) = %+v, %v", w.User, e, err)
			}
		}
		for _, missing := range []string{"nobody", "alice ", "ALICE", "' OR '1'='1", "al%", "a_ice", "alice\\", "alice'--"} {
			if _, err := d.Lookup(ctx, missing); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Lookup(%q) err = %v, want ErrNotFound", missing, err)
			}
		}
	})

	t.Run("SwitchCompareAndSwap", func(t *testing.T) {
		d := open(t, Seed())
		if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
			t.Fatal(err)
		}
		if e, _ := d.Lookup(ctx, "alice"); e.Home != "/bp17/alice" {
			t.Fatalf("after switch home = %q", e.Home)
		}
		err := d.Switch(ctx, "alice", "/bp04/alice", "/bp99/alice")
		if !errors.Is(err, directory.ErrChanged) {
			t.Fatalf("stale switch err = %v, want ErrChanged", err)
		}
		if e, _ := d.Lookup(ctx, "alice"); e.Home != "/bp17/alice" {
			t.Fatalf("stale switch changed home to %q", e.Home)
		}
		if err := d.Switch(ctx, "nobody", "/a", "/b"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("switch of unknown user: %v", err)
		}
		// Others are untouched.
		for _, w := range Seed()[1:] {
			if e, _ := d.Lookup(ctx, w.User); e.Home != w.Home {
				t.Errorf("%s home changed to %q", w.User, e.Home)
			}
		}
		q := `x';DROP_TABLE_users;--`
		if err := d.Switch(ctx, q, "/bp17/x", "/bp04/x"); err != nil {
			t.Fatal(err)
		}
		if got, err := d.List(ctx); err != nil || len(got) != len(Seed()) {
			t.Fatalf("after quoting switch: %d entries, %v", len(got), err)
		}
	})

	t.Run("ConcurrentSwitchesOneWins", func(t *testing.T) {
		d := open(t, Seed())
		const n = 12
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = d.Switch(ctx, "bob", "/bp04/bob", fmt.Sprintf("/bp%02d/bob", 20+i))
			}(i)
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("switches %d and %d both won", won, i)
				}
				won = i
			case !errors.Is(err, directory.ErrChanged):
				t.Errorf("switch %d: %v", i, err)
			}
		}
		if won < 0 {
			t.Fatal("no switch won")
		}
		if e, _ := d.Lookup(ctx, "bob"); e.Home != fmt.Sprintf("/bp%02d/bob", 20+won) {
			t.Fatalf("home = %q, winner was %d", e.Home, won)
		}
	})

	t.Run("HoldMarker", func(t *testing.T) {
		d := open(t, Seed())
		m, ok := d.(directory.Marker)
		if !ok {
			t.Skip("backend has no hold markers")
		}
		if err := m.SetHold(ctx, "carol@example.edu", directory.HoldReason); err != nil {
			t.Fatal(err)
		}
		if err := m.SetHold(ctx, "carol@example.edu", directory.HoldReason); err != nil {
			t.Fatal("SetHold not idempotent:", err)
		}
		e, _ := d.Lookup(ctx, "carol@example.edu")
		if !e.Held {
			t.Skip("backend configured without hold markers")
		}
		if err := d.Switch(ctx, "carol@example.edu", e.Home, "/bp04/carol@example.edu"); err != nil {
			t.Fatal(err)
		}
		if err := m.ClearHold(ctx, "carol@example.edu"); err != nil {
			t.Fatal(err)
		}
		if err := m.ClearHold(ctx, "carol@example.edu"); err != nil {
			t.Fatal("ClearHold not idempotent:", err)
		}
		e, _ = d.Lookup(ctx, "carol@example.edu")
		if e.Held || e.Home != "/bp04/carol@example.edu" {
			t.Fatalf("after clear: %+v", e)
		}
		if e, _ := d.Lookup(ctx, "alice"); e.Held {
			t.Fatal("hold marker leaked to another user")
		}
		if err := m.SetHold(ctx, "nobody", directory.HoldReason); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("SetHold(nobody) = %v, want ErrNotFound", err)
		}
		if err := m.ClearHold(ctx, "nobody"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("ClearHold(nobody) = %v, want ErrNotFound", err)
		}
	})

	t.Run("HoldSurvivesSwitch", func(t *testing.T) {
		d := open(t, Seed())
		m, ok := d.(directory.Marker)
		if !ok {
			t.Skip("backend has no hold markers")
		}
		if err := m.SetHold(ctx, "bob", directory.HoldReason); err != nil {
			t.Fatal(err)
		}
		if e, _ := d.Lookup(ctx, "bob"); !e.Held {
			t.Skip("backend configured without hold markers")
		}
		if err := d.Switch(ctx, "bob", "/bp04/bob", "/bp17/bob"); err != nil {
			t.Fatal(err)
		}
		if e, _ := d.Lookup(ctx, "bob"); !e.Held || e.Home != "/bp17/bob" {
			t.Fatalf("after switch while held: %+v", e)
		}
		es, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Held != (e.User == "bob") {
				t.Errorf("List: %s held = %v", e.User, e.Held)
			}
		}
	})

	t.Run("SwitchToSameHome", func(t *testing.T) {
		d := open(t, Seed())
		if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp04/alice"); err != nil {
			t.Fatalf("switch to the home it holds: %v", err)
		}
		if err := d.Switch(ctx, "alice", "/bp99/alice", "/bp04/alice"); !errors.Is(err, directory.ErrChanged) {
			t.Fatalf("switch from a home it does not hold to the one it does: %v, want ErrChanged", err)
		}
	})

	t.Run("NamesThatNeedQuoting", func(t *testing.T) {
		d := open(t, Seed())
		for _, evil := range []string{"x'; DROP TABLE users; --", `x"; DROP TABLE users; --`, "alice' OR '1'='1", "alice\\' OR 1=1 --", "*", "%", ":user", "$1", "?"} {
			if _, err := d.Lookup(ctx, evil); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Lookup(%q) = %v, want ErrNotFound", evil, err)
			}
			if err := d.Switch(ctx, evil, "/bp04/alice", "/bp17/evil"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("Switch(%q) = %v, want ErrNotFound", evil, err)
			}
			if err := d.Switch(ctx, "alice", "/bp04/alice' OR '1'='1", evil); err == nil {
				t.Errorf("Switch(alice, …, %q) succeeded", evil)
			}
		}
		if m, ok := d.(directory.Marker); ok {
			for _, evil := range []string{"x'; DROP TABLE users; --", "alice' OR '1'='1"} {
				if err := m.SetHold(ctx, evil, directory.HoldReason); err != nil && !errors.Is(err, directory.ErrNotFound) {
					t.Errorf("SetHold(%q) = %v", evil, err)
				}
			}
		}
		got, err := d.List(ctx)
		if err != nil || len(got) != len(Seed()) {
			t.Fatalf("after the attempts: %d entries, %v", len(got), err)
		}
		for _, e := range got {
			if e.Held {
				t.Errorf("%s is held", e.User)
			}
			for _, w := range Seed() {
				if w.User == e.User && w.Home != e.Home {
					t.Errorf("%s home changed to %q", e.User, e.Home)
				}
			}
		}
		// The quoted names themselves work like any other.
		for _, u := range []string{"o'brien", `x';DROP_TABLE_users;--`, "carol@example.edu", "zoë"} {
			e, err := d.Lookup(ctx, u)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", u, err)
			}
			if err := d.Switch(ctx, u, e.Home, e.Home+".new"); err != nil {
				t.Fatalf("Switch(%q): %v", u, err)
			}
			if e2, _ := d.Lookup(ctx, u); e2.Home != e.Home+".new" {
				t.Fatalf("%q home = %q", u, e2.Home)
			}
		}
	})

	t.Run("ConcurrentSwitchesOfManyUsers", func(t *testing.T) {
		d := open(t, Seed())
		var wg sync.WaitGroup
		seed := Seed()
		errs := make([]error, len(seed))
		for i, e := range seed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = d.Switch(ctx, e.User, e.Home, e.Home+".moved")
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("switch %s: %v", seed[i].User, err)
			}
		}
		got, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			if !strings.HasSuffix(e.Home, ".moved") {
				t.Errorf("%s home = %q", e.User, e.Home)
			}
		}
	})

	t.Run("ClosedConnection", func(t *testing.T) {
		if h.Interrupt == nil {
			t.Skip("backend holds no connection")
		}
		d := open(t, Seed())
		if _, err := d.List(ctx); err != nil {
			t.Fatal(err)
		}
		h.Interrupt(t, d)
		if e, err := d.Lookup(ctx, "alice"); err != nil || e.Home != "/bp04/alice" {
			t.Fatalf("Lookup after the connection closed: %+v, %v", e, err)
		}
		h.Interrupt(t, d)
		if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
			t.Fatalf("Switch after the connection closed: %v", err)
		}
		h.Interrupt(t, d)
		if err := d.Switch(ctx, "alice", "/bp04/alice", "/bp99/alice"); !errors.Is(err, directory.ErrChanged) {
			t.Fatalf("stale Switch after the connection closed: %v, want ErrChanged", err)
		}
		if m, ok := d.(directory.Marker); ok {
			h.Interrupt(t, d)
			if err := m.SetHold(ctx, "bob", directory.HoldReason); err != nil {
				t.Fatalf("SetHold after the connection closed: %v", err)
			}
			h.Interrupt(t, d)
			if err := m.ClearHold(ctx, "bob"); err != nil {
				t.Fatalf("ClearHold after the connection closed: %v", err)
			}
		}
		h.Interrupt(t, d)
		got, err := d.List(ctx)
		if err != nil || len(got) != len(Seed()) {
			t.Fatalf("List after the connection closed: %d entries, %v", len(got), err)
		}
		for _, e := range got {
			want := map[string]string{"alice": "/bp17/alice"}[e.User]
			if want != "" && e.Home != want || e.Held {
				t.Errorf("after: %+v", e)
			}
		}
	})
}

func sortEntries(es []directory.Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].User < es[j].User })
}
