package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/move"
)

func newRecoverCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "recover [RUN...]",
		Short: "Finish or undo every interrupted move",
		Long: `Read the journals of ad-hoc moves (state_dir/journal) and of each RUN given,
and finish every move that had switched the directory entry, or undo every
move that had not: staging removed, the held home put back, the hold ended.
Moves whose user is locked by a live maildist are left alone.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecover(cmd.Context(), g, args)
		},
	}
}

func runRecover(ctx context.Context, g *globals, runs []string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	dirs := []string{filepath.Join(cfg.StateDir, "journal")}
	for _, r := range runs {
		dirs = append(dirs, filepath.Join(r, "journal"))
	}
	stuck := 0
	var all []move.Result
	for _, d := range dirs {
		e, dir, err := newEngine(g, cfg, engineOptions{journalDir: d})
		if err != nil {
			return err
		}
		rs, err := e.Recover(ctx)
		dir.Close()
		if err != nil {
			g.logf("warning: %v", err)
		}
		for _, r := range rs {
			if r.Outcome == move.OutcomeStuck {
				stuck++
			}
		}
		all = append(all, rs...)
	}
	if g.json {
		for _, r := range all {
			printResult(g, r)
		}
	} else {
		for _, r := range all {
			switch r.Outcome {
			case move.OutcomeMoved:
				fmt.Fprintf(g.stdout, "%s: finished the move %s → %s\n", r.User, r.From, r.To)
			case move.OutcomeFailed, move.OutcomeRefused:
				fmt.Fprintf(g.stdout, "%s: undid the move %s → %s (%s); the user is on %s\n", r.User, r.From, r.To, r.Reason, r.From)
			case move.OutcomeStuck:
				fmt.Fprintf(g.stdout, "%s: could not recover the move %s → %s: %v\n", r.User, r.From, r.To, r.Err)
			default:
				fmt.Fprintf(g.stdout, "%s: nothing to do (%s)\n", r.User, r.Outcome)
			}
		}
		if len(all) == 0 {
			fmt.Fprintln(g.stdout, "nothing to recover")
		}
	}
	if stuck > 0 {
		return fmt.Errorf("%d move(s) could not be recovered; see above", stuck)
	}
	return nil
}
