package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/run"
)

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status RUN",
		Short: "Where a run stands: per host planned, moved, refused, failed, left",
		Long: `Read RUN's todo.tsv, journals and log.jsonl and show, per source host, how
many moves were planned, made, refused and failed and how many are left,
the reasons, the users refused most often, how long users were held, and
whether done has run. Nothing is changed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("status needs the run folder")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), g, args[0])
		},
	}
}

func runStatus(ctx context.Context, g *globals, dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("run folder %s: %v", dir, errOrNotDir(err))
	}
	s, err := run.ReadStatus(dir)
	if err != nil {
		return err
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(s)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "host\tplanned\tmoved\trefused\tfailed\tleft\treasons\t")
	for _, h := range append(s.Hosts, s.Total) {
		var rs []string
		for _, r := range sortedKeys(h.Reasons) {
			rs = append(rs, fmt.Sprintf("%s %d", r, h.Reasons[r]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", h.Host, h.Planned, h.Moved, h.Refused, h.Failed, h.Left, strings.Join(rs, ", "))
	}
	tw.Flush()
	if h := s.HeldMS; h.Count > 0 {
		fmt.Fprintf(g.stdout, "\nheld: %s, median %dms, 95th percentile %dms, longest %dms, %dms in all\n", plural(h.Count, "move", "moves"), h.Median, h.P95, h.Max, h.Total)
	}
	if len(s.MostTried) > 0 {
		fmt.Fprintln(g.stdout, "\nusers not moved yet, most tried first:")
		for _, u := range s.MostTried {
			perm := ""
			if u.Forever {
				perm = " (not retried)"
			}
			fmt.Fprintf(g.stdout, "  %s %s→%s: %s, last %s%s\n", u.User, u.From, u.To, plural(u.Tries, "try", "tries"), u.Last, perm)
		}
	}
	if s.InFlight > 0 {
		fmt.Fprintf(g.stdout, "\n%d move(s) under way or interrupted, their users' mail held meanwhile: %s\n(if no runner is working, `maildist recover` finishes or undoes them)\n",
			s.InFlight, strings.Join(s.InFlightUsers, ", "))
	}
	switch {
	case s.Total.Moved == 0:
	case s.Finished >= s.Total.Moved:
		fmt.Fprintf(g.stdout, "\ndone has run: every moved user's held mail was flushed and stub removed\n")
	case s.DoneRan:
		fmt.Fprintf(g.stdout, "\ndone has run, but %d of %d moved users are not finished (mail still queued, or moved since): run `maildist done %s`\n", s.Total.Moved-s.Finished, s.Total.Moved, dir)
	default:
		fmt.Fprintf(g.stdout, "\ndone has not run: run `maildist done %s` when the moves are over\n", dir)
	}
	for _, b := range s.Bad {
		fmt.Fprintf(g.stderr, "bad todo line: %s\n", b)
	}
	return nil
}

// plural is "1 move", "2 moves".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
