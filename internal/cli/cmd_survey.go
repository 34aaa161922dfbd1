package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/survey"
	"github.com/maildist/maildist/internal/survey/dovelog"
	"github.com/maildist/maildist/internal/wire"
)

type surveyOptions struct {
	since, until string
	noDisk       bool
	sessions     []string
	logs         []string
	logZone      string
	progress     bool
	workers      int
	noAgentLogs  bool
}

func newSurveyCommand(g *globals) *cobra.Command {
	var opts surveyOptions
	cmd := &cobra.Command{
		Use:   "survey RUN",
		Short: "List every user with host, connect time and disk use (RUN/raw.tsv)",
		Long: `Survey the cluster and write RUN/raw.tsv, one row for every user of the
directory:

  user host pool home connect_s sessions last_login bytes messages status

host and pool come from the home (the host whose root is its longest prefix).
status is ok, missing-home or unreadable. bytes are allocated blocks, each
inode once, as du counts them; messages are the files in cur/ and new/ of
every Maildir folder, or the messages of mbox files. The walk never follows
a symlink; --no-disk skips it (bytes and messages 0, status from an lstat).

connect_s, sessions and last_login come from the Dovecot logs of [survey]
logs in the config, or --log GLOB (plain or .gz, rotations read oldest first,
several hosts' logs merged by time), and from --sessions FILE (TSV lines
"user start end", RFC 3339) for logs that are not Dovecot's. connect_s is the
union of a user's sessions, so parallel connections count once. --since and
--until bound the window (RFC 3339, YYYY-MM-DD, or a time ago like 30d, 12h).

Results go to stdout (a table per host, or --json); progress, a summary and
warnings go to stderr. Malformed log lines (a date no calendar has among
them) are counted, and the first few shown; they never stop the survey. A
log file that cannot be read stops it (a folder given as a log, a .gz that
is not gzip: gzip is told by its first bytes), and no raw.tsv is written.
Warnings name what reads nothing: folders a glob matches, empty log files,
logs with no login, a --since/--until window that no log line falls in.
Hosts with an agent are read through it: their homes are walked by the
agent, and the logs each agent's own config names ([survey] logs on that
host) are read along with the ones here (--no-agent-logs: only the ones
here). Do not name one file in both places: it would count twice.
-v lists the log's user names that the directory lacks (the first 50, the
most sessions first), to check how names are matched.

Exit status: 0 when every user was surveyed; 1 when something is wrong with
some users (a bad directory line, a home under no host's root, an unreadable
home, a bad sessions line): raw.tsv is written all the same, with the other
users, and the problems are named on stderr. Missing homes are not problems.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("survey needs the run folder RUN (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSurvey(cmd.Context(), opts, g, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.since, "since", "", "count sessions from `T` on (RFC 3339, YYYY-MM-DD or a time ago: 30d, 12h)")
	f.StringVar(&opts.until, "until", "", "count sessions up to `T`")
	f.BoolVar(&opts.noDisk, "no-disk", false, "do not walk the homes (bytes and messages 0)")
	f.StringArrayVar(&opts.sessions, "sessions", nil, "also read sessions from `FILE.tsv` (user start end); may be repeated")
	f.StringArrayVar(&opts.logs, "log", nil, "read these Dovecot logs instead of [survey] logs (`GLOB`); may be repeated")
	f.StringVar(&opts.logZone, "log-zone", "", "time zone of log timestamps that carry none (default: local time)")
	f.BoolVar(&opts.progress, "progress", false, "show progress on stderr even when it is not a terminal")
	f.IntVar(&opts.workers, "workers", 0, "homes walked at once (default: 4 a core)")
	f.BoolVar(&opts.noAgentLogs, "no-agent-logs", false, "do not read the logs of hosts with an agent through their agents")
	return cmd
}

// parseWhen reads a --since/--until value.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339 like 2025-03-01T00:00:00Z, a date like 2025-03-01, or a time ago like 30d or 12h)", s)
}

func runSurvey(ctx context.Context, opts surveyOptions, g *globals, run string) error {
	now := time.Now()
	since, err := parseWhen(opts.since, now)
	if err != nil {
		return usagef("--since: %v", err)
	}
	until, err := parseWhen(opts.until, now)
	if err != nil {
		return usagef("--until: %v", err)
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		return usagef("--until %s is not after --since %s", opts.until, opts.since)
	}
	if opts.workers < 0 {
		return usagef("--workers %d: must not be negative", opts.workers)
	}
	loc := time.Local
	if opts.logZone != "" {
		if loc, err = time.LoadLocation(opts.logZone); err != nil {
			return usagef("--log-zone: %v", err)
		}
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	logs := cfg.Survey.Logs
	if len(opts.logs) > 0 {
		logs = opts.logs
	}
	disk, err := wire.Disk(cfg)
	if err != nil {
		return err
	}
	var remote []dovelog.Stream
	var remoteSizes []int64
	if !opts.noAgentLogs {
		if remote, remoteSizes, err = wire.AgentLogs(ctx, cfg); err != nil {
			return fmt.Errorf("survey: %w (--no-agent-logs reads only the logs here)", err)
		}
	}
	if len(remote) > 0 {
		g.logf("logs: %d read through agents, %d globs here", len(remote), len(logs))
	}
	if len(logs) == 0 && len(remote) == 0 && len(opts.sessions) == 0 {
		g.logf("warning: no logs ([survey] logs in the config, or --log) and no --sessions: connect time is 0 for everyone")
	}

	dir, err := wire.Directory(cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	entries, derr := dir.List(ctx)
	var problems []error
	if derr != nil {
		bad, ok := lineErrors(derr)
		if !ok {
			return fmt.Errorf("read the directory: %w", derr)
		}
		problems = append(problems, bad...)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fmt.Errorf("make the run folder: %w", err)
	}

	prog := &survey.Progress{}
	showProgress := opts.progress || isTerminal(g.stderr)
	stop := func() {}
	if showProgress {
		stop = startProgress(g.stderr, prog)
	}
	res, err := survey.Run(ctx, survey.Options{
		Cluster: cfg.Cluster(), Entries: entries,
		NoDisk: opts.noDisk, Workers: opts.workers, Disk: disk,
		Logs: logs, Remote: remote, RemoteSizes: remoteSizes, Sessions: opts.sessions,
		Since: since, Until: until, Loc: loc,
		Progress:     prog,
		KeepLogUsers: showLogUsers,
	})
	stop()
	if err != nil {
		return err
	}
	problems = append(problems, res.Problems...)
	path := runstate.Path(run, runstate.RawFile)
	if err := runstate.WriteRaw(path, res.Users); err != nil {
		return err
	}

	hosts := survey.Summarize(cfg.Cluster(), res.Users)
	writeSurveySummary(g.stderr, res, hosts, problems, g.verbose)
	if g.json {
		if err := writeSurveyJSON(g.stdout, run, path, res, hosts, problems); err != nil {
			return err
		}
	} else {
		writeSurveyTable(g.stdout, hosts)
		fmt.Fprintf(g.stdout, "wrote %s: %d users; next: maildist plan %s\n", path, len(res.Users), run)
	}
	if len(problems) > 0 {
		return fmt.Errorf("survey finished with %d problems (named above); %s holds the other users", len(problems), path)
	}
	return nil
}

// lineErrors splits a directory's error into its bad lines; ok is false
// if anything else went wrong.
func lineErrors(err error) ([]error, bool) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var le *directory.LineError
		if !errors.As(e, &le) {
			return nil, false
		}
	}
	return errs, true
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// startProgress writes a line of progress every half second until stop is
// called.
func startProgress(w io.Writer, p *survey.Progress) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s\n", progressLine(p))
				return
			case <-tick.C:
				fmt.Fprintf(w, "\r%s\033[K", progressLine(p))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func progressLine(p *survey.Progress) string {
	el := time.Since(p.Started).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	eta := func(done, total float64) string {
		if done <= 0 || done >= total {
			return ""
		}
		return fmt.Sprintf(", ETA %s", (time.Duration((total-done)/done*el) * time.Second).Round(time.Second))
	}
	users, done := float64(p.Users.Load()), float64(p.UsersDone.Load())
	s := fmt.Sprintf("survey: homes %d/%d", int64(done), int64(users))
	if done < users {
		s += fmt.Sprintf(" (%.0f/s%s)", done/el, eta(done, users))
	}
	if total := float64(p.LogBytes.Load()); total > 0 {
		read := float64(p.LogRead.Load())
		if p.LogsDone.Load() {
			read = total
		}
		s += fmt.Sprintf(" · logs %s/%s (%s/s%s)", humanBytes(int64(read)), humanBytes(int64(total)), humanBytes(int64(read/el)), eta(read, total))
	}
	return s
}

// showLogUsers is how many of the log's user names that the directory
// lacks -v lists (and --json gives).
const showLogUsers = 50

// writeSurveySummary tells stderr what was read and what was wrong; with
// verbose, which log names the directory lacks.
func writeSurveySummary(w io.Writer, res *survey.Result, hosts []survey.HostSummary, problems []error, verbose bool) {
	nh := 0
	for _, h := range hosts {
		if h.Host != "" && h.Users > 0 {
			nh++
		}
	}
	fmt.Fprintf(w, "survey: %d users on %d hosts, missing homes: %d, in %.1fs\n", len(res.Users), nh, res.Missing, res.Elapsed.Seconds())
	l := res.Log
	if l.Files > 0 || res.Sessions > 0 {
		st := res.Pairing
		fmt.Fprintf(w, "survey: logs: %d files, %d lines, %s; %d logins, %d sessions paired, %d closed by a restart, %d by a dead process, %d by a reused pid, %d still open at the end; %d ends without a login\n",
			l.Files, l.Lines, humanBytes(l.Bytes), st.Logins, st.Paired(), st.Closed[dovelog.ClosedByRestart], st.Closed[dovelog.ClosedByChild],
			st.Closed[dovelog.ClosedByPidReused], st.Closed[dovelog.ClosedAtEnd], st.Unmatched)
		var skipped []string
		for k := dovelog.Kind(0); k < dovelog.NumKinds; k++ {
			switch k {
			case dovelog.Login, dovelog.End, dovelog.Restart, dovelog.ChildGone:
				continue
			}
			if n := l.ByKind[k]; n > 0 {
				skipped = append(skipped, fmt.Sprintf("%s %d", k, n))
			}
		}
		if len(skipped) > 0 {
			fmt.Fprintf(w, "survey: lines skipped: %s\n", strings.Join(skipped, ", "))
		}
		if res.Sessions > 0 {
			fmt.Fprintf(w, "survey: %d sessions from sessions files\n", res.Sessions)
		}
		if res.LogUsers > 0 {
			hint := " (-v lists them)"
			if verbose {
				hint = ", the most sessions first:"
			}
			fmt.Fprintf(w, "survey: %d user names in the logs are not in the directory (not counted)%s\n", res.LogUsers, hint)
			if verbose {
				for _, u := range res.LogUserNames {
					fmt.Fprintf(w, "survey:   %s (%d sessions)\n", u.Name, u.Sessions)
				}
				if n := res.LogUsers - int64(len(res.LogUserNames)); n > 0 {
					fmt.Fprintf(w, "survey:   … and %d more\n", n)
				}
			}
		}
		for _, m := range l.Malformed {
			fmt.Fprintf(w, "survey: malformed line %s\n", m)
		}
		if n := l.ByKind[dovelog.Malformed]; n > int64(len(l.Malformed)) {
			fmt.Fprintf(w, "survey: … and %d more malformed lines\n", n-int64(len(l.Malformed)))
		}
	}
	for _, m := range res.Warnings {
		fmt.Fprintf(w, "survey: warning: %s\n", m)
	}
	const show = 50
	for i, p := range problems {
		if i == show {
			fmt.Fprintf(w, "survey: … and %d more problems\n", len(problems)-show)
			break
		}
		fmt.Fprintf(w, "survey: %v\n", p)
	}
}

func writeSurveyTable(w io.Writer, hosts []survey.HostSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "host\tpool\tusers\tok\tmissing\tunreadable\tbytes\tmessages\tconnect\tsessions\t")
	var tot survey.HostSummary
	for _, h := range hosts {
		name := h.Host
		if name == "" {
			name = "(no host)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t\n", name, h.Pool, h.Users, h.OK, h.Missing, h.Unreadable,
			humanBytes(h.Bytes), h.Messages, connectTime(h.ConnectS), h.Sessions)
		tot.Users += h.Users
		tot.OK += h.OK
		tot.Missing += h.Missing
		tot.Unreadable += h.Unreadable
		tot.Bytes += h.Bytes
		tot.Messages += h.Messages
		tot.ConnectS += h.ConnectS
		tot.Sessions += h.Sessions
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t\n", tot.Users, tot.OK, tot.Missing, tot.Unreadable,
		humanBytes(tot.Bytes), tot.Messages, connectTime(tot.ConnectS), tot.Sessions)
	tw.Flush()
}

// connectTime formats seconds as hours and minutes.
func connectTime(s int64) string {
	if s < 60 {
		return fmt.Sprintf("%ds", s)
	}
	h, m := s/3600, s%3600/60
	if h == 0 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh%02dm", h, m)
}

func writeSurveyJSON(w io.Writer, run, path string, res *survey.Result, hosts []survey.HostSummary, problems []error) error {
	type logsJSON struct {
		Files     int              `json:"files"`
		Lines     int64            `json:"lines"`
		Bytes     int64            `json:"bytes"`
		ByKind    map[string]int64 `json:"lines_by_kind"`
		Malformed []string         `json:"malformed_examples"`
	}
	type sessionsJSON struct {
		Logins          int64            `json:"logins"`
		Paired          int64            `json:"paired"`
		ClosedByRestart int64            `json:"closed_by_restart"`
		ClosedByChild   int64            `json:"closed_by_dead_process"`
		ClosedByPid     int64            `json:"closed_by_reused_pid"`
		ClosedAtEnd     int64            `json:"open_at_end"`
		Unmatched       int64            `json:"ends_without_login"`
		FromFiles       int              `json:"from_sessions_files"`
		LogUsers        int64            `json:"log_users_not_in_directory"`
		LogUserNames    []survey.LogUser `json:"log_users_not_in_directory_first"`
	}
	out := struct {
		Run      string               `json:"run"`
		Raw      string               `json:"raw"`
		Users    int                  `json:"users"`
		Missing  int                  `json:"missing_homes"`
		Hosts    []survey.HostSummary `json:"hosts"`
		Logs     logsJSON             `json:"logs"`
		Sessions sessionsJSON         `json:"sessions"`
		Problems []string             `json:"problems"`
		Warnings []string             `json:"warnings"`
		Elapsed  float64              `json:"elapsed_s"`
	}{
		Run: run, Raw: path, Users: len(res.Users), Missing: res.Missing, Hosts: hosts,
		Logs: logsJSON{Files: res.Log.Files, Lines: res.Log.Lines, Bytes: res.Log.Bytes, ByKind: map[string]int64{}, Malformed: []string{}},
		Sessions: sessionsJSON{Logins: res.Pairing.Logins, Paired: res.Pairing.Paired(),
			ClosedByRestart: res.Pairing.Closed[dovelog.ClosedByRestart], ClosedByChild: res.Pairing.Closed[dovelog.ClosedByChild],
			ClosedByPid: res.Pairing.Closed[dovelog.ClosedByPidReused],
			ClosedAtEnd: res.Pairing.Closed[dovelog.ClosedAtEnd], Unmatched: res.Pairing.Unmatched,
			FromFiles: res.Sessions, LogUsers: res.LogUsers, LogUserNames: append([]survey.LogUser{}, res.LogUserNames...)},
		Problems: []string{},
		Warnings: append([]string{}, res.Warnings...),
		Elapsed:  res.Elapsed.Seconds(),
	}
	for k := dovelog.Kind(0); k < dovelog.NumKinds; k++ {
		out.Logs.ByKind[k.String()] = res.Log.ByKind[k]
	}
	for _, m := range res.Log.Malformed {
		out.Logs.Malformed = append(out.Logs.Malformed, m.String())
	}
	for _, p := range problems {
		out.Problems = append(out.Problems, p.Error())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
