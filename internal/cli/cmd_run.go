package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/run"
	"github.com/maildist/maildist/internal/runstate"
)

type runOptions struct {
	hosts     []string
	parallel  int
	perHost   int
	loop      time.Duration
	maxRounds int
	until     string
	bwlimit   string
	force     bool
	local     bool
	progress  string
	noPreCopy bool
	kick      bool
}

func newRunCommand(g *globals) *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run RUN [--host H ...]",
		Short: "Carry out the moves of RUN/todo.tsv, resuming where it left off",
		Long: `Carry out the moves of RUN/todo.tsv whose source is one of the given hosts
(every host when none is named): up to --parallel at once, at most
--per-host touching any one host. Moves already done (by the run's
journals) are skipped; what is left for each host is written to
RUN/todo.HOST.tsv and every step to RUN/log.jsonl.

With --loop, rounds go on until nothing is left that can still succeed:
users refused for a live session are tried again each round; permanent
failures (missing home, destination exists, verify failed twice) are not.

Runners for different hosts may run at once on one run folder, as the
seed's mdist4 ran on every mailer. Interrupt with Ctrl-C: moves in flight
are finished or undone; a second Ctrl-C stops at once, and "maildist
recover RUN" completes the rest.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("run needs the run folder (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), opts, g, args[0])
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.hosts, "host", nil, "take the moves from this host (repeat, or comma-separate)")
	f.IntVar(&opts.parallel, "parallel", 2, "moves at once")
	f.IntVar(&opts.perHost, "per-host", 1, "moves at once touching one host (as source or destination)")
	f.DurationVar(&opts.loop, "loop", 0, "run rounds until done, sleeping this long between them (e.g. 30m)")
	f.IntVar(&opts.maxRounds, "max-rounds", 0, "stop after this many rounds (default: 1, or no limit with --loop)")
	f.StringVar(&opts.until, "until", "", "start no move after this time (RFC 3339, or HH:MM today)")
	f.StringVar(&opts.bwlimit, "bwlimit", "", "cap copy bandwidth, bytes per second (e.g. 50M, 800k)")
	f.BoolVar(&opts.force, "force", false, "move users even if they have a live session")
	f.BoolVar(&opts.local, "local", false, "check live sessions on the source host only")
	f.StringVar(&opts.progress, "progress", "auto", "progress display on stderr: auto, bars, lines, none")
	f.BoolVar(&opts.kick, "kick", false, "end users' live sessions once delivery is held, instead of refusing them")
	f.BoolVar(&opts.noPreCopy, "no-precopy", false, "copy only under the hold (users wait for the whole copy)")
	cmd.MarkFlagsMutuallyExclusive("force", "local")
	return cmd
}

// parseRate reads a byte rate like 50M, 800k, 1.5G or 1000000.
func parseRate(s string) (float64, error) {
	mult := 1.0
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/s"), "B")
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:len(t)-1]
		case 'm', 'M':
			mult, t = 1e6, t[:len(t)-1]
		case 'g', 'G':
			mult, t = 1e9, t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--bwlimit %q: want a rate like 50M or 800k (bytes per second)", s)
	}
	return v * mult, nil
}

// parseUntil reads an RFC 3339 time or HH:MM (today, or tomorrow if past).
func parseUntil(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("15:04", s, now.Location()); err == nil {
		d := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
		if d.Before(now) {
			d = d.Add(24 * time.Hour)
		}
		return d, nil
	}
	return time.Time{}, fmt.Errorf("--until %q: want an RFC 3339 time or HH:MM", s)
}

func runRun(ctx context.Context, opts runOptions, g *globals, dir string) error {
	until, err := parseUntil(opts.until, time.Now())
	if err != nil {
		return usageError{err}
	}
	var limit *rate.Limiter
	if opts.bwlimit != "" {
		r, err := parseRate(opts.bwlimit)
		if err != nil {
			return usageError{err}
		}
		limit = rate.NewLimiter(rate.Limit(r), int(max(r/4, 1<<20)))
	}
	if opts.parallel < 1 || opts.perHost < 1 {
		return usagef("--parallel and --per-host must be at least 1")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("run folder %s: %v", dir, errOrNotDir(err))
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	c := cfg.Cluster()
	for _, h := range opts.hosts {
		if _, ok := c.Host(h); !ok {
			return usagef("--host %s: no such host in %s", h, cfg.Path)
		}
	}

	// recover without arguments looks in every run a runner has used.
	if err := runstate.RememberRun(cfg.StateDir, dir); err != nil {
		return err
	}
	rep := newRunReporter(g, opts.progress)
	defer rep.close()
	log, err := runstate.OpenLog(filepath.Join(dir, runstate.LogFile))
	if err != nil {
		return err
	}
	defer log.Close()
	e, d, err := newEngine(rep.globals(), cfg, engineOptions{journalDir: filepath.Join(dir, "journal"), batch: dir, log: log, noPreCopy: opts.noPreCopy})
	if err != nil {
		return err
	}
	defer d.Close()
	e.Copier = &host.LocalCopier{Limit: limit, Options: e.Copier.(*host.LocalCopier).Options}
	if lc, ok := e.Copier.(*host.LocalCopier); ok {
		inner := lc.Options.Progress
		lc.Options.Progress = func(n int64) {
			rep.copied(n)
			if inner != nil {
				inner(n)
			}
		}
	}

	sum, err := run.Run(ctx, e, run.Options{
		Dir: dir, Hosts: opts.hosts, Parallel: opts.parallel, PerHost: opts.perHost,
		Loop: opts.loop, MaxRounds: opts.maxRounds, Until: until,
		Force: opts.force, Local: opts.local, Kick: opts.kick, Progress: rep,
		KnownHost: func(h string) bool { _, ok := c.Host(h); return ok },
	})
	rep.close()
	if sum != nil && sum.Bad != nil {
		for _, line := range strings.Split(sum.Bad.Error(), "\n") {
			g.logf("skipped: %s", line)
		}
	}
	if err != nil {
		return err
	}
	printRunSummary(g, sum)
	switch {
	case len(sum.Stuck) > 0:
		return withHint(fmt.Errorf("%d move(s) could not be finished or undone: %s", len(sum.Stuck), strings.Join(sum.Stuck, ", ")),
			"run `maildist recover "+dir+"`")
	case sum.Left > 0 || sum.Bad != nil:
		return partialError{fmt.Sprintf("%d of %d users not moved; see %s/todo.HOST.tsv and `maildist status %s`", sum.Left, sum.Planned, dir, dir)}
	}
	return nil
}

func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("not a folder")
}

func printRunSummary(g *globals, s *run.Summary) {
	if g.json {
		json.NewEncoder(g.stdout).Encode(map[string]any{
			"rounds": s.Rounds, "planned": s.Planned, "moved": s.Moved, "already": s.Already,
			"left": s.Left, "refused": s.Refused, "failed": s.Failed, "permanent": s.Permanent,
			"bytes": s.Bytes, "held_moves": s.HeldMoves, "held_undone": s.HeldUndone, "held_ms": s.Held.Milliseconds(), "max_held_ms": s.MaxHeld.Milliseconds(),
			"stuck": s.Stuck, "stopped": s.Stopped,
		})
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "planned\t%d\n", s.Planned)
	fmt.Fprintf(tw, "moved now\t%d\t(%s)\n", s.Moved, humanBytes(s.Bytes))
	if s.HeldMoves > 0 {
		undone := ""
		if s.HeldUndone > 0 {
			undone = fmt.Sprintf(", %d of them undone", s.HeldUndone)
		}
		fmt.Fprintf(tw, "held\t%d\t(%s in all, longest %s%s)\n", s.HeldMoves, s.Held, s.MaxHeld, undone)
	}
	fmt.Fprintf(tw, "moved before\t%d\n", s.Already)
	for _, kind := range []struct {
		name string
		m    map[string]int
	}{{"refused", s.Refused}, {"failed", s.Failed}} {
		for _, r := range sortedKeys(kind.m) {
			perm := ""
			if n := s.Permanent[r]; n > 0 {
				perm = fmt.Sprintf("(%d for good)", n)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s %s\n", kind.name, kind.m[r], r, perm)
		}
	}
	fmt.Fprintf(tw, "left\t%d\n", s.Left)
	fmt.Fprintf(tw, "rounds\t%d\n", s.Rounds)
	if s.Stopped {
		fmt.Fprintf(tw, "stopped\tbefore the end (signal or --until)\n")
	}
	tw.Flush()
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// runReporter shows a run's progress on stderr: bars on a terminal, one
// line per move otherwise.
type runReporter struct {
	g       *globals
	mode    string // bars, lines, none
	mu      sync.Mutex
	p       *mpb.Progress
	bar     *mpb.Bar
	total   int
	done    int
	bytes   atomic.Int64
	start   time.Time
	current map[int]string
	closed  bool
}

func newRunReporter(g *globals, mode string) *runReporter {
	if mode == "auto" {
		mode = "lines"
		if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bars"
		}
	}
	return &runReporter{g: g, mode: mode, start: time.Now(), current: map[int]string{}}
}

// globals returns globals whose stderr prints above the bars.
func (r *runReporter) globals() *globals {
	g := *r.g
	g.stderr = writerFunc(func(b []byte) (int, error) {
		r.mu.Lock()
		p := r.p
		r.mu.Unlock()
		if p != nil {
			if n, err := p.Write(b); err == nil {
				return n, nil
			}
		}
		return r.g.stderr.Write(b)
	})
	return &g
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (r *runReporter) copied(n int64) { r.bytes.Add(n) }

func (r *runReporter) rate() float64 {
	el := time.Since(r.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(r.bytes.Load()) / el
}

func (r *runReporter) Round(n, todo int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total, r.done = todo, 0
	switch r.mode {
	case "bars":
		if r.p == nil {
			r.p = mpb.New(mpb.WithOutput(r.g.stderr), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond))
		}
		if r.bar != nil {
			r.bar.Abort(false)
		}
		r.bar = r.p.AddBar(int64(todo),
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("round %d ", n)), decor.CountersNoUnit("%d/%d users")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return r.status() })))
	case "lines":
		fmt.Fprintf(r.g.stderr, "%s round %d: %s to try\n", time.Now().Format("15:04:05"), n, plural(todo, "move", "moves"))
	}
}

// status is the text after the bar: bytes, rate, who is moving.
func (r *runReporter) status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var who []string
	for w := 1; w <= len(r.current)+8; w++ {
		if u, ok := r.current[w]; ok {
			who = append(who, u)
		}
	}
	return fmt.Sprintf(" %s  %s/s  %s", humanBytes(r.bytes.Load()), humanBytes(int64(r.rate())), strings.Join(who, " "))
}

func (r *runReporter) Start(worker int, t cluster.Todo) {
	r.mu.Lock()
	r.current[worker] = t.User
	r.mu.Unlock()
}

func (r *runReporter) Finish(worker int, t cluster.Todo, res move.Result) {
	r.mu.Lock()
	delete(r.current, worker)
	r.done++
	done, total := r.done, r.total
	bar := r.bar
	r.mu.Unlock()
	switch r.mode {
	case "bars":
		bar.Increment()
	case "lines":
		eta := ""
		if el := time.Since(r.start); done > 0 && total > done {
			eta = ", ETA " + (el / time.Duration(done) * time.Duration(total-done)).Round(time.Second).String()
		}
		what := res.Outcome
		if res.Reason != "" {
			what += " (" + res.Reason + ")"
		}
		if res.Outcome == move.OutcomeMoved {
			what += fmt.Sprintf(" %s copied, held %s", humanBytes(res.Bytes), heldText(res.Held))
		}
		fmt.Fprintf(r.g.stderr, "%s [%d/%d] %s %s→%s %s; %s/s%s\n", time.Now().Format("15:04:05"), done, total, t.User, t.From, t.To, what, humanBytes(int64(r.rate())), eta)
	}
}

func (r *runReporter) Waiting(next time.Time, left int) {
	r.mu.Lock()
	if r.bar != nil {
		r.bar.Abort(false)
		r.bar = nil
	}
	r.mu.Unlock()
	if r.mode != "none" {
		fmt.Fprintf(r.globals().stderr, "%s %s left; next round at %s\n", time.Now().Format("15:04:05"), plural(left, "move", "moves"), next.Format("15:04:05"))
	}
}

func (r *runReporter) close() {
	r.mu.Lock()
	p, bar := r.p, r.bar
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.p, r.bar = nil, nil
	r.mu.Unlock()
	if bar != nil {
		bar.Abort(false)
	}
	if p != nil {
		p.Wait()
	}
}

var _ io.Writer = writerFunc(nil)
