package cli

import (
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
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
)

// openDirectory opens the directory a config names.
func openDirectory(cfg *config.Config) (directory.Directory, error) {
	switch cfg.Directory.Type {
	case "passwd":
		return passwd.Open(cfg.Directory.Path, passwd.Options{HoldMarker: cfg.Directory.HoldMarker})
	}
	return nil, fmt.Errorf("directory type %q is not supported", cfg.Directory.Type)
}

// hostsOf returns a lookup of the config's hosts.
func hostsOf(cfg *config.Config) func(string) (host.Host, error) {
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

// engineOptions are what a command adds to the config's engine.
type engineOptions struct {
	journalDir  string // default state_dir/journal
	batch       string
	allowUnsafe bool
	log         *runstate.Log
}

// newEngine wires a move engine from a config.
func newEngine(g *globals, cfg *config.Config, opt engineOptions) (*move.Engine, directory.Directory, error) {
	dir, err := openDirectory(cfg)
	if err != nil {
		return nil, nil, err
	}
	src, err := activity.New(cfg.Activity, cfg.Domain, host.RunCommand)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	hold, err := delivery.New(cfg.Delivery, host.RunCommand)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	if r, ok := hold.(*delivery.Rename); ok {
		r.AllowUnsafe = opt.allowUnsafe
	}
	jd := opt.journalDir
	if jd == "" {
		jd = filepath.Join(cfg.StateDir, "journal")
	}
	hostname, _ := os.Hostname()
	e := &move.Engine{
		Cluster:   cfg.Cluster(),
		Directory: dir,
		Host:      hostsOf(cfg),
		Copier:    &host.LocalCopier{},
		Hold:      hold,
		HoldKinds: func(kind string) (delivery.Hold, error) {
			d := cfg.Delivery
			d.Hold = kind
			return delivery.New(d, host.RunCommand)
		},
		Activity:   activity.Here{Source: src},
		Stub:       cfg.Delivery.Stub == "forward",
		Marker:     cfg.Directory.HoldMarker,
		JournalDir: jd,
		LockDir:    filepath.Join(cfg.StateDir, "locks"),
		Settle:     cfg.Delivery.Settle,
		Margin:     cfg.Delivery.Margin,
		Batch:      opt.batch,
		Runner:     hostname,
	}
	e.Events = func(ev runstate.Event) {
		if opt.log != nil {
			if err := opt.log.Append(ev); err != nil {
				g.logf("warning: %v", err)
			}
		}
		if g.verbose || ev.Outcome != "ok" {
			g.logf("%s", describeEvent(ev))
		}
	}
	return e, dir, nil
}

// describeEvent is one line of progress for stderr.
func describeEvent(ev runstate.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s %s", time.Now().Format("15:04:05"), ev.User, ev.Step, ev.Outcome)
	if ev.Reason != "" {
		fmt.Fprintf(&b, " (%s)", ev.Reason)
	}
	if ev.Bytes > 0 {
		fmt.Fprintf(&b, " %s", humanBytes(ev.Bytes))
	}
	if ev.HeldMS > 0 {
		fmt.Fprintf(&b, " held %.1fs", float64(ev.HeldMS)/1000)
	}
	if ev.Detail != "" {
		fmt.Fprintf(&b, ": %s", ev.Detail)
	}
	return b.String()
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
