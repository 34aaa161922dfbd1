package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

func newRecoverCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "recover [RUN...]",
		Short: "Finish or undo every interrupted move",
		Long: `Read the journals of ad-hoc moves (state_dir/journal) and of every run a
runner has worked in (state_dir keeps the list), or only of the runs given,
and finish every move that had switched the directory entry, or undo every
move that had not: staging removed, the held home put back, the hold ended.
Moves whose user is locked by a live maildist are left to it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRecover(cmd.Context(), g, args)
		},
	}
}

// recoverWord says what recover did, in the operator's words.
func recoverWord(r move.Result) string {
	switch r.Outcome {
	case move.OutcomeMoved:
		return "finished"
	case move.OutcomeFailed, move.OutcomeRefused:
		return "undone"
	}
	return r.Outcome
}

func runRecover(ctx context.Context, g *globals, runs []string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	var dirs []string
	if len(runs) == 0 {
		dirs = append(dirs, filepath.Join(cfg.StateDir, "journal"))
		known, err := runstate.KnownRuns(cfg.StateDir)
		if err != nil {
			return err
		}
		runs = known
	} else {
		for _, r := range runs {
			if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
				return usagef("run folder %s: %v", r, errOrNotDir(err))
			}
		}
	}
	for _, r := range runs {
		dirs = append(dirs, filepath.Join(r, "journal"))
	}
	stuck := 0
	var all []move.Result
	for _, d := range dirs {
		// A run's moves end in its log too, as they would had its runner
		// finished them: status then counts how long they held users.
		var log *runstate.Log
		logPath := filepath.Join(filepath.Dir(d), runstate.LogFile)
		if _, err := os.Stat(logPath); err == nil && filepath.Dir(d) != cfg.StateDir {
			if log, err = runstate.OpenLog(logPath); err != nil {
				g.logf("warning: %v", err)
			}
		}
		e, dir, err := newEngine(g, cfg, engineOptions{journalDir: d, log: log})
		if err != nil {
			if log != nil {
				log.Close()
			}
			return err
		}
		rs, err := e.Recover(ctx)
		dir.Close()
		if log != nil {
			log.Close()
		}
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
		out := []map[string]any{}
		for _, r := range all {
			m := map[string]any{"user": r.User, "from": r.From, "to": r.To, "outcome": recoverWord(r), "reason": r.Reason, "held_ms": r.Held.Milliseconds()}
			if r.Err != nil {
				m["error"] = r.Err.Error()
			}
			out = append(out, m)
		}
		json.NewEncoder(g.stdout).Encode(map[string]any{"results": out, "stuck": stuck})
	} else {
		for _, r := range all {
			held := ""
			if r.Held > 0 {
				held = " (held " + heldText(r.Held) + ", the time maildist was down included)"
			}
			switch r.Outcome {
			case move.OutcomeMoved:
				fmt.Fprintf(g.stdout, "%s: finished the move %s → %s; the user is on %s%s\n", r.User, r.From, r.To, r.To, held)
			case move.OutcomeFailed, move.OutcomeRefused:
				fmt.Fprintf(g.stdout, "%s: undid the move %s → %s (it was %s); the user is on %s%s\n", r.User, r.From, r.To, r.Reason, r.From, held)
			case move.OutcomeInFlight:
				fmt.Fprintf(g.stdout, "%s: the move %s → %s is being made by a running maildist; left to it\n", r.User, r.From, r.To)
			case move.OutcomeStuck:
				fmt.Fprintf(g.stdout, "%s: could not recover the move %s → %s: %v\n", r.User, r.From, r.To, r.Err)
			default:
				fmt.Fprintf(g.stdout, "%s: nothing to do (%s)\n", r.User, r.Outcome)
			}
		}
		if len(all) == 0 {
			fmt.Fprintf(g.stdout, "nothing to recover (looked in %d journal folder(s))\n", len(dirs))
		}
	}
	if stuck > 0 {
		return fmt.Errorf("%d move(s) could not be recovered; see above", stuck)
	}
	return nil
}
