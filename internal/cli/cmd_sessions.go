package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/kick"
)

type sessionsOptions struct {
	older string
	users []string
	kill  bool
	grace time.Duration
}

func newSessionsCommand(g *globals) *cobra.Command {
	var opts sessionsOptions
	cmd := &cobra.Command{
		Use:   "sessions [--older AGE] [--user USER]... [--kill]",
		Short: "List live sessions, and end those up since long ago",
		Long: `List the live sessions the config's activity source sees on this machine
(run it on each host), oldest first: user, service, pid, start, age. Ages
are like 90d, 12h, 2w or 1d12h; --older lists only sessions at least that
old. A session that has been up for months is usually stuck, and it keeps
its user from being moved.

--kill ends the sessions listed:
  proc     SIGTERM, then SIGKILL after --grace if still there; a process is
           signalled only if its pid still has the uid, name and start time
           that were listed (pids get reused). Processes whose uid is no
           user's, or several users', or root's, are never ended.
  doveadm  doveadm kick USER. doveadm gives no start time, so its sessions
           are of unknown age: they are ended only for users named with
           --user (and then all of the user's sessions).
  command  refused: a site's own command can list sessions, not end them.

--kill needs --older or --user. The exit code is 1 if a session that was
to be ended was not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.kill && !cmd.Flags().Changed("older") && len(opts.users) == 0 {
				return usagef("--kill needs --older AGE or --user USER: it does not end every session there is")
			}
			return runSessions(cmd.Context(), opts, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.older, "older", "0s", "list only sessions at least this old (90d, 12h, 2w)")
	f.StringArrayVar(&opts.users, "user", nil, "only this user's sessions (repeatable)")
	f.BoolVar(&opts.kill, "kill", false, "end the sessions listed")
	f.DurationVar(&opts.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL (proc)")
	return cmd
}

// sessionRow is one session listed.
type sessionRow struct {
	User    string    `json:"user"`
	Service string    `json:"service"`
	PID     int       `json:"pid,omitempty"`
	UID     *int      `json:"uid,omitempty"` // proc: the process's uid
	Remote  string    `json:"remote,omitempty"`
	Since   time.Time `json:"since,omitzero"` // zero when the source cannot tell
	AgeS    *int64    `json:"age_s"`          // null when unknown
	Note    string    `json:"note,omitempty"` // why it is not to be ended
	Ended   string    `json:"ended,omitempty"`
	Error   string    `json:"error,omitempty"`

	selected bool // to be ended with --kill
	named    bool // its user was named with --user
}

// sessionsReport is the command's result.
type sessionsReport struct {
	Source   string       `json:"source"`
	OlderS   int64        `json:"older_s"`
	Sessions []sessionRow `json:"sessions"`
	Ended    int          `json:"ended"`
	Failed   int          `json:"failed"`
}

func runSessions(ctx context.Context, opts sessionsOptions, g *globals) error {
	older, err := kick.ParseAge(opts.older)
	if err != nil {
		return usageError{fmt.Errorf("--older: %w", err)}
	}
	for _, u := range opts.users {
		if err := cluster.CheckUser(u); err != nil {
			return usageError{fmt.Errorf("--user: %w", err)}
		}
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	src := cfg.Activity.Source
	if opts.kill && src == "command" {
		return withHint(fmt.Errorf("activity.source = \"command\": the site's own command lists sessions, but maildist cannot end them"),
			"end them with the site's own tools, or set activity.source to \"proc\" or \"doveadm\"")
	}
	rep := sessionsReport{Source: src, OlderS: int64(older / time.Second), Sessions: []sessionRow{}}
	if src == "none" {
		g.logf("activity.source = \"none\": maildist sees no sessions")
		printSessions(g, rep, opts, older)
		return nil
	}
	act, err := activity.New(cfg.Activity, cfg.Domain, host.RunCommand)
	if err != nil {
		return err
	}
	var rows []sessionRow
	if src == "proc" {
		rows, err = procSessions(ctx, g, cfg, act, opts.users)
	} else {
		rows, err = namedSessions(ctx, act, opts.users)
	}
	if err != nil {
		return err
	}

	now := time.Now()
	unknown := 0
	for _, r := range rows {
		if r.Since.IsZero() {
			unknown++
			if r.Note == "" && !r.named {
				r.Note = "age unknown: ended only when its user is named with --user"
			}
			r.selected = r.Note == ""
		} else {
			age := now.Sub(r.Since)
			if age < older {
				continue
			}
			s := int64(age / time.Second)
			r.AgeS = &s
			r.selected = r.Note == ""
		}
		rep.Sessions = append(rep.Sessions, r)
	}
	sort.SliceStable(rep.Sessions, func(i, j int) bool {
		a, b := rep.Sessions[i], rep.Sessions[j]
		if a.Since.IsZero() != b.Since.IsZero() {
			return !a.Since.IsZero()
		}
		if !a.Since.Equal(b.Since) {
			return a.Since.Before(b.Since)
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.PID < b.PID
	})
	if unknown > 0 && !opts.kill {
		g.logf("note: %s gives no start time for %d sessions; they are listed whatever --older says", src, unknown)
	}

	if opts.kill {
		switch src {
		case "proc":
			endProcs(ctx, opts.grace, rep.Sessions)
		case "doveadm":
			kickUsers(ctx, cfg.Activity.Doveadm, rep.Sessions)
		}
		for i := range rep.Sessions {
			r := &rep.Sessions[i]
			switch {
			case r.Ended != "":
				rep.Ended++
			case r.Error != "":
				rep.Failed++
			case r.named && r.Note != "":
				// The operator asked for this user; not ending it is a failure.
				r.Error = "not ended: " + r.Note
				rep.Failed++
			}
		}
	}
	printSessions(g, rep, opts, older)
	if rep.Failed > 0 {
		for _, r := range rep.Sessions {
			if r.Error != "" {
				g.logf("%s %s pid %d: %s", r.User, r.Service, r.PID, r.Error)
			}
		}
		return fmt.Errorf("%d sessions not ended", rep.Failed)
	}
	return nil
}

// procSessions lists processes and names their users by uid, from the
// directory.
func procSessions(ctx context.Context, g *globals, cfg *config.Config, act activity.Source, users []string) ([]sessionRow, error) {
	dir, err := openDirectory(cfg)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	entries, lerr := dir.List(ctx)
	if lerr != nil {
		if len(entries) == 0 {
			return nil, lerr
		}
		for _, e := range splitErrors(lerr) {
			g.logf("warning: directory: %v", e)
		}
	}
	byUID := map[int][]string{}
	byName := map[string]directory.Entry{}
	for _, e := range entries {
		byName[e.User] = e
		if e.UID >= 0 && !slices.Contains(byUID[e.UID], e.User) {
			byUID[e.UID] = append(byUID[e.UID], e.User)
		}
	}
	// shared is the note of a uid that is not one user's.
	shared := func(uid int) string {
		switch us := byUID[uid]; {
		case uid == 0:
			return "uid 0: root's processes are never ended"
		case len(us) == 0:
			return fmt.Sprintf("uid %d is no user of the directory", uid)
		case len(us) > 1:
			if len(us) > 4 {
				us = append(us[:4:4], "…")
			}
			return fmt.Sprintf("uid %d is shared by %s: proc cannot tell whose session this is (use activity.source = \"doveadm\")", uid, strings.Join(us, ", "))
		}
		return ""
	}
	var rows []sessionRow
	add := func(s activity.Session, user string, uid int, named bool) {
		u := uid
		rows = append(rows, sessionRow{User: user, Service: s.Service, PID: s.PID, UID: &u, Remote: s.Remote,
			Since: s.Since, Note: shared(uid), named: named})
	}
	if len(users) > 0 {
		for _, name := range users {
			e, ok := byName[name]
			switch {
			case !ok:
				return nil, fmt.Errorf("--user %s: %w", name, directory.ErrNotFound)
			case e.UID < 0:
				return nil, fmt.Errorf("--user %s: the directory gives no uid, and proc finds sessions by uid", name)
			}
			ss, err := act.Sessions(ctx, name, e.UID)
			if err != nil {
				return nil, err
			}
			for _, s := range ss {
				add(s, name, e.UID, true)
			}
		}
		return rows, nil
	}
	ss, err := act.Sessions(ctx, "", -1)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		// activity.Proc names a process it cannot tie to a user "uid N".
		uid, err := strconv.Atoi(strings.TrimPrefix(s.User, "uid "))
		if err != nil || !strings.HasPrefix(s.User, "uid ") {
			return nil, fmt.Errorf("activity proc: session of %q: want \"uid N\"", s.User)
		}
		user := s.User
		if us := byUID[uid]; len(us) == 1 {
			user = us[0]
		}
		add(s, user, uid, false)
	}
	return rows, nil
}

// namedSessions lists sessions from a source that names their users.
func namedSessions(ctx context.Context, act activity.Source, users []string) ([]sessionRow, error) {
	var rows []sessionRow
	add := func(user string, named bool) error {
		ss, err := act.Sessions(ctx, user, -1)
		if err != nil {
			return err
		}
		for _, s := range ss {
			rows = append(rows, sessionRow{User: s.User, Service: s.Service, PID: s.PID, Remote: s.Remote, Since: s.Since, named: named})
		}
		return nil
	}
	if len(users) == 0 {
		return rows, add("", false)
	}
	for _, u := range users {
		if err := add(u, true); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// endProcs ends the selected processes, all at once.
func endProcs(ctx context.Context, grace time.Duration, rows []sessionRow) {
	var ps []kick.Process
	var idx []int
	for i, r := range rows {
		if !r.selected {
			continue
		}
		if r.PID <= 0 || r.UID == nil {
			rows[i].Error = "no pid to signal"
			continue
		}
		ps = append(ps, kick.Process{PID: r.PID, UID: *r.UID, Name: r.Service, Since: r.Since})
		idx = append(idx, i)
	}
	e := &kick.Ender{Grace: grace}
	for k, res := range e.End(ctx, ps) {
		r := &rows[idx[k]]
		switch {
		case res.Err != nil:
			r.Error = res.Err.Error()
		case res.Ended == kick.EndedTerm:
			r.Ended = "SIGTERM"
		case res.Ended == kick.EndedKill:
			r.Ended = "SIGKILL after " + grace.String()
		case res.Ended == kick.EndedGone:
			r.Ended = "gone already"
		}
	}
}

// kickUsers runs doveadm kick once for each user with a selected session.
func kickUsers(ctx context.Context, doveadm []string, rows []sessionRow) {
	done := map[string]error{}
	for i := range rows {
		r := &rows[i]
		if !r.selected {
			continue
		}
		err, ok := done[r.User]
		if !ok {
			err = kick.DoveadmKick(ctx, host.RunCommand, doveadm, r.User)
			done[r.User] = err
		}
		if err != nil {
			r.Error = err.Error()
		} else {
			r.Ended = "doveadm kick"
		}
	}
}

func printSessions(g *globals, rep sessionsReport, opts sessionsOptions, older time.Duration) {
	if g.json {
		json.NewEncoder(g.stdout).Encode(rep)
		return
	}
	what := "sessions"
	if older > 0 {
		what = "sessions up for " + kick.FormatAge(older) + " or more"
	}
	if len(rep.Sessions) == 0 {
		fmt.Fprintf(g.stdout, "no %s (activity source %s)\n", what, rep.Source)
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "user\tservice\tpid\tsince\tage\tnote")
	for _, r := range rep.Sessions {
		pid, since, age := "-", "unknown", "unknown"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
		}
		if !r.Since.IsZero() {
			since = r.Since.Format(time.DateTime)
		}
		if r.AgeS != nil {
			age = kick.FormatAge(time.Duration(*r.AgeS) * time.Second)
		}
		note := r.Note
		switch {
		case r.Ended != "":
			note = "ended: " + r.Ended
		case r.Error != "":
			note = "NOT ENDED: " + r.Error
		case opts.kill && r.Note != "":
			note = "left: " + r.Note
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.User, r.Service, pid, since, age, note)
	}
	tw.Flush()
	fmt.Fprintf(g.stdout, "%d %s (activity source %s)", len(rep.Sessions), what, rep.Source)
	if opts.kill {
		fmt.Fprintf(g.stdout, "; %d ended, %d not ended", rep.Ended, rep.Failed)
	}
	fmt.Fprintln(g.stdout)
}
