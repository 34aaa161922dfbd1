package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/wire"
)

// engineOptions are what a command adds to the config's engine.
type engineOptions struct {
	journalDir  string // default state_dir/journal
	batch       string
	allowUnsafe bool
	noPreCopy   bool
	log         *runstate.Log
}

// newEngine wires a move engine from a config, reporting its events on
// stderr and in the run's log.
func newEngine(g *globals, cfg *config.Config, opt engineOptions) (*move.Engine, directory.Directory, error) {
	events := func(ev runstate.Event) {
		if opt.log != nil {
			if err := opt.log.Append(ev); err != nil {
				g.logf("warning: %v", err)
			}
		}
		// A refusal is the command's result, printed once there; other
		// outcomes (failures, undos, warnings) are worth a line as they
		// happen.
		if g.verbose || (ev.Outcome != "ok" && ev.Outcome != "refused") {
			g.logf("%s", describeEvent(ev))
		}
	}
	return wire.Engine(cfg, wire.Options{JournalDir: opt.journalDir, Batch: opt.batch, AllowUnsafe: opt.allowUnsafe, NoPreCopy: opt.noPreCopy, Events: events})
}

// openDirectory opens the directory a config names.
func openDirectory(cfg *config.Config) (directory.Directory, error) { return wire.Directory(cfg) }

// describeEvent is one line of progress for stderr.
func describeEvent(ev runstate.Event) string {
	var b strings.Builder
	user := ev.User
	if strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		user = strconv.Quote(user)
	}
	step := ev.Step
	if step == ev.Outcome {
		step = "" // "undone undone"
	}
	fmt.Fprintf(&b, "%s %s: %s", time.Now().Format("15:04:05"), user, strings.TrimSpace(step+" "+ev.Outcome))
	if ev.Reason != "" {
		fmt.Fprintf(&b, " (%s)", ev.Reason)
	}
	if ev.Bytes > 0 {
		fmt.Fprintf(&b, " %s copied", humanBytes(ev.Bytes))
	}
	if ev.HeldMS > 0 {
		fmt.Fprintf(&b, " held %s", heldText(time.Duration(ev.HeldMS)*time.Millisecond))
	}
	if ev.Detail != "" {
		fmt.Fprintf(&b, ": %s", ev.Detail)
	}
	return b.String()
}

// heldText formats how long a user was held: milliseconds under a
// second, where most holds with a precopy are, tenths of seconds above.
func heldText(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
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
