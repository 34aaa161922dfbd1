package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/maildist/maildist/internal/cluster"
)

// Config is a loaded, validated maildist.toml.
type Config struct {
	Path       string // the file it was read from, absolute
	Domain     string
	StateDir   string // absolute
	HomeLayout string
	Directory  Directory
	Activity   Activity
	Delivery   Delivery
	Survey     Survey
	Forward    Forward
	Move       Move
	TLS        TLS
	Agents     Agents
	Hosts      []*cluster.Host
}

// Directory says where the user → home entries are kept.
type Directory struct {
	Type string // "passwd" or "sql"
	Path string // passwd: the file, absolute

	// HoldMarker, for a passwd-file directory, adds Dovecot's
	// "nologin reason=…" extra field while a user is held.
	HoldMarker bool

	// SQL: see the sql directory backend. HoldMarker is on for an sql
	// directory that has hold and unhold queries (the default queries
	// have them), unless hold_marker = false.
	Driver  string
	DSN     string
	DSNFile string // absolute; read by whoever opens the directory
	Queries map[string]string
	// SwitchDelay is added to the switch time to make :delay_until.
	SwitchDelay time.Duration
}

// Activity says how to tell whether a user has a live session.
type Activity struct {
	Source   string   // proc | doveadm | command | none
	Services []string // process names that count (proc)
	Command  []string // command: prints one active user a line
	Doveadm  []string // doveadm: the command to run, default ["doveadm"]
	Timeout  time.Duration
}

// Delivery says how mail is held, stubbed and flushed.
type Delivery struct {
	Hold    string   // rename | postfix | command
	Stub    string   // forward | none
	Flush   []string // run for each host that held mail
	Queue   []string // prints what is queued (one recipient a line, or postqueue -j)
	HoldCmd []string // hold = "command": run with USER HOME appended
	Release []string // hold = "command": run with USER HOME appended

	// Postfix, for hold = "postfix": the config folder (postfix -c), the
	// transport map maildist owns (its source file, absolute) and the
	// map's type (hash unless transport_map says "type:path").
	PostfixConfigDir string
	TransportMap     string
	TransportMapType string
	// Domain is the top-level domain: held recipients are user@Domain.
	Domain string
	// ReleaseDelay is how long after the switch a postfix hold releases
	// the held mail, so that the delivery agent has read the new home.
	ReleaseDelay time.Duration
	// Settle is how long to wait for open files under a held home.
	Settle time.Duration
	// Margin is the free space kept on a destination beyond a mailbox's size.
	Margin int64
}

// Move configures how a home is copied.
type Move struct {
	// PreCopy copies the live home before the hold, so the hold only
	// waits for the last difference (default true).
	PreCopy bool
}

// Survey configures the survey.
type Survey struct {
	Logs []string // globs, absolute
}

// Cluster returns the cluster the config describes.
func (c *Config) Cluster() *cluster.Cluster {
	return &cluster.Cluster{Domain: c.Domain, HomeLayout: c.HomeLayout, Hosts: c.Hosts}
}

// file mirrors maildist.toml.
type file struct {
	Domain     string `toml:"domain"`
	StateDir   string `toml:"state_dir"`
	HomeLayout string `toml:"home_layout"`
	Directory  struct {
		Type        string            `toml:"type"`
		Path        string            `toml:"path"`
		HoldMarker  *bool             `toml:"hold_marker"`
		Driver      string            `toml:"driver"`
		DSN         string            `toml:"dsn"`
		DSNFile     string            `toml:"dsn_file"`
		Queries     map[string]string `toml:"queries"`
		SwitchDelay string            `toml:"switch_delay"`
	} `toml:"directory"`
	Activity struct {
		Source   string   `toml:"source"`
		Services []string `toml:"services"`
		Command  []string `toml:"command"`
		Doveadm  []string `toml:"doveadm"`
		Timeout  string   `toml:"timeout"`
	} `toml:"activity"`
	Delivery struct {
		Hold             string   `toml:"hold"`
		Stub             string   `toml:"stub"`
		Flush            []string `toml:"flush"`
		Queue            []string `toml:"queue"`
		HoldCommand      []string `toml:"hold_command"`
		ReleaseCommand   []string `toml:"release_command"`
		PostfixConfigDir string   `toml:"postfix_config_dir"`
		TransportMap     string   `toml:"transport_map"`
		ReleaseDelay     string   `toml:"release_delay"`
		Settle           string   `toml:"settle"`
		Margin           *int64   `toml:"margin"`
	} `toml:"delivery"`
	Survey struct {
		Logs []string `toml:"logs"`
	} `toml:"survey"`
	Forward forwardFile `toml:"forward"`
	TLS     tlsFile     `toml:"tls"`
	Agents  agentsFile  `toml:"agents"`
	Move    struct {
		PreCopy *bool `toml:"precopy"`
	} `toml:"move"`
	Host []struct {
		Name      string   `toml:"name"`
		Pool      string   `toml:"pool"`
		Root      string   `toml:"root"`
		FSRoot    string   `toml:"fsroot"`
		Agent     string   `toml:"agent"`
		Weight    *float64 `toml:"weight"`
		AcceptNew *bool    `toml:"accept_new"`
		Drain     bool     `toml:"drain"`
	} `toml:"host"`
}

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int // 0 when the problem has no single line
	Msg  string
}

func (p Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is every problem found in one file.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Find returns the config file to use: flag, else $MAILDIST_CONFIG, else
// ./maildist.toml.
func Find(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("MAILDIST_CONFIG"); env != "" {
		return env
	}
	return "maildist.toml"
}

// Load reads and validates a config file. Its error is a Problems listing
// everything wrong, or a plain error if the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(abs, data)
}

// Parse validates config text as if read from path (which must be absolute
// for relative paths in it to resolve).
func Parse(path string, data []byte) (*Config, error) {
	v := &validator{file: path}
	idx, perr := indexKeys(data)
	if perr != nil {
		var se *syntaxError
		if errors.As(perr, &se) {
			v.at(se.line, "syntax error: %s", se.msg)
		} else {
			v.at(0, "%v", perr)
		}
		return nil, v.problems
	}
	v.idx = idx

	var f file
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sme *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &sme):
			for _, e := range sme.Errors {
				line, _ := e.Position()
				v.at(line, "unknown key %q", strings.Join(e.Key(), "."))
			}
		case errors.As(err, &de):
			line, msg := decodeProblem(de, data, v.idx)
			v.at(line, "%s", msg)
		default:
			v.at(0, "%v", err)
		}
		if len(v.problems) > 0 && !errors.As(err, &sme) {
			return nil, v.problems
		}
	}
	c := v.build(&f)
	if len(v.problems) > 0 {
		sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
		return nil, v.problems
	}
	return c, nil
}

type validator struct {
	file     string
	idx      keyIndex
	problems Problems
}

func (v *validator) at(line int, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// key reports a problem at the line of a key ("delivery.stub", "host.2.weight").
func (v *validator) key(key string, format string, args ...any) {
	v.at(v.idx.line(key), format, args...)
}

func (v *validator) rel(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(v.file), p)
}

func (v *validator) duration(key, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		v.key(key, "%s: %q is not a duration (like 30s or 5m)", key, s)
		return def
	}
	return d
}

func (v *validator) build(f *file) *Config {
	c := &Config{
		Path:       v.file,
		Domain:     f.Domain,
		StateDir:   v.rel(f.StateDir),
		HomeLayout: f.HomeLayout,
	}
	if c.StateDir == "" {
		c.StateDir = v.rel("state")
	}
	if c.HomeLayout == "" {
		c.HomeLayout = "{root}/{user}"
	}
	if !strings.Contains(c.HomeLayout, "{user}") || !strings.HasPrefix(c.HomeLayout, "{root}") {
		v.key("home_layout", "home_layout %q must start with {root} and contain {user}", c.HomeLayout)
	}
	rest := strings.NewReplacer("{root}", "", "{user}", "", "{hash2}", "").Replace(c.HomeLayout)
	if strings.ContainsAny(rest, "{}") || strings.Contains(rest, "..") {
		v.key("home_layout", "home_layout %q: only {root}, {user} and {hash2} may appear", c.HomeLayout)
	}

	// directory
	d := f.Directory
	c.Directory = Directory{Type: d.Type, Path: v.rel(d.Path), HoldMarker: d.HoldMarker != nil && *d.HoldMarker,
		Driver: d.Driver, DSN: d.DSN, DSNFile: v.rel(d.DSNFile), Queries: d.Queries}
	switch d.Type {
	case "", "passwd":
		c.Directory.Type = "passwd"
		if d.Path == "" {
			v.key("directory", "directory.path is required for a passwd directory")
		}
		for _, k := range []struct{ key, val string }{{"driver", d.Driver}, {"dsn", d.DSN}, {"dsn_file", d.DSNFile}, {"switch_delay", d.SwitchDelay}} {
			if k.val != "" {
				v.key("directory."+k.key, "directory.%s is for an sql directory (type = \"sql\")", k.key)
			}
		}
		if d.Queries != nil {
			v.key("directory.queries", "directory.queries is for an sql directory (type = \"sql\")")
		}
	case "sql":
		v.sqlDirectory(&c.Directory, d.HoldMarker, d.SwitchDelay)
	default:
		v.key("directory.type", "directory.type %q: want passwd or sql", d.Type)
	}

	// activity
	a := f.Activity
	c.Activity = Activity{Source: a.Source, Services: a.Services, Command: a.Command, Doveadm: a.Doveadm}
	c.Activity.Timeout = v.duration("activity.timeout", a.Timeout, 10*time.Second)
	switch a.Source {
	case "":
		c.Activity.Source = "proc"
	case "proc", "doveadm", "none":
	case "command":
		if len(a.Command) == 0 {
			v.key("activity.source", "activity.source = \"command\" needs activity.command")
		}
	default:
		v.key("activity.source", "activity.source %q: want proc, doveadm, command or none", a.Source)
	}
	if c.Activity.Services == nil {
		c.Activity.Services = []string{"imap", "pop3", "imapd", "ipop3d"}
	}
	if len(c.Activity.Doveadm) == 0 {
		c.Activity.Doveadm = []string{"doveadm"}
	}

	// delivery
	dl := f.Delivery
	c.Delivery = Delivery{Hold: dl.Hold, Stub: dl.Stub, Flush: dl.Flush, Queue: dl.Queue,
		HoldCmd: dl.HoldCommand, Release: dl.ReleaseCommand,
		PostfixConfigDir: v.rel(dl.PostfixConfigDir), Domain: f.Domain}
	c.Delivery.Settle = v.duration("delivery.settle", dl.Settle, 30*time.Second)
	c.Delivery.ReleaseDelay = v.duration("delivery.release_delay", dl.ReleaseDelay, 2*time.Second)
	c.Delivery.Margin = 64 << 20
	if dl.Margin != nil {
		if *dl.Margin < 0 {
			v.key("delivery.margin", "delivery.margin must not be negative")
		}
		c.Delivery.Margin = *dl.Margin
	}
	switch dl.Hold {
	case "":
		c.Delivery.Hold = "rename"
	case "rename":
	case "postfix":
		if dl.PostfixConfigDir == "" {
			v.key("delivery.hold", "delivery.hold = \"postfix\" needs delivery.postfix_config_dir")
		}
		if f.Domain == "" {
			v.key("delivery.hold", "delivery.hold = \"postfix\" needs domain (held recipients are user@domain)")
		}
	case "command":
		if len(dl.HoldCommand) == 0 || len(dl.ReleaseCommand) == 0 {
			v.key("delivery.hold", "delivery.hold = \"command\" needs hold_command and release_command")
		}
	default:
		v.key("delivery.hold", "delivery.hold %q: want rename, postfix or command", dl.Hold)
	}
	v.postfix(c, dl.TransportMap, dl.Queue == nil, dl.Flush == nil)
	switch dl.Stub {
	case "":
		c.Delivery.Stub = "forward"
	case "forward", "none":
	default:
		v.key("delivery.stub", "delivery.stub %q: want forward or none", dl.Stub)
	}
	if c.Delivery.Stub == "forward" && c.Domain == "" {
		v.key("delivery.stub", "delivery.stub = \"forward\" needs domain (stubs forward to user@domain)")
	}

	// survey
	for _, g := range f.Survey.Logs {
		c.Survey.Logs = append(c.Survey.Logs, v.rel(g))
	}

	c.Forward = v.forward(&f.Forward, c.Domain)
	c.Move.PreCopy = true
	if f.Move.PreCopy != nil {
		c.Move.PreCopy = *f.Move.PreCopy
	}

	// hosts
	if len(f.Host) == 0 {
		v.at(0, "no [[host]] tables: a cluster needs at least one host")
	}
	names := map[string]int{}
	roots := map[string]int{}
	fsroots := map[string][]string{}
	for i, fh := range f.Host {
		k := func(name string) string { return fmt.Sprintf("host.%d.%s", i, name) }
		hk := fmt.Sprintf("host.%d", i)
		h := &cluster.Host{Name: fh.Name, Pool: fh.Pool, Root: fh.Root, Agent: fh.Agent, Weight: 1, AcceptNew: true, Drain: fh.Drain}
		if fh.Name == "" {
			v.key(hk, "[[host]] #%d has no name", i+1)
		} else if err := cluster.CheckUser(fh.Name); err != nil {
			v.key(k("name"), "host name %q is not a plain name", fh.Name)
		} else if prev, dup := names[fh.Name]; dup {
			v.key(k("name"), "host %q is defined twice (also [[host]] #%d)", fh.Name, prev+1)
		} else {
			names[fh.Name] = i
		}
		label := fh.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		if h.Pool == "" {
			h.Pool = "default"
		}
		switch {
		case fh.Root == "":
			v.key(hk, "host %s has no root", label)
		case !strings.HasPrefix(fh.Root, "/"):
			v.key(k("root"), "host %s: root %q must be an absolute path on the host", label, fh.Root)
		case filepath.Clean(fh.Root) == "/":
			v.key(k("root"), "host %s: root must not be /", label)
		default:
			h.Root = filepath.Clean(fh.Root)
			if prev, dup := roots[h.Root]; dup {
				v.key(k("root"), "host %s: root %s is also the root of [[host]] #%d", label, h.Root, prev+1)
			}
			roots[h.Root] = i
		}
		if fh.Weight != nil {
			h.Weight = *fh.Weight
			if h.Weight < 0 {
				v.key(k("weight"), "host %s: weight must not be negative", label)
			}
		}
		if fh.AcceptNew != nil {
			h.AcceptNew = *fh.AcceptNew
		}
		if fh.Agent != "" {
			if !strings.HasPrefix(fh.Agent, "https://") {
				v.key(k("agent"), "host %s: agent %q must be an https:// URL", label, fh.Agent)
			}
			if fh.FSRoot != "" {
				v.key(k("fsroot"), "host %s: give fsroot or agent, not both", label)
			}
		} else {
			fs := fh.FSRoot
			if fs == "" {
				fs = "/"
			}
			h.FSRoot = filepath.Clean(v.rel(fs))
			fsroots[h.FSRoot] = append(fsroots[h.FSRoot], label)
		}
		c.Hosts = append(c.Hosts, h)
	}
	agentKey := "" // the first host with an agent, for a missing [tls]
	for i, h := range c.Hosts {
		if h.Agent != "" && agentKey == "" {
			agentKey = fmt.Sprintf("host.%d.agent", i)
		}
	}
	c.TLS, c.Agents = v.agents(&f.TLS, &f.Agents, agentKey)
	if c.Delivery.Stub == "forward" {
		for fs, hosts := range fsroots {
			if len(hosts) > 1 {
				v.key("delivery.stub", "delivery.stub = \"forward\" needs each host to have a file system of its own, but hosts %s share fsroot %s: a stub would land in the new home itself; set stub = \"none\" or give each host its own fsroot",
					strings.Join(hosts, ", "), fs)
			}
		}
	}
	return c
}
