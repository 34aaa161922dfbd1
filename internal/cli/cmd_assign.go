package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/runstate"
)

type assignOptions struct {
	pick string
	seed uint64
}

func newAssignCommand(g *globals) *cobra.Command {
	var opts assignOptions
	cmd := &cobra.Command{
		Use:   "assign RUN",
		Short: "Pick the users the plan moves, in random order",
		Long: `Read RUN/moves.tsv and RUN/sort.tsv and pick, for every host and class, the
users that go, and where each goes. Writes RUN/todo.tsv (user from to class)
in random order, so that runners on several hosts fill the destinations
evenly and each in its own order. No user appears twice.

--pick and --seed default to what "maildist plan" used (RUN/plan.json), so
the todo moves the very users the plan's report counted:
  random   in sort.tsv order, itself random
  idle     least recently active first (fewer refusals for live sessions)
  small    fewest bytes first (the quickest moves)`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("assign needs the run folder RUN (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			return runAssign(cmd.Context(), opts, f.Changed("pick"), f.Changed("seed"), g, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.pick, "pick", "", "which users go: random, idle or small (default: as planned, else random)")
	f.Uint64Var(&opts.seed, "seed", 0, "seed of the random order (default: as planned)")
	return cmd
}

func runAssign(ctx context.Context, opts assignOptions, pickSet, seedSet bool, g *globals, run string) error {
	pick, err := assign.ParsePolicy(opts.pick)
	if err != nil {
		return usagef("--pick: %v", err)
	}
	seed := opts.seed
	pf, planned, err := readPlanFile(run)
	if err != nil {
		return err
	}
	if !planned {
		g.logf("note: %s is missing (a plan cut short, or files made by hand): assigning with --pick %s --seed %d", runstate.Path(run, planOptsFile), pick, seed)
	}
	if planned {
		if !pickSet {
			if pick, err = assign.ParsePolicy(pf.Pick); err != nil {
				return fmt.Errorf("%s: %v", runstate.Path(run, planOptsFile), err)
			}
		}
		if !seedSet {
			seed = pf.Seed
		}
		if string(pick) != pf.Pick || seed != pf.Seed {
			g.logf("note: the plan's report counted the users that --pick %s --seed %d picks; this todo differs from it", pf.Pick, pf.Seed)
		}
	}

	t0 := time.Now()
	movesPath, sortPath := runstate.Path(run, runstate.MovesFile), runstate.Path(run, runstate.SortFile)
	moves, err := runstate.ReadMoves(movesPath)
	if err != nil {
		return withHint(err, "run `maildist plan "+run+"` first")
	}
	sorted, err := runstate.ReadSort(sortPath)
	if err != nil {
		return withHint(err, "run `maildist plan "+run+"` first")
	}
	if planned {
		total := 0
		for _, m := range moves {
			total += m.Count
		}
		if total != pf.Moves || len(sorted) != pf.Sorted {
			return withHint(fmt.Errorf("%s moves %d users and %s has %d rows, but the plan wrote %d and %d: the files are not from one plan",
				movesPath, total, sortPath, len(sorted), pf.Moves, pf.Sorted),
				"plan again, or remove "+runstate.Path(run, planOptsFile)+" to assign the files as they are")
		}
	}
	var users []cluster.User
	if pick != assign.Random {
		if users, err = readRaw(run); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t1 := time.Now()
	todo, err := assign.Make(moves, sorted, users, assign.Options{Pick: pick, Seed: seed})
	if err != nil {
		return withHint(fmt.Errorf("assign %s: %w", run, err), "plan again: `maildist plan "+run+"`")
	}
	t2 := time.Now()
	todoPath := runstate.Path(run, runstate.TodoFile)
	if err := runstate.WriteTodo(todoPath, todo); err != nil {
		return err
	}
	t3 := time.Now()
	if g.verbose {
		g.logf("assign: read %d moves and %d users in %.2fs, assigned in %.2fs, wrote %s in %.2fs",
			len(moves), len(sorted), t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), todoPath, t3.Sub(t2).Seconds())
	}

	// Per source: how many leave, to how many hosts.
	type source struct {
		Host  string         `json:"host"`
		Users int            `json:"users"`
		To    map[string]int `json:"to"`
	}
	bySource := map[string]*source{}
	for _, t := range todo {
		s := bySource[t.From]
		if s == nil {
			s = &source{Host: t.From, To: map[string]int{}}
			bySource[t.From] = s
		}
		s.Users++
		s.To[t.To]++
	}
	var sources []*source
	for _, s := range bySource {
		sources = append(sources, s)
	}
	slices.SortFunc(sources, func(a, b *source) int {
		if a.Host < b.Host {
			return -1
		}
		if a.Host > b.Host {
			return 1
		}
		return 0
	})
	if g.json {
		if sources == nil {
			sources = []*source{}
		}
		return json.NewEncoder(g.stdout).Encode(map[string]any{
			"run": run, "pick": pick, "seed": seed, "moves": len(todo), "todo": todoPath, "sources": sources})
	}
	fmt.Fprintf(g.stdout, "%d users to move (pick %s, seed %d) → %s\n", len(todo), pick, seed, todoPath)
	for _, s := range sources {
		fmt.Fprintf(g.stdout, "  %-12s %7d users to %d hosts\n", s.Host, s.Users, len(s.To))
	}
	if len(todo) > 0 {
		fmt.Fprintf(g.stdout, "next: maildist run %s\n", run)
	}
	return nil
}
