package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/assign"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/plan"
	"github.com/maildist/maildist/internal/runstate"
)

// Files the plan command writes besides the run files of runstate.
const (
	reportFile   = "report.html"
	planOptsFile = "plan.json"
)

type planOptions struct {
	hostsFile  string
	across     bool
	pick       string
	seed       uint64
	tolerance  int
	thresholds string
	svg        string
}

func newPlanCommand(g *globals) *cobra.Command {
	var opts planOptions
	cmd := &cobra.Command{
		Use:   "plan RUN",
		Short: "Work out a balanced spread and how many users move where",
		Long: `Read RUN/raw.tsv and the hosts, and work out, for every pool and class of
user, how many users each host should hold (its weighted share, to within one
user) and the fewest moves that get there. Writes:

  RUN/moves.tsv     class from to count
  RUN/sort.tsv      the movable users, in random order, for "maildist assign"
  RUN/report.html   pictures and numbers to approve the plan by
  RUN/plan.json     the options used, so "maildist assign" picks the same users

and prints a wide table: per host its share (the users its weight alone gives
it) and its goal (the users the plan can bring it to), users, bytes and
connect time now→after, and its count in each class now→after (37→35: two
leave), then the checks report.html opens with.

Classes are cXdY: X the connect-time bucket, Y the disk bucket, 0 for none and
1-4 split at the quartiles of the non-zero values, or at --thresholds, e.g.
  --thresholds c=10m,1h,8h:d=1M,50M,1G
(c in seconds, or with s/m/h/d; d in bytes, or with K/M/G/T, powers of 1024).

A host with drain = true (or weight 0) is emptied. A host with accept_new =
false never receives: in each class it keeps at most the ceiling of its
share, and if it has less, keeps what it has; the accepting hosts share the
rest, so their goals differ from their shares (the plan says by how much).
Users whose status is not ok are never moved and are listed.

--tolerance K leaves a host alone in a class while it is within K users of
its band: fewer moves, looser balance. K is per class and adds up over the
classes, so a host's total may end far from its goal (a new host can end
with few users); the plan names such hosts, with what an exact plan gives.

--hosts FILE takes the [[host]] tables from FILE instead of the config, for a
temporary weighting or to drain a host for this plan only. FILE may give other
weights, drain = true and accept_new = false; it must name only hosts of the
config, with the same roots and pools, and must not let a host receive that
the config drains or gives accept_new = false: run would refuse those moves,
so plan refuses such a file, naming its lines.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("plan needs the run folder RUN (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), opts, g, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.hostsFile, "hosts", "", "take the [[host]] tables from `FILE` instead of the config")
	f.BoolVar(&opts.across, "across-pools", false, "balance over all hosts together instead of pool by pool")
	f.StringVar(&opts.pick, "pick", "random", "which users go: random, idle (least recently active first) or small (fewest bytes first)")
	f.Uint64Var(&opts.seed, "seed", 0, "seed of the random orders (0: derived from raw.tsv, so the same survey gives the same plan)")
	f.IntVar(&opts.tolerance, "tolerance", 0, "leave a host alone when it is within `K` users of its band in a class")
	f.StringVar(&opts.thresholds, "thresholds", "", "class bounds, e.g. c=10m,1h,8h:d=1M,50M,1G (default: quartiles)")
	f.StringVar(&opts.svg, "svg", "", "also write the summary picture, for mail, to `FILE`")
	return cmd
}

// planFile is RUN/plan.json: what assign needs to pick the same users the
// plan's report counted.
type planFile struct {
	Pick        string `json:"pick"`
	Seed        uint64 `json:"seed"`
	Tolerance   int    `json:"tolerance"`
	AcrossPools bool   `json:"across_pools"`
	Thresholds  string `json:"thresholds"`
	Hosts       string `json:"hosts,omitempty"`
	Moves       int    `json:"moves"`  // users moves.tsv moves, in all
	Sorted      int    `json:"sorted"` // rows of sort.tsv
}

func runPlan(ctx context.Context, opts planOptions, g *globals, run string) error {
	pick, err := assign.ParsePolicy(opts.pick)
	if err != nil {
		return usagef("--pick: %v", err)
	}
	if opts.tolerance < 0 {
		return usagef("--tolerance %d: must not be negative", opts.tolerance)
	}
	popt := plan.Options{AcrossPools: opts.across, Tolerance: opts.tolerance, Pick: pick, Seed: opts.seed}
	if opts.thresholds != "" {
		if popt.Thresholds, err = plan.ParseThresholds(opts.thresholds); err != nil {
			return usagef("--%v", err)
		}
	}
	hosts, err := planHosts(g, opts.hostsFile)
	if err != nil {
		return err
	}

	t0 := time.Now()
	users, err := readRaw(run)
	if err != nil {
		return err
	}
	t1 := time.Now()
	if err := ctx.Err(); err != nil {
		return err
	}
	warnPools(g, run, users, hosts)
	p, err := plan.Make(users, hosts, popt)
	if err != nil {
		if errors.Is(err, plan.ErrDuplicate) {
			return duplicateLines(run, err)
		}
		return planError(err, opts.hostsFile, hosts, opts.across)
	}
	t2 := time.Now()

	title := "maildist plan: " + run
	if abs, err := filepath.Abs(run); err == nil {
		title = "maildist plan: " + filepath.Base(abs)
	}
	// plan.json goes first and comes back last, so that a plan cut short
	// leaves no plan.json beside files of two different plans.
	if err := os.Remove(runstate.Path(run, planOptsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// sort.tsv, a line for every movable user, is written beside the rest.
	sortDone := make(chan error, 1)
	go func() { sortDone <- runstate.WriteSort(runstate.Path(run, runstate.SortFile), p.Sort) }()
	err = errors.Join(
		runstate.WriteMoves(runstate.Path(run, runstate.MovesFile), p.Moves),
		writeWith(runstate.Path(run, reportFile), func(w io.Writer) error { return p.WriteHTML(w, title) }),
	)
	if err == nil && opts.svg != "" {
		err = writeWith(opts.svg, func(w io.Writer) error { return p.WriteSVG(w, title) })
	}
	if err = errors.Join(err, <-sortDone); err != nil {
		return err
	}
	// plan.json last: assign reads it as the sign of a whole plan.
	pf := planFile{Pick: string(p.Options.Pick), Seed: p.Options.Seed, Tolerance: p.Options.Tolerance,
		AcrossPools: p.Options.AcrossPools, Thresholds: p.Thresholds.String(), Hosts: opts.hostsFile,
		Moves: p.Stats.Moves, Sorted: len(p.Sort)}
	if err := writeJSONFile(runstate.Path(run, planOptsFile), pf); err != nil {
		return err
	}
	t3 := time.Now()
	if g.verbose {
		g.logf("plan: read %d rows in %.2fs, planned in %.2fs, wrote the files in %.2fs",
			len(users), t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t3.Sub(t2).Seconds())
	}

	if g.json {
		return json.NewEncoder(g.stdout).Encode(struct {
			Run string `json:"run"`
			plan.Summary
		}{run, p.Summary()})
	}
	if err := p.WriteText(g.stdout); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s, %s and %s; next: maildist assign %s\n",
		runstate.Path(run, runstate.MovesFile), runstate.Path(run, runstate.SortFile), runstate.Path(run, reportFile), run)
	return nil
}

// planHosts returns the hosts from --hosts FILE, else from the config. A
// hosts file must agree with the config on which hosts there are, their
// roots and pools, and on which hosts may not receive (see
// config.HostFile.CheckAgainst): run, which reads the config, would
// refuse the moves of a plan made otherwise.
//
// Without any config file (a plan worked out away from the cluster, as
// bench/plan does) a hosts file is taken as it is, with a warning.
func planHosts(g *globals, file string) ([]*cluster.Host, error) {
	cfg, err := g.loadConfig()
	if file != "" && errors.Is(err, fs.ErrNotExist) {
		g.logf("warning: no config to check %s against (%v): run will refuse moves into hosts its config lacks or drains", file, err)
		return config.LoadHosts(file)
	}
	if err != nil {
		return nil, err
	}
	if file == "" {
		return cfg.Hosts, nil
	}
	hf, err := config.ReadHostFile(file)
	if err != nil {
		return nil, err
	}
	cf, err := config.ReadHostFile(cfg.Path)
	if err != nil {
		return nil, err
	}
	if err := hf.CheckAgainst(cf); err != nil {
		return nil, withHint(fmt.Errorf("%s does not fit %s, so no plan was made:\n%w", file, cfg.Path, err),
			"a hosts file may change weights, drain more hosts or stop more from receiving; anything else belongs in "+cfg.Path)
	}
	return hf.Hosts, nil
}

// readRaw reads RUN/raw.tsv and refuses it whole if a line is bad: a plan
// made without some users would put the others in the wrong places.
func readRaw(run string) ([]cluster.User, error) {
	path := runstate.Path(run, runstate.RawFile)
	users, err := runstate.ReadRaw(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(fmt.Errorf("read %s: no such file", path), "run `maildist survey "+run+"` first")
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("%s has bad lines, so no plan was made:\n%w", path, err), "fix the lines, or survey again")
	}
	return users, nil
}

func planError(err error, hostsFile string, hosts []*cluster.Host, across bool) error {
	where := "the config"
	if hostsFile != "" {
		where = hostsFile
	}
	switch {
	case errors.Is(err, plan.ErrUnknownHost):
		return withHint(fmt.Errorf("raw.tsv names %w", err),
			"add them to "+where+" ([[host]] tables); to empty a host, give it drain = true")
	case errors.Is(err, plan.ErrNoWeight), errors.Is(err, plan.ErrNoReceiver):
		// --across-pools helps only if a host of another pool may receive.
		var receivers []string
		for _, h := range hosts {
			if !h.Drain && h.Weight > 0 && h.AcceptNew {
				receivers = append(receivers, h.Name)
			}
		}
		if across || len(receivers) == 0 {
			return withHint(err, "every host drains, has weight 0 or takes no new users, so the users have nowhere to go: give at least one host weight > 0, drain = false and accept_new = true in "+where)
		}
		return withHint(err, "give some host of the pool weight > 0, drain = false and accept_new = true in "+where+
			", or plan with --across-pools to send the users to hosts of other pools that receive ("+strings.Join(receivers[:min(len(receivers), 5)], ", ")+moreSuffix(len(receivers), 5)+")")
	}
	return err
}

func moreSuffix(n, shown int) string {
	if n <= shown {
		return ""
	}
	return fmt.Sprintf(" and %d more", n-shown)
}

// duplicateLines replaces the plan's "user listed twice" with the lines
// of raw.tsv that list a user again, and the line that listed it first.
func duplicateLines(run string, planErr error) error {
	path := runstate.Path(run, runstate.RawFile)
	rows, _ := runstate.ReadTSV(path, runstate.RawColumns)
	type seen struct {
		line int
		host string
	}
	first := make(map[string]seen, len(rows))
	var bad []error
	n := 0
	for _, r := range rows {
		name, host := r.Fields[0], r.Fields[1]
		f, ok := first[name]
		if !ok {
			first[name] = seen{r.Line, host}
			continue
		}
		if n++; n <= 10 {
			bad = append(bad, &runstate.LineError{File: path, Line: r.Line,
				Msg: fmt.Sprintf("user %s is listed twice: here on %s, and on line %d on %s", name, orNoHost(host), f.line, orNoHost(f.host))})
		}
	}
	if n == 0 { // not found again in the file: say what the plan said
		return withHint(planErr, "survey again")
	}
	if n > 10 {
		bad = append(bad, fmt.Errorf("and %d more lines that list a user again", n-10))
	}
	return withHint(fmt.Errorf("%s lists users twice, so no plan was made:\n%w", path, errors.Join(bad...)),
		"a user has one home: survey again, or remove the wrong lines")
}

func orNoHost(h string) string {
	if h == "" {
		return "no host"
	}
	return h
}

// warnPools says which raw.tsv lines give a host another pool than the
// host list: the plan goes by the host list. The file is read again for
// the line numbers only if some row differs.
func warnPools(g *globals, run string, users []cluster.User, hosts []*cluster.Host) {
	pool := make(map[string]string, len(hosts))
	for _, h := range hosts {
		pool[h.Name] = h.Pool
	}
	differ := false
	for i := range users {
		u := &users[i]
		if p, ok := pool[u.Host]; ok && u.Pool != "" && u.Pool != p {
			differ = true
			break
		}
	}
	if !differ {
		return
	}
	path := runstate.Path(run, runstate.RawFile)
	rows, _ := runstate.ReadTSV(path, runstate.RawColumns)
	const shown = 10
	n := 0
	for _, r := range rows {
		host, rp := r.Fields[1], r.Fields[2]
		if p, ok := pool[host]; ok && rp != "" && rp != p {
			if n++; n <= shown {
				g.logf("warning: %s:%d: pool %q, but the config puts host %s in pool %q; the plan goes by the config", path, r.Line, rp, host, p)
			}
		}
	}
	if n > shown {
		g.logf("warning: and %d more lines like it in %s", n-shown, path)
	}
}

// writeWith writes a file atomically.
func writeWith(path string, fill func(io.Writer) error) error {
	return fsutil.WriteWith(path, 0o644, fill)
}

func writeJSONFile(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return fsutil.WriteFile(path, b.Bytes(), 0o644)
}

// readPlanFile reads RUN/plan.json; ok is false if there is none.
func readPlanFile(run string) (pf planFile, ok bool, err error) {
	path := runstate.Path(run, planOptsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pf, false, nil
	}
	if err != nil {
		return pf, false, err
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		return pf, false, fmt.Errorf("%s: %v", path, err)
	}
	return pf, true, nil
}
