// Package wire builds maildist's working parts from a loaded config: the
// directory, the hosts, the activity source, the hold and the move engine.
// The commands and the end-to-end tests both wire through here, so a test
// exercises exactly what an operator runs.
package wire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/agent/agentapi"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/passwd"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/kick"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/survey"
	"github.com/maildist/maildist/internal/survey/dovelog"
	"github.com/maildist/maildist/internal/tree"
)

// Directory opens the directory a config names.
func Directory(cfg *config.Config) (directory.Directory, error) {
	switch cfg.Directory.Type {
	case "passwd":
		return passwd.Open(cfg.Directory.Path, passwd.Options{HoldMarker: cfg.Directory.HoldMarker})
	case "sql":
		d := cfg.Directory
		dsn := d.DSN
		if d.DSNFile != "" {
			if msg := config.CheckSecretFile(d.DSNFile); msg != "" {
				return nil, fmt.Errorf("directory.dsn_file %s", msg)
			}
			b, err := os.ReadFile(d.DSNFile)
			if err != nil {
				return nil, fmt.Errorf("directory.dsn_file: %w", err)
			}
			dsn = strings.TrimSpace(string(b))
		}
		c := cfg.Cluster()
		db, err := dirsql.Open(context.Background(), dirsql.Options{
			Driver: d.Driver, DSN: dsn, SwitchDelay: d.SwitchDelay,
			Queries: dirsql.Queries{List: d.Queries["list"], Lookup: d.Queries["lookup"], Switch: d.Queries["switch"],
				Hold: d.Queries["hold"], Unhold: d.Queries["unhold"]},
			HostOf: func(home string) string {
				if h, ok := c.HostOf(home); ok {
					return h.Name
				}
				return ""
			},
		})
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, fmt.Errorf("directory type %q is not supported", cfg.Directory.Type)
}

// Hosts returns a lookup of the config's hosts: local hosts through their
// fsroot, the others through their agents (with the [tls] certificate,
// loaded when first needed).
func Hosts(cfg *config.Config) func(string) (host.Host, error) {
	return hostsWith(cfg, lazyAgents(cfg, false), nil)
}

// hostsWith is Hosts with the agents of pool; the local hosts' scans
// share cache (see host.Local.Cache), if set.
func hostsWith(cfg *config.Config, pool func() (*agentapi.Pool, error), cache *tree.Cache) func(string) (host.Host, error) {
	c := cfg.Cluster()
	hs := map[string]host.Host{}
	for _, h := range cfg.Hosts {
		if h.Local() {
			l := host.NewLocal(h, c)
			l.Cache = cache
			hs[h.Name] = l
		}
	}
	return func(name string) (host.Host, error) {
		if h, ok := hs[name]; ok {
			return h, nil
		}
		if ch, ok := c.Host(name); ok && !ch.Local() {
			p, err := pool()
			if err != nil {
				return nil, fmt.Errorf("host %s is reached through its agent (%s): %w", name, ch.Agent, err)
			}
			return p.Client(ch), nil
		}
		return nil, fmt.Errorf("no host named %q in %s", name, cfg.Path)
	}
}

// HasAgents reports whether some host of the config has an agent.
func HasAgents(cfg *config.Config) bool {
	for _, h := range cfg.Hosts {
		if !h.Local() {
			return true
		}
	}
	return false
}

// Agents returns the pool of the config's agents, with the coordinator's
// certificate of [tls].
func Agents(cfg *config.Config, allowUnsafe bool) (*agentapi.Pool, error) {
	l, err := pki.Load(pki.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, pki.RoleCoordinator)
	if err != nil {
		return nil, fmt.Errorf("[tls] in %s: %w", cfg.Path, err)
	}
	return agentapi.NewPool(agentapi.Options{
		TLS: l, Compress: cfg.Agents.Compress, Timeout: cfg.Agents.Timeout,
		Flush: cfg.Delivery.Flush, Queue: cfg.Delivery.Queue, AllowUnsafe: allowUnsafe,
	}), nil
}

func lazyAgents(cfg *config.Config, allowUnsafe bool) func() (*agentapi.Pool, error) {
	var once sync.Once
	var p *agentapi.Pool
	var err error
	return func() (*agentapi.Pool, error) {
		once.Do(func() { p, err = Agents(cfg, allowUnsafe) })
		return p, err
	}
}

// Disk is the survey's reader of the config's homes: local hosts'
// through their fsroot, the others' through their agents.
func Disk(cfg *config.Config) (survey.DiskReader, error) {
	if !HasAgents(cfg) {
		return survey.LocalDisk{}, nil
	}
	p, err := Agents(cfg, false)
	if err != nil {
		return nil, err
	}
	return agentapi.Disk{Local: survey.LocalDisk{}, Pool: p}, nil
}

// AgentLogs lists the Dovecot logs of every host with an agent, as
// streams a survey reads, with their sizes.
func AgentLogs(ctx context.Context, cfg *config.Config) ([]dovelog.Stream, []int64, error) {
	if !HasAgents(cfg) {
		return nil, nil, nil
	}
	p, err := Agents(cfg, false)
	if err != nil {
		return nil, nil, err
	}
	var streams []dovelog.Stream
	var sizes []int64
	for _, h := range cfg.Hosts {
		if h.Local() {
			continue
		}
		ss, zs, err := p.Client(h).LogStreams(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("logs of %s: %w", h.Name, err)
		}
		streams, sizes = append(streams, ss...), append(sizes, zs...)
	}
	return streams, sizes, nil
}

// Options are what a command adds to the config's engine.
type Options struct {
	JournalDir  string // default state_dir/journal
	Batch       string
	AllowUnsafe bool                 // hold by rename where the user could recreate the home
	NoPreCopy   bool                 // copy only under the hold
	Events      func(runstate.Event) // told of every step
}

// Engine wires a move engine from a config. Close the directory it
// returns when done.
func Engine(cfg *config.Config, opt Options) (*move.Engine, directory.Directory, error) {
	dir, err := Directory(cfg)
	if err != nil {
		return nil, nil, err
	}
	src, err := activity.New(cfg.Activity, cfg.Domain, host.RunCommand)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	pool := lazyAgents(cfg, opt.AllowUnsafe)
	agents := HasAgents(cfg)
	newHold := func(kind string) (delivery.Hold, error) {
		d := cfg.Delivery
		d.Hold = kind
		h, err := delivery.New(d, host.RunCommand)
		if r, ok := h.(*delivery.Rename); ok {
			r.AllowUnsafe = opt.AllowUnsafe
		}
		if pf, ok := h.(*delivery.Postfix); ok && cfg.Forward.Map != "" {
			// maildist forward rewrites user@HOST.domain: hold those too.
			for _, ch := range cfg.Hosts {
				pf.HostAddresses = append(pf.HostAddresses, ch.Name)
			}
		}
		if err == nil && agents {
			// On a host with an agent, the agent holds: a rename there, or
			// its own hold commands, where the MTA is.
			h = &agentapi.Hold{Local: h, AllowUnsafe: opt.AllowUnsafe}
		}
		return h, err
	}
	var act move.Activity = activity.Here{Source: src}
	if agents {
		p, err := pool()
		if err != nil {
			dir.Close()
			return nil, nil, err
		}
		a := &agentapi.Activity{Local: src, Agents: map[string]*agentapi.Client{}, Timeout: cfg.Agents.Timeout}
		for _, h := range cfg.Hosts {
			if !h.Local() {
				a.Agents[h.Name] = p.Client(h)
			}
		}
		act = a
	}
	hold, err := newHold(cfg.Delivery.Hold)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	var kicker move.Kicker
	switch cfg.Activity.Source {
	case "doveadm", "proc":
		kicker = Kicker{Activity: cfg.Activity}
	}
	jd := opt.JournalDir
	if jd == "" {
		jd = filepath.Join(cfg.StateDir, "journal")
	}
	hostname, _ := os.Hostname()
	// One cache for every copy and scan of the engine's moves: the passes
	// under the hold then look only at what changed since the precopy
	// (see tree.Cache).
	cache := tree.NewCache()
	e := &move.Engine{
		Cluster:      cfg.Cluster(),
		Directory:    dir,
		Host:         hostsWith(cfg, pool, cache),
		Copier:       &host.LocalCopier{Options: tree.Options{Cache: cache}},
		Hold:         hold,
		HoldKinds:    newHold,
		Activity:     act,
		Kicker:       kicker,
		EntryChanged: entryChanged(cfg),
		Stub:         cfg.Delivery.Stub == "forward",
		Marker:       cfg.Directory.HoldMarker,
		JournalDir:   jd,
		OtherJournals: func() []string {
			dirs := JournalDirs(cfg)
			return slices.DeleteFunc(dirs, func(d string) bool { return filepath.Clean(d) == filepath.Clean(jd) })
		},
		LockDir: filepath.Join(cfg.StateDir, "locks"),
		Settle:  cfg.Delivery.Settle,
		PreCopy: cfg.Move.PreCopy && !opt.NoPreCopy,
		Margin:  cfg.Delivery.Margin,
		Batch:   opt.Batch,
		Runner:  hostname,
		Events:  opt.Events,
	}
	return e, dir, nil
}

// Kicker ends a user's sessions on this machine: `doveadm kick USER`, or,
// with the proc source, SIGTERM (then SIGKILL) to the user's service
// processes, each checked to be the process listed before it is signalled.
type Kicker struct {
	Activity config.Activity
	Grace    time.Duration // default 5s
}

// Kick ends user's sessions.
func (k Kicker) Kick(ctx context.Context, user string, uid int, hosts []string) error {
	switch k.Activity.Source {
	case "doveadm":
		return kick.DoveadmKick(ctx, kick.Runner(host.RunCommand), k.Activity.Doveadm, user)
	case "proc":
		ss, err := (&activity.Proc{Services: k.Activity.Services}).Sessions(ctx, user, uid)
		if err != nil {
			return err
		}
		var ps []kick.Process
		for _, s := range ss {
			ps = append(ps, kick.Process{PID: s.PID, UID: uid, Name: s.Service, Since: s.Since})
		}
		grace := k.Grace
		if grace == 0 {
			grace = 5 * time.Second
		}
		var errs []error
		for _, r := range (&kick.Ender{Grace: grace}).End(ctx, ps) {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("%v: %w", r.Process, r.Err))
			}
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("activity source %q cannot end sessions", k.Activity.Source)
}

// entryChanged flushes Dovecot's auth cache entry of a user whose entry
// maildist changed (switched, held, released), so a Dovecot with
// auth_cache_size > 0 stops giving out the old home, refuses a held user
// and lets a released one in at once, not after auth_cache_ttl. Only where
// Dovecot is the activity source, and so doveadm is known to work.
func entryChanged(cfg *config.Config) func(ctx context.Context, user string) error {
	if cfg.Activity.Source != "doveadm" {
		return nil
	}
	doveadm := cfg.Activity.Doveadm
	return func(ctx context.Context, user string) error {
		argv := append(append([]string(nil), doveadm...), "auth", "cache", "flush", user)
		_, err := host.RunCommand(ctx, argv)
		return err
	}
}

// JournalDirs are the journal folders of the ad-hoc moves and of every run
// a runner has worked in (state_dir's list of runs).
func JournalDirs(cfg *config.Config) []string {
	dirs := []string{filepath.Join(cfg.StateDir, "journal")}
	runs, _ := runstate.KnownRuns(cfg.StateDir)
	for _, r := range runs {
		dirs = append(dirs, filepath.Join(r, "journal"))
	}
	return dirs
}
