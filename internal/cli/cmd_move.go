package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/wire"
)

type moveOptions struct {
	force       bool
	local       bool
	allowUnsafe bool
	noPreCopy   bool
	kick        bool
	allowClosed bool
}

func newMoveCommand(g *globals) *cobra.Command {
	var opts moveOptions
	cmd := &cobra.Command{
		Use:   "move [--force|--local] USER HOST",
		Short: "Move one user's mailbox to another host, now",
		Long: `Move one user's home to HOST: check, hold delivery, wait for open files to
close, copy to staging, verify, commit, switch the directory entry, leave a
stub that forwards mail still queued on the old host, and release.

Several moves in a row form one batch; run "maildist done" after the last to
deliver the held mail and remove the stubs. A move that is interrupted is
finished or undone by "maildist recover".

A user with a live session is not moved: --local checks only the source
host, --force skips the check.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("move needs USER and HOST (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMove(cmd.Context(), opts, g, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.force, "force", false, "move even if the user has a live session")
	f.BoolVar(&opts.local, "local", false, "check for live sessions on the source host only")
	f.BoolVar(&opts.allowUnsafe, "unsafe-hold", false, "hold by renaming even where the user could recreate the home (mail may land in a new empty home; it is carried over)")
	f.BoolVar(&opts.kick, "kick", false, "end the user's live sessions once delivery is held, instead of refusing (doveadm kick, or signals with activity proc)")
	f.BoolVar(&opts.allowClosed, "allow-closed", false, "move to a host with accept_new = false all the same")
	f.BoolVar(&opts.noPreCopy, "no-precopy", false, "copy only under the hold (the user waits for the whole copy)")
	cmd.MarkFlagsMutuallyExclusive("force", "local")
	return cmd
}

func runMove(ctx context.Context, opts moveOptions, g *globals, args []string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	e, dir, err := newEngine(g, cfg, engineOptions{allowUnsafe: opts.allowUnsafe, noPreCopy: opts.noPreCopy})
	if err != nil {
		return err
	}
	defer dir.Close()
	warnUnfinished(g, cfg, args[0])
	r := e.Move(ctx, move.Request{User: args[0], To: args[1], Force: opts.force, Local: opts.local, Kick: opts.kick, AllowClosed: opts.allowClosed})
	printResult(g, r)
	return resultError(r)
}

func printResult(g *globals, r move.Result) {
	if g.json {
		out := map[string]any{"user": r.User, "from": r.From, "to": r.To, "outcome": r.Outcome,
			"reason": r.Reason, "bytes": r.Bytes, "held_ms": r.Held.Milliseconds()}
		if r.Err != nil {
			out["error"] = r.Err.Error()
		}
		json.NewEncoder(g.stdout).Encode(out)
		return
	}
	switch r.Outcome {
	case move.OutcomeMoved:
		fmt.Fprintf(g.stdout, "%s: moved %s → %s (%s copied, held %s)\n", r.User, r.From, r.To, humanBytes(r.Bytes), heldText(r.Held))
	default:
		held := ""
		if r.Held > 0 {
			held = ", held " + heldText(r.Held)
		}
		fmt.Fprintf(g.stdout, "%s: %s (%s%s)\n", r.User, r.Outcome, r.Reason, held)
	}
}

// resultError maps a move's outcome to the command's error.
func resultError(r move.Result) error {
	switch r.Outcome {
	case move.OutcomeMoved:
		return nil
	case move.OutcomeStuck:
		return withHint(r.Err, "run `maildist recover` to finish or undo it")
	case move.OutcomeRefused, move.OutcomeFailed:
		if r.Reason == move.ReasonBadUser || r.Reason == move.ReasonUnknownHost {
			return usageError{r.Err}
		}
		return partialError{fmt.Sprintf("%s not moved: %v", r.User, r.Err)}
	}
	return r.Err
}

// warnUnfinished names the users (but the one given) whose moves (ad-hoc or in
// any known run) have not finished: moves under way in another process,
// or cut short, whose users may be held until `maildist recover` runs.
func warnUnfinished(g *globals, cfg *config.Config, but string) {
	var users []string
	for _, d := range wire.JournalDirs(cfg) {
		us, _ := move.UnfinishedUsers(d)
		for _, u := range us {
			if u != but && !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
	}
	if len(users) == 0 {
		return
	}
	sort.Strings(users)
	named := strings.Join(users[:min(len(users), 10)], ", ")
	if len(users) > 10 {
		named += fmt.Sprintf(", and %d more", len(users)-10)
	}
	g.logf("warning: unfinished moves of %s: under way in another maildist, or cut short and perhaps still held; if no other maildist is running, run `maildist recover`", named)
}
