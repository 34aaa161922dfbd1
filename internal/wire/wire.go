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
	"strings"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/passwd"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/kick"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
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

// Hosts returns a lookup of the config's hosts.
func Hosts(cfg *config.Config) func(string) (host.Host, error) {
	c := cfg.Cluster()
	hs := map[string]host.Host{}
	for _, h := range cfg.Hosts {
		if h.Local() {
			hs[h.Name] = host.NewLocal(h, c)
		}
	}
	return func(name string) (host.Host, error) {
		if h, ok := hs[name]; ok {
			return h, nil
		}
		if ch, ok := c.Host(name); ok && !ch.Local() {
			return nil, fmt.Errorf("host %s is reached through its agent (%s), which this build cannot do yet", name, ch.Agent)
		}
		return nil, fmt.Errorf("no host named %q in %s", name, cfg.Path)
	}
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
	newHold := func(kind string) (delivery.Hold, error) {
		d := cfg.Delivery
		d.Hold = kind
		h, err := delivery.New(d, host.RunCommand)
		if r, ok := h.(*delivery.Rename); ok {
			r.AllowUnsafe = opt.AllowUnsafe
		}
		return h, err
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
	e := &move.Engine{
		Cluster:    cfg.Cluster(),
		Directory:  dir,
		Host:       Hosts(cfg),
		Copier:     &host.LocalCopier{},
		Hold:       hold,
		HoldKinds:  newHold,
		Activity:   activity.Here{Source: src},
		Kicker:     kicker,
		Stub:       cfg.Delivery.Stub == "forward",
		Marker:     cfg.Directory.HoldMarker,
		JournalDir: jd,
		LockDir:    filepath.Join(cfg.StateDir, "locks"),
		Settle:     cfg.Delivery.Settle,
		PreCopy:    cfg.Move.PreCopy && !opt.NoPreCopy,
		Margin:     cfg.Delivery.Margin,
		Batch:      opt.Batch,
		Runner:     hostname,
		Events:     opt.Events,
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
