package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

type doneOptions struct {
	timeout time.Duration
	poll    time.Duration
}

func newDoneCommand(g *globals) *cobra.Command {
	var opts doneOptions
	cmd := &cobra.Command{
		Use:   "done [RUN]",
		Short: "Deliver held mail, remove stubs, purge the trash",
		Long: `Finish a batch of moves (ad-hoc moves, or the moves of RUN): run the flush
command on every host that held mail, wait until the queue holds nothing
more for the moved users (delivery.queue) or --timeout passes, then remove
their stubs and purge their trash. Users whose mail is still queued keep
their stub and are named; run done again later.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDone(cmd.Context(), opts, g, args)
		},
	}
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 10*time.Minute, "how long to wait for the queue to empty")
	cmd.Flags().DurationVar(&opts.poll, "poll", 2*time.Second, "time between queue checks")
	return cmd
}

func runDone(ctx context.Context, opts doneOptions, g *globals, args []string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	jd := filepath.Join(cfg.StateDir, "journal")
	run := ""
	if len(args) == 1 {
		run = args[0]
		if fi, err := os.Stat(run); err != nil || !fi.IsDir() {
			return usagef("run folder %s: %v", run, errOrNotDir(err))
		}
		jd = filepath.Join(run, "journal")
	}
	e, dir, err := newEngine(g, cfg, engineOptions{journalDir: jd})
	if err != nil {
		return err
	}
	defer dir.Close()
	entries, err := e.Done(ctx, move.DoneOptions{
		Flush: cfg.Delivery.Flush, Queue: cfg.Delivery.Queue, Domain: cfg.Domain,
		Timeout: opts.timeout, Poll: opts.poll,
		Log: g.logf,
	})
	if err != nil {
		g.logf("warning: %v", err)
	}
	if run != "" && len(entries) > 0 {
		rows := make([][]string, len(entries))
		for i, d := range entries {
			rows[i] = []string{d.User, d.From, d.To, d.Status, d.Detail}
		}
		if werr := runstate.WriteTSV(filepath.Join(run, runstate.DoneFile), []string{"user", "from", "to", "status", "detail"}, rows); werr != nil {
			return werr
		}
	}
	unfinished, _ := move.Unfinished(jd)
	queued, failed := 0, 0
	out := []map[string]string{}
	for _, d := range entries {
		switch d.Status {
		case move.DoneQueued:
			queued++
		case move.DoneError:
			failed++
		}
		if g.json {
			out = append(out, map[string]string{"user": d.User, "from": d.From, "to": d.To, "status": d.Status, "detail": d.Detail})
			continue
		}
		line := fmt.Sprintf("%s: %s (%s → %s)", d.User, d.Status, d.From, d.To)
		if d.Detail != "" {
			line += ": " + d.Detail
		}
		fmt.Fprintln(g.stdout, line)
	}
	if g.json {
		json.NewEncoder(g.stdout).Encode(map[string]any{"users": out, "queued": queued, "failed": failed, "unfinished_moves": unfinished})
	} else if len(entries) == 0 {
		fmt.Fprintln(g.stdout, "no finished moves waiting for done")
	}
	if unfinished > 0 {
		g.logf("%d move(s) are under way or were interrupted, and are not done's to finish: `maildist recover` finishes or undoes them", unfinished)
	}
	switch {
	case failed > 0:
		return fmt.Errorf("done: %d move(s) could not be finished; see above", failed)
	case queued > 0:
		return partialError{fmt.Sprintf("done: %d user(s) still have mail queued; their stubs stay; run done again later", queued)}
	}
	return err
}
