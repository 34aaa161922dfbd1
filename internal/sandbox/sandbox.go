package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/maildist/maildist/internal/cluster"
)

// HostSpec is one storage host of a sandbox cluster.
type HostSpec struct {
	Name      string
	Pool      string // "" leaves pool out of the config (maildist's "default")
	Weight    float64
	AcceptNew bool // written as given: false means the host never receives
	Drain     bool
	// Share is the relative share of the users placed on this host when
	// the cluster is built (the skew a rebalancer has to undo). If every
	// host has Share 0, users are spread evenly; otherwise a host with
	// Share 0 starts empty.
	Share float64
}

// DefaultHosts is the spread used when Options.Hosts is empty: four hosts
// bp01..bp04 of pool "bp", equal weights, holding 40%, 30%, 20% and 10%
// of the users.
func DefaultHosts() []HostSpec {
	return []HostSpec{
		{Name: "bp01", Pool: "bp", Weight: 1, AcceptNew: true, Share: 4},
		{Name: "bp02", Pool: "bp", Weight: 1, AcceptNew: true, Share: 3},
		{Name: "bp03", Pool: "bp", Weight: 1, AcceptNew: true, Share: 2},
		{Name: "bp04", Pool: "bp", Weight: 1, AcceptNew: true, Share: 1},
	}
}

// Options say what cluster to build. The zero value of every field but
// Dir means its default.
type Options struct {
	// Dir is created if missing and must be empty or absent; Build sets
	// its mode to 0755. A real mail server's processes, which run as the
	// users, also need to search every folder above it (t.TempDir()'s are
	// 0700).
	Dir string

	// Corpus is "" to generate mailboxes, else the Enron tar.gz (see
	// FindCorpus), a plain tar, or an unpacked folder in its layout
	// (maildir/<user>/<folder…>/<n>).
	Corpus string

	// Users is how many users get a mailbox: default 40 when generating;
	// with a corpus, 0 takes every corpus user and N the first N in the
	// corpus's own order (archive order, or sorted names for a folder).
	Users int

	// MissingHomes is how many extra users have a directory entry but no
	// home folder (the survey's missing-home): 0 means the default, 1 when
	// generating and none with a corpus; -1 means none.
	MissingHomes int

	Hosts   []HostSpec // default DefaultHosts()
	Seed    int64      // everything random is drawn from it
	UIDBase int        // default 5000; Users[i] gets uid and gid UIDBase+i
	Domain  string     // default "example.edu"
	Layout  string     // home_layout, default "{root}/{user}"

	// LogDays is how many days of Dovecot log to write (default 7),
	// ending at a time derived from Seed.
	LogDays int

	// Progress, if set, is called as the build goes, never by two
	// goroutines at once, with done ≤ total, done never decreasing, and a
	// last call with done == total. The unit depends on the input (users,
	// or bytes of a corpus archive): use it as a fraction.
	Progress func(done, total int)
}

// User is one user of the built cluster, with the truth the other
// packages' tests check their findings against.
type User struct {
	Name     string
	Host     string // the host the user was placed on
	Home     string // host-absolute, as in the directory: /bp02/alice
	UID, GID int
	Password string // in the passwd-file as {PLAIN}
	Status   string // cluster.StatusOK, or cluster.StatusMissingHome (no folder)

	Messages int   // message files, every folder
	Bytes    int64 // sum of the message files' sizes (their S=)
	Folders  int   // Maildir++ folders besides INBOX

	// From the Dovecot log: logins that succeeded (IMAP and POP3), the
	// seconds covered by the union of their sessions, and the last login
	// (zero if none). Failed logins are in the log but not here.
	Sessions  int64
	ConnectS  int64
	LastLogin time.Time
}

// Cluster is a built sandbox.
type Cluster struct {
	Dir    string // absolute
	Config string // DIR/maildist.toml
	Passwd string // DIR/etc/passwd
	Log    string // DIR/logs/dovecot.log

	Domain string
	Layout string
	Hosts  []HostSpec
	Users  []User // sorted by name; Users[i].UID == UIDBase+i

	// The Dovecot log covers [LogStart, LogEnd]; its time stamps are UTC.
	LogStart, LogEnd time.Time
}

// Build lays out a sandbox cluster in opt.Dir. A failed or cancelled build
// leaves a partial folder behind, which the caller removes.
func Build(ctx context.Context, opt Options) (*Cluster, error) {
	o, err := normalize(opt)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(o.Dir); err != nil {
		return nil, err
	}
	b := newBuilder(o)
	return b.build(ctx)
}

func normalize(o Options) (Options, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("sandbox: "+format, args...)) }
	if o.Dir == "" {
		bad("Dir is required")
	} else if abs, err := filepath.Abs(o.Dir); err != nil {
		bad("dir %s: %v", o.Dir, err)
	} else {
		o.Dir = abs
	}
	if o.Corpus != "" {
		if abs, err := filepath.Abs(o.Corpus); err == nil {
			o.Corpus = abs
		}
	}
	switch {
	case o.Users < 0:
		bad("Users is %d, want 0 or more", o.Users)
	case o.Users == 0 && o.Corpus == "":
		o.Users = 40
	}
	switch {
	case o.MissingHomes < -1:
		bad("MissingHomes is %d, want -1 (none), 0 (default) or more", o.MissingHomes)
	case o.MissingHomes == -1:
		o.MissingHomes = 0
	case o.MissingHomes == 0 && o.Corpus == "":
		o.MissingHomes = 1
	}
	if len(o.Hosts) == 0 {
		o.Hosts = DefaultHosts()
	} else {
		o.Hosts = slices.Clone(o.Hosts)
	}
	seen := map[string]bool{}
	for i, h := range o.Hosts {
		switch {
		case h.Name == "":
			bad("host #%d has no name", i+1)
		case cluster.CheckUser(h.Name) != nil || strings.ContainsAny(h.Name, "\"\\"):
			bad("host name %q is not a plain name", h.Name)
		case seen[h.Name]:
			bad("host %q appears twice", h.Name)
		}
		seen[h.Name] = true
		if h.Weight < 0 || math.IsNaN(h.Weight) || math.IsInf(h.Weight, 0) {
			bad("host %s: weight %v, want a finite number ≥ 0", h.Name, h.Weight)
		}
		if h.Share < 0 || math.IsNaN(h.Share) || math.IsInf(h.Share, 0) {
			bad("host %s: share %v, want a finite number ≥ 0", h.Name, h.Share)
		}
	}
	if o.UIDBase == 0 {
		o.UIDBase = 5000
	}
	if o.UIDBase < 0 {
		bad("UIDBase is %d, want a positive uid", o.UIDBase)
	}
	if o.Domain == "" {
		o.Domain = "example.edu"
	}
	if o.Layout == "" {
		o.Layout = "{root}/{user}"
	}
	if !strings.HasPrefix(o.Layout, "{root}/") || !strings.HasSuffix(o.Layout, "{user}") ||
		strings.Count(o.Layout, "{user}") != 1 {
		bad("layout %q must start with {root}/ and end with {user}", o.Layout)
	} else {
		rest := strings.NewReplacer("{root}", "", "{user}", "", "{hash2}", "").Replace(o.Layout)
		if strings.ContainsAny(rest, "{}\\\":") || strings.IndexFunc(rest, unicode.IsSpace) >= 0 || slices.Contains(strings.Split(rest, "/"), "..") ||
			strings.Contains(o.Layout, "//") {
			bad("layout %q: only {root}, {user} and {hash2} may appear, in plain folders", o.Layout)
		}
	}
	switch {
	case o.LogDays < 0:
		bad("LogDays is %d, want 0 (default) or more", o.LogDays)
	case o.LogDays == 0:
		o.LogDays = 7
	}
	return o, errors.Join(errs...)
}

// prepareDir makes dir, which must be absent or empty, and opens it to
// everyone (0755): the users' own uids must reach their homes below it.
func prepareDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	case err != nil:
		return fmt.Errorf("sandbox: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("sandbox: %s is not empty", dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// HostRoot is the host-absolute folder where a sandbox host keeps homes.
func HostRoot(host string) string { return "/" + host }

// FSRoot is the folder that holds host's file system: its fsroot.
func (c *Cluster) FSRoot(host string) string { return filepath.Join(c.Dir, "cluster", host) }

// RealPath says where a host-absolute home (or any path under a host's
// root) is on this machine: under the fsroot of the host whose root holds
// it. It returns "" if no host's root holds it.
func (c *Cluster) RealPath(home string) string {
	h, ok := c.cluster().HostOf(home)
	if !ok {
		return ""
	}
	return filepath.Join(c.FSRoot(h.Name), filepath.FromSlash(path.Clean(home)))
}

// User returns the user with the given name.
func (c *Cluster) User(name string) (User, bool) {
	i, ok := slices.BinarySearchFunc(c.Users, name, func(u User, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return User{}, false
	}
	return c.Users[i], true
}

func (c *Cluster) cluster() *cluster.Cluster {
	cc := &cluster.Cluster{Domain: c.Domain, HomeLayout: c.Layout}
	for _, h := range c.Hosts {
		cc.Hosts = append(cc.Hosts, &cluster.Host{Name: h.Name, Pool: h.Pool, Root: HostRoot(h.Name),
			FSRoot: c.FSRoot(h.Name), Weight: h.Weight, AcceptNew: h.AcceptNew, Drain: h.Drain})
	}
	return cc
}

// logWindow is the span of the Dovecot log: it ends at 06:00 UTC on a day
// of 2025 picked by the seed, never by the clock.
func logWindow(seed int64, days int) (start, end time.Time) {
	r := newRand(seed, "log-end", "", 0)
	end = time.Date(2025, 1, 1, 6, 0, 0, 0, time.UTC).AddDate(0, 0, 30+r.IntN(300))
	return end.AddDate(0, 0, -days), end
}
