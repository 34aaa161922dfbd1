package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/stubdir"
	"github.com/maildist/maildist/internal/wire"
)

type stubdirsOptions struct {
	dryRun bool
}

func newStubdirsCommand(g *globals) *cobra.Command {
	var opts stubdirsOptions
	cmd := &cobra.Command{
		Use:   "stubdirs RUN",
		Short: "Make empty homes for the users a survey found without one",
		Long: `For every user listed as missing-home in RUN/raw.tsv, make an empty home at
the path the directory names now, on the host whose root holds it: owned by
the user's uid and gid from the directory, mode 0700; folders above it that
are missing are made root-owned, mode 0711. The next survey sees these
users as ok, the next round moves them, and the accounting can delete the
homes later.

A home that exists now is skipped (the survey may be old), and so is a user
whose move is under way. The homes made are recorded in RUN/stubdirs.tsv
(user host home), so they can be found later. --dry-run says what would be
made and makes nothing.

Users whose home cannot be made (home under no host's root, no uid in the
directory, host root missing) are named; the exit code is then 3.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("stubdirs needs the run folder")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStubdirs(cmd.Context(), opts, g, args[0])
		},
	}
	cmd.Flags().BoolVarP(&opts.dryRun, "dry-run", "n", false, "say what would be made; make nothing")
	return cmd
}

// stubdirsReport is the command's result.
type stubdirsReport struct {
	Run     string           `json:"run"`
	DryRun  bool             `json:"dry_run,omitempty"`
	Record  string           `json:"record,omitempty"` // stubdirs.tsv, when written
	Results []stubdir.Result `json:"results"`
	Counts  map[string]int   `json:"counts"` // by outcome
	BadRows []string         `json:"bad_rows,omitempty"`
}

func runStubdirs(ctx context.Context, opts stubdirsOptions, g *globals, run string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	rawPath := runstate.Path(run, runstate.RawFile)
	rows, rerr := runstate.ReadRaw(rawPath)
	if rerr != nil && rows == nil {
		return withHint(rerr, fmt.Sprintf("run `maildist survey %s` first", run))
	}
	rep := stubdirsReport{Run: run, DryRun: opts.dryRun, Counts: map[string]int{}, Results: []stubdir.Result{}}
	if rerr != nil {
		for _, e := range splitErrors(rerr) {
			rep.BadRows = append(rep.BadRows, e.Error())
		}
	}
	var missing []cluster.User
	for _, u := range rows {
		if u.Status == cluster.StatusMissingHome {
			missing = append(missing, u)
		}
	}

	dir, err := openDirectory(cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	lockDir := filepath.Join(cfg.StateDir, "locks")
	sopt := stubdir.Options{
		Cluster:   cfg.Cluster(),
		Directory: dir,
		Host:      wire.Hosts(cfg),
		DryRun:    opts.dryRun,
		// The lock a move of the user holds (see move.Engine): a home is
		// never made under a move in flight.
		Lock: func(user string) (func(), error) {
			if err := os.MkdirAll(lockDir, 0o700); err != nil {
				return nil, err
			}
			l, err := fsutil.TryLock(filepath.Join(lockDir, user+".lock"))
			if errors.Is(err, fsutil.ErrLocked) {
				return nil, fmt.Errorf("%s is being moved by another process", user)
			}
			if err != nil {
				return nil, err
			}
			return func() { l.Unlock() }, nil
		},
	}
	if !opts.dryRun && os.Geteuid() != 0 && len(missing) > 0 {
		g.logf("warning: not running as root: the homes made are owned by uid %d, not by the users", os.Geteuid())
	}
	rep.Results = stubdir.Make(ctx, sopt, missing)
	for _, r := range rep.Results {
		rep.Counts[r.Outcome]++
	}
	var recErr error
	if !opts.dryRun && rep.Counts[stubdir.Created] > 0 {
		p := runstate.Path(run, stubdir.FileName)
		if recErr = stubdir.Record(p, rep.Results); recErr == nil {
			rep.Record = p
		}
	}
	printStubdirs(g, rep, len(missing), rawPath)
	for _, b := range rep.BadRows {
		g.logf("bad raw.tsv line: %s", b)
	}
	if recErr != nil {
		return withHint(fmt.Errorf("record the homes made: %w", recErr), "the homes listed as created above exist; note them by hand")
	}
	if n := rep.Counts[stubdir.Failed]; n > 0 || len(rep.BadRows) > 0 {
		msg := fmt.Sprintf("%d of %d missing homes could not be made", n, len(missing))
		if len(rep.BadRows) > 0 {
			msg += fmt.Sprintf(", %d bad lines in %s", len(rep.BadRows), rawPath)
		}
		return partialError{msg}
	}
	return nil
}

func printStubdirs(g *globals, rep stubdirsReport, missing int, rawPath string) {
	if g.json {
		json.NewEncoder(g.stdout).Encode(rep)
		return
	}
	if missing == 0 {
		fmt.Fprintf(g.stdout, "no users are missing-home in %s\n", rawPath)
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "user\thost\thome\toutcome\twhy")
	for _, r := range rep.Results {
		why := r.Reason
		if r.Detail != "" {
			if why != "" {
				why += ": "
			}
			why += r.Detail
		}
		if (r.Outcome == stubdir.Created || r.Outcome == stubdir.WouldCreate) && len(r.Made) > 1 {
			if why != "" {
				why += "; "
			}
			why += "with " + strings.Join(r.Made[:len(r.Made)-1], ", ") + " (root, 0711)"
		}
		host := r.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.User, host, r.Home, r.Outcome, why)
	}
	tw.Flush()
	c := rep.Counts
	if rep.DryRun {
		fmt.Fprintf(g.stdout, "dry run: %d homes would be made, %d skipped, %d cannot be made; nothing was changed\n",
			c[stubdir.WouldCreate], c[stubdir.Skipped], c[stubdir.Failed])
		return
	}
	fmt.Fprintf(g.stdout, "%d homes made, %d skipped, %d could not be made", c[stubdir.Created], c[stubdir.Skipped], c[stubdir.Failed])
	if rep.Record != "" {
		fmt.Fprintf(g.stdout, "; recorded in %s", rep.Record)
	}
	fmt.Fprintln(g.stdout)
}
