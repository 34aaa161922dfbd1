package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/move"
	"github.com/maildist/maildist/internal/sandbox"
)

type demoOptions struct {
	corpus string
	users  int
	seed   int64
}

func newDemoCommand(g *globals) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo [DIR]",
		Short: "Build a sandbox cluster and move mailboxes on it",
		Long: `Build a sandbox mail cluster in DIR (default ./maildist-demo): several hosts,
each a folder with a file system of its own, a passwd-file directory, real
Maildirs and a maildist.toml; then move users between the hosts and finish
with done, printing what happened. Nothing outside DIR is touched.

Without --corpus the mailboxes are generated. With --corpus PATH (the Enron
tar.gz, e.g. ../shared/data/enron-inbox.tar.gz, or a folder in its layout)
every message of the corpus is laid out as a Maildir on unevenly loaded
hosts. Afterwards, try the commands the demo prints with --config
DIR/maildist.toml.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "maildist-demo"
			if len(args) == 1 {
				dir = args[0]
			}
			return runDemo(cmd.Context(), opts, g, dir)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.corpus, "corpus", "", "lay out this corpus (Enron tar.gz or folder) instead of generated mail")
	f.IntVar(&opts.users, "users", 0, "how many users (generated: default 40; corpus: default all)")
	f.Int64Var(&opts.seed, "seed", 1, "seed for everything random")
	return cmd
}

// prepareDemoDir makes sure dir is empty, or an earlier demo that can be
// replaced. It never removes a folder that is not a demo.
func prepareDemoDir(g *globals, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, ".maildist-demo")); err != nil {
		return usagef("%s exists and is not an earlier demo; give another folder", dir)
	}
	g.logf("removing the earlier demo in %s", dir)
	return os.RemoveAll(dir)
}

func runDemo(ctx context.Context, opts demoOptions, g *globals, dir string) error {
	if err := prepareDemoDir(g, dir); err != nil {
		return err
	}
	start := time.Now()
	g.logf("building a sandbox cluster in %s …", dir)
	last := time.Now()
	c, err := sandbox.Build(ctx, sandbox.Options{
		Dir: dir, Corpus: opts.corpus, Users: opts.users, Seed: opts.seed,
		Progress: func(done, total int) {
			if time.Since(last) > time.Second || done == total {
				last = time.Now()
				g.logf("  %3d%%", done*100/max(total, 1))
			}
		},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".maildist-demo"), []byte("a maildist demo; `maildist demo` may replace it\n"), 0o644); err != nil {
		return err
	}
	g.logf("built in %v", time.Since(start).Round(time.Millisecond))
	cfg, err := config.Load(c.Config)
	if err != nil {
		return err
	}
	out := g.stdout
	fmt.Fprintf(out, "Sandbox cluster in %s: %d users on %d hosts.\n\n", c.Dir, len(c.Users), len(c.Hosts))
	printHosts(g, cfg, c)

	// A few moves, as an operator would make them by hand: from the
	// fullest host to the emptiest, the largest mailbox, a middling one and
	// the smallest.
	picks := demoPicks(c)
	e, dir2, err := newEngine(g, cfg, engineOptions{})
	if err != nil {
		return err
	}
	defer dir2.Close()
	fmt.Fprintf(out, "\nMoving %d users, each held only while its copy is made and verified:\n", len(picks))
	for _, p := range picks {
		fmt.Fprintf(out, "  maildist move %s %s\n", p.user, p.to)
		r := e.Move(ctx, move.Request{User: p.user, To: p.to})
		fmt.Fprint(out, "    ")
		printResult(g, r)
		if r.Outcome != move.OutcomeMoved {
			return resultError(r)
		}
	}
	fmt.Fprintf(out, "\n  maildist done    (a sandbox has no MTA, so no mail waits in a queue)\n")
	entries, err := e.Done(ctx, move.DoneOptions{Domain: cfg.Domain})
	if err != nil {
		return err
	}
	for _, d := range entries {
		fmt.Fprintf(out, "    %s: %s (stub on %s removed, old copy purged)\n", d.User, d.Status, d.From)
	}
	fmt.Fprintln(out)
	printHosts(g, cfg, c)
	fmt.Fprintf(out, "\nTry it yourself:\n  export MAILDIST_CONFIG=%s\n  maildist move %s %s\n  maildist done\n",
		c.Config, picks[0].user, picks[0].from)
	return nil
}

type demoMove struct{ user, from, to string }

// demoPicks chooses the demo's moves: from the host holding the most users
// to the one holding the fewest, its largest, a middling and its smallest
// mailbox.
func demoPicks(c *sandbox.Cluster) []demoMove {
	byHost := map[string][]sandbox.User{}
	for _, u := range c.Users {
		if u.Status == "ok" {
			byHost[u.Host] = append(byHost[u.Host], u)
		}
	}
	var hosts []string
	for _, h := range c.Hosts {
		hosts = append(hosts, h.Name)
	}
	sort.SliceStable(hosts, func(i, j int) bool { return len(byHost[hosts[i]]) > len(byHost[hosts[j]]) })
	from, to := hosts[0], hosts[len(hosts)-1]
	us := byHost[from]
	sort.Slice(us, func(i, j int) bool { return us[i].Bytes > us[j].Bytes })
	var picks []demoMove
	seen := map[string]bool{}
	for _, i := range []int{0, len(us) / 2, len(us) - 1} {
		if i >= 0 && i < len(us) && !seen[us[i].Name] {
			seen[us[i].Name] = true
			picks = append(picks, demoMove{us[i].Name, from, to})
		}
	}
	return picks
}

// printHosts prints users and disk use per host, read from the disk.
func printHosts(g *globals, cfg *config.Config, c *sandbox.Cluster) {
	dir, err := openDirectoryForDemo(cfg)
	if err != nil {
		g.logf("warning: %v", err)
		return
	}
	users := map[string]int{}
	for _, h := range dir {
		users[h]++
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "host\tusers\ton disk\t")
	for _, h := range cfg.Hosts {
		n, _ := host.DiskUsage(filepath.Join(h.FSRoot, h.Root))
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", h.Name, users[h.Name], humanBytes(n))
	}
	tw.Flush()
}

// openDirectoryForDemo returns the host of every user in the directory.
func openDirectoryForDemo(cfg *config.Config) ([]string, error) {
	d, err := openDirectory(cfg)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	es, err := d.List(context.Background())
	if err != nil {
		return nil, err
	}
	var hosts []string
	c := cfg.Cluster()
	for _, e := range es {
		if h, ok := c.HostOf(e.Home); ok {
			hosts = append(hosts, h.Name)
		}
	}
	return hosts, nil
}
