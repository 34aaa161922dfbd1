package survey

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/survey/dovelog"
)

// Options say what to survey.
type Options struct {
	Cluster *cluster.Cluster
	Entries []directory.Entry // the directory's users, in its order

	// Disk reads homes; nil means LocalDisk. With NoDisk the homes are
	// only looked at (Check), not walked: bytes and messages are 0.
	Disk   DiskReader
	NoDisk bool
	// Workers is how many homes are walked at once (0: 4 a core).
	Workers int

	Logs []string // globs of Dovecot logs
	// Remote are more log streams, each file with its Open set: the logs
	// of hosts read through their agents. RemoteSizes are their sizes in
	// bytes, for progress (may be nil).
	Remote      []dovelog.Stream
	RemoteSizes []int64
	Sessions    []string // TSV files of sessions: user start end
	// Since and Until bound the window for connect time (zero: open).
	Since, Until time.Time
	// Loc is the zone of log timestamps that carry none (nil: local time).
	Loc *time.Location

	// Progress, if set, is kept up to date while the survey runs.
	Progress *Progress

	// KeepLogUsers is how many of the log's user names that the
	// directory does not have to keep in Result.LogUserNames, those with
	// the most sessions first (0: none).
	KeepLogUsers int
}

// Progress is what a running survey has done so far. Its fields may be
// read at any time from another goroutine.
type Progress struct {
	Users     atomic.Int64 // homes to look at
	UsersDone atomic.Int64
	LogBytes  atomic.Int64 // total size of the log files (compressed, for .gz)
	LogRead   atomic.Int64
	LogsDone  atomic.Bool
	Started   time.Time
}

// Result is a finished survey.
type Result struct {
	Users []cluster.User // one for each good directory entry, in its order

	Log      dovelog.Report
	Pairing  dovelog.Stats
	Sessions int   // sessions read from sessions files
	Streams  int   // log streams (a live file and its rotations)
	LogUsers int64 // user names in the logs that the directory does not have
	// LogUserNames are some of them (Options.KeepLogUsers), the most
	// sessions first, then by name.
	LogUserNames []LogUser

	// Warnings say why connect time may be less than the logs were
	// meant to give: folders a glob matched, empty log files, logs with
	// no login, a window no log line falls in. The survey went on.
	Warnings []string

	// Problems are per-user problems: the survey went on, but the rows
	// they name are incomplete (a home on no host, an unreadable home, a
	// duplicate or bad entry, a bad sessions line).
	Problems []error
	Missing  int // homes that do not exist (not a problem: expiring users)
	Elapsed  time.Duration
}

// Run surveys the cluster: every entry's home (host, status, disk use)
// and the connect time the logs give each user. A log that cannot be read
// stops it with an error; anything wrong with one user is kept in
// Result.Problems and the survey goes on.
func Run(ctx context.Context, opt Options) (*Result, error) {
	start := time.Now()
	if opt.Disk == nil {
		opt.Disk = LocalDisk{}
	}
	if opt.Loc == nil {
		opt.Loc = time.Local
	}
	prog := opt.Progress
	if prog == nil {
		prog = &Progress{}
	}
	prog.Started = start
	res := &Result{}

	// The users: one row for each good entry.
	idx := map[string]int{}
	for _, e := range opt.Entries {
		if err := cluster.CheckUser(e.User); err != nil {
			res.Problems = append(res.Problems, fmt.Errorf("directory: %w", err))
			continue
		}
		if _, dup := idx[e.User]; dup {
			res.Problems = append(res.Problems, fmt.Errorf("directory: user %q appears more than once; the first entry is surveyed", e.User))
			continue
		}
		idx[e.User] = len(res.Users)
		u := cluster.User{Name: e.User, Home: e.Home}
		res.Users = append(res.Users, u)
	}

	// The logs, found up front so that a bad glob stops the survey before
	// any work.
	streams, sizes, warnings, err := FindLogsWarn(opt.Logs)
	if err != nil {
		return nil, err
	}
	res.Warnings = warnings
	res.Streams = len(streams)
	for i := range streams {
		for j := range streams[i].Files {
			streams[i].Files[j].Open = opener(streams[i].Files[j].Name, &prog.LogRead)
		}
		prog.LogBytes.Add(sizes[i])
	}
	for i, st := range opt.Remote {
		streams = append(streams, st)
		if i < len(opt.RemoteSizes) {
			prog.LogBytes.Add(opt.RemoteSizes[i])
		}
	}
	res.Streams = len(streams)
	for _, path := range opt.Sessions {
		evs, n, bad, err := ReadSessions(path)
		if err != nil {
			return nil, err
		}
		res.Problems = append(res.Problems, bad...)
		res.Sessions += n
		streams = append(streams, dovelog.Stream{Name: path, Events: evs})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var logErr error
	var pr *dovelog.Pairer
	if len(streams) > 0 {
		pr = dovelog.NewPairer(dovelog.PairOptions{
			Since: opt.Since, Until: opt.Until,
			Normalize: Normalizer(res.Users, opt.Cluster.Domain),
			// Users to expect: the directory's, or, if more, one for
			// every 4 KiB of log (a guess that only sizes a table).
			UsersHint: max(len(res.Users), int(min(prog.LogBytes.Load()/4096, 1<<24))),
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer prog.LogsDone.Store(true)
			rep, err := dovelog.Scan(ctx, streams, pr, dovelog.ScanOptions{Loc: opt.Loc})
			res.Log = rep
			if err != nil {
				logErr = err
				cancel()
			}
		}()
	} else {
		prog.LogsDone.Store(true)
	}

	diskProblems := surveyDisks(ctx, opt, res.Users, prog, &res.Missing)
	wg.Wait()
	if logErr != nil {
		return nil, logErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Problems = append(res.Problems, diskProblems...)

	var unknown logUserHeap
	if pr != nil {
		res.Pairing = pr.Stats()
		pr.Each(func(name string, t dovelog.Totals) {
			i, ok := idx[name]
			if !ok || !t.Known {
				res.LogUsers++
				unknown.offer(LogUser{Name: name, Sessions: t.Sessions}, opt.KeepLogUsers)
				return
			}
			u := &res.Users[i]
			u.ConnectS = int64(t.Connect / time.Second)
			u.Sessions = t.Sessions
			u.LastLogin = t.LastLogin
		})
	}
	res.LogUserNames = unknown.sorted()
	if len(opt.Logs) > 0 || len(opt.Remote) > 0 {
		res.Warnings = append(res.Warnings, logWarnings(res, opt)...)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// logWarnings says what in the logs read leaves connect time short: empty
// files, no line or no login at all, no line within the window.
func logWarnings(res *Result, opt Options) []string {
	var out []string
	l := res.Log
	for _, f := range l.Empty {
		out = append(out, fmt.Sprintf("log file %s is empty", f))
	}
	zero := "; connect time is 0 for everyone"
	if res.Pairing.Counted > 0 {
		zero = "" // sessions files or sessions spanning the window gave some
	}
	switch {
	case l.Lines == 0:
		out = append(out, "no log line was read (no log file, or only empty ones)"+zero)
		return out
	case l.ByKind[dovelog.Login] == 0:
		out = append(out, fmt.Sprintf("the logs hold no IMAP or POP3 login in %d lines (are they Dovecot's?)%s", l.Lines, zero))
		return out
	}
	if (!opt.Since.IsZero() || !opt.Until.IsZero()) && l.InWindow == 0 {
		span := "no line has a time"
		if !l.First.IsZero() {
			span = fmt.Sprintf("the logs run from %s to %s", l.First.In(opt.Loc).Format(time.RFC3339), l.Last.In(opt.Loc).Format(time.RFC3339))
		}
		if zero == "" {
			zero = "; only sessions that span it count"
		}
		out = append(out, fmt.Sprintf("no log line falls in the window %s (%s)%s", windowText(opt.Since, opt.Until, opt.Loc), span, zero))
	}
	return out
}

// windowText writes a window: "A – B", "from A on", "up to B".
func windowText(since, until time.Time, loc *time.Location) string {
	f := func(t time.Time) string { return t.In(loc).Format(time.RFC3339) }
	switch {
	case since.IsZero():
		return "up to " + f(until)
	case until.IsZero():
		return "from " + f(since) + " on"
	}
	return f(since) + " – " + f(until)
}

// LogUser is a user name of the logs that the directory does not have.
type LogUser struct {
	Name     string `json:"name"`
	Sessions int64  `json:"sessions"` // within the window
}

// before orders log users: the most sessions first, then by name.
func (a LogUser) before(b LogUser) bool {
	if a.Sessions != b.Sessions {
		return a.Sessions > b.Sessions
	}
	return a.Name < b.Name
}

// logUserHeap keeps the first n log users in that order, at its root the
// last of them (the first to give way).
type logUserHeap []LogUser

func (h *logUserHeap) offer(u LogUser, n int) {
	s := *h
	switch {
	case n <= 0:
		return
	case len(s) < n:
		s = append(s, u)
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if !s[p].before(s[i]) {
				break
			}
			s[p], s[i] = s[i], s[p]
			i = p
		}
	case u.before(s[0]):
		s[0] = u
		for i := 0; ; {
			m, l, r := i, 2*i+1, 2*i+2
			if l < len(s) && s[m].before(s[l]) {
				m = l
			}
			if r < len(s) && s[m].before(s[r]) {
				m = r
			}
			if m == i {
				break
			}
			s[i], s[m] = s[m], s[i]
			i = m
		}
	}
	*h = s
}

func (h logUserHeap) sorted() []LogUser {
	out := append([]LogUser(nil), h...)
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

// surveyDisks fills host, pool, status, bytes and messages of every user,
// walking homes in parallel, and returns the problems it met.
func surveyDisks(ctx context.Context, opt Options, users []cluster.User, prog *Progress, missing *int) []error {
	workers := opt.Workers
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	prog.Users.Store(int64(len(users)))
	problems := make([]error, len(users))
	next := atomic.Int64{}
	var nMissing atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(users) {
					return
				}
				problems[i] = surveyOne(ctx, opt, &users[i])
				if users[i].Status == cluster.StatusMissingHome {
					nMissing.Add(1)
				}
				prog.UsersDone.Add(1)
			}
		}()
	}
	wg.Wait()
	*missing = int(nMissing.Load())
	var out []error
	for _, p := range problems {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// surveyOne looks at one user's home.
func surveyOne(ctx context.Context, opt Options, u *cluster.User) error {
	h, ok := opt.Cluster.HostOf(u.Home)
	if !ok {
		u.Status = cluster.StatusUnreadable
		return fmt.Errorf("user %s: home %s is under no host's root", u.Name, u.Home)
	}
	u.Host, u.Pool = h.Name, h.Pool
	var err error
	if opt.NoDisk {
		err = opt.Disk.Check(ctx, h, u.Home)
	} else {
		u.Bytes, u.Messages, err = opt.Disk.Usage(ctx, h, u.Home)
	}
	switch {
	case err == nil:
		u.Status = cluster.StatusOK
		return nil
	case errors.Is(err, ErrMissingHome):
		u.Status = cluster.StatusMissingHome
		u.Bytes, u.Messages = 0, 0
		return nil
	default:
		u.Status = cluster.StatusUnreadable
		return fmt.Errorf("user %s: home %s on %s: %w", u.Name, u.Home, h.Name, err)
	}
}

// Normalizer maps user names as logs write them to the directory's: a
// name the directory has is itself; alice@DOMAIN is alice when the
// directory has alice, and alice is alice@DOMAIN when it has that
// (DOMAIN is the cluster's domain); failing those, the same without
// regard to case, if only one directory name matches. Anything else is
// not known. Every name it maps together has the same part before '@', up
// to case. The function only reads maps made here, so it is safe for
// concurrent use, and it keeps nothing of the names it is given (as
// dovelog.PairOptions.Normalize must).
func Normalizer(users []cluster.User, domain string) func(string) (string, bool) {
	names := make(map[string]bool, len(users))
	lower := make(map[string]string, len(users))
	anyUpper := false // some directory name is not all lower case
	for _, u := range users {
		names[u.Name] = true
		l := strings.ToLower(u.Name)
		anyUpper = anyUpper || l != u.Name
		if prev, dup := lower[l]; dup && prev != u.Name {
			lower[l] = "" // two names differ only in case: no guessing
		} else {
			lower[l] = u.Name
		}
	}
	suffix := ""
	if domain != "" {
		suffix = "@" + strings.ToLower(domain)
	}
	exact := func(s string) (string, bool) {
		if names[s] {
			return s, true
		}
		if suffix == "" {
			return "", false
		}
		if i := strings.LastIndexByte(s, '@'); i > 0 && strings.EqualFold(s[i:], suffix) && names[s[:i]] {
			return s[:i], true
		}
		if !strings.Contains(s, "@") && names[s+suffix] {
			return s + suffix, true
		}
		return "", false
	}
	return func(s string) (string, bool) {
		if n, ok := exact(s); ok {
			return n, true
		}
		if !anyUpper && !hasUpper(s) {
			// Lower case on both sides: the lookups below are the ones
			// exact made (a log full of names the directory lacks meets
			// this path for every one of them).
			return s, false
		}
		l := strings.ToLower(s)
		if n := lower[l]; n != "" {
			return n, true
		}
		if suffix != "" {
			if i := strings.LastIndexByte(l, '@'); i > 0 && l[i:] == suffix {
				if n := lower[l[:i]]; n != "" {
					return n, true
				}
			}
			if !strings.Contains(l, "@") {
				if n := lower[l+suffix]; n != "" {
					return n, true
				}
			}
		}
		return s, false
	}
}

// hasUpper says whether strings.ToLower could change s.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}
