// Package directorytest is the conformance suite every directory backend
// must pass: list, lookup, compare-and-swap, concurrent switches, hold
// markers and names that need quoting.
package directorytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()

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
		for _, missing := range []string{"nobody", "alice ", "ALICE", "' OR '1'='1"} {
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
	})
}

func sortEntries(es []directory.Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].User < es[j].User })
}
