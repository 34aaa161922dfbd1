package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
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
		Short: "Build a sandbox cluster and run the whole job on it",
		Long: `Build a sandbox mail cluster in DIR (default ./maildist-demo): several hosts,
each a folder with a file system of its own, a passwd-file directory, real
Maildirs, a Dovecot log and a maildist.toml; then run the whole job on it,
as an operator would: survey, plan, assign, run, done. One host is being
retired, one is twice the size of the others and nearly empty, one is new
and empty. Nothing outside DIR is touched.

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
	f.IntVar(&opts.users, "users", 0, "how many users (generated: default 100; corpus: default all)")
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
	users := opts.users
	if users == 0 && opts.corpus == "" {
		users = 100
	}
	c, err := sandbox.Build(ctx, sandbox.Options{
		Dir: dir, Corpus: opts.corpus, Users: users, Seed: opts.seed, Hosts: demoHosts(),
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
	fmt.Fprintf(out, "A sandbox mail cluster in %s: %d users on %d hosts.\n", c.Dir, len(c.Users), len(c.Hosts))
	fmt.Fprintf(out, "bp03 is being retired (drain = true); bp04 is twice the size of the others\n")
	fmt.Fprintf(out, "(weight = 2) and nearly empty; bp05 is new and empty. Before:\n\n")
	printHosts(g, cfg)

	// The main job, as an operator runs it.
	run := filepath.Join(c.Dir, "runs", "01")
	sub := *g
	sub.configPath = c.Config
	sub.json = false
	steps := [][]string{
		{"survey", run},
		{"plan", run, "--seed", strconv.FormatInt(opts.seed, 10)},
		{"assign", run},
		{"run", run, "--parallel", "2", "--per-host", "1", "--progress", "none"},
		{"done", run},
	}
	for _, args := range steps {
		fmt.Fprintf(out, "\n$ maildist %s\n", strings.Join(args, " "))
		if err := execute(ctx, &sub, args...); err != nil {
			return fmt.Errorf("demo: maildist %s: %w", args[0], err)
		}
	}
	fmt.Fprintf(out, "\nAfter:\n\n")
	printHosts(g, cfg)
	fmt.Fprintf(out, "\nThe plan's report: %s\n", filepath.Join(run, "report.html"))
	self := selfCommand()
	fmt.Fprintf(out, "\nTry it yourself:\n  export MAILDIST_CONFIG=%s\n  %s status %s\n", c.Config, self, run)
	if picks := demoPicks(c, cfg); len(picks) > 0 {
		fmt.Fprintf(out, "  %s move %s %s\n  %s done\n", self, picks[0].user, picks[0].to, self)
	}
	return nil
}

// selfCommand is how to run this maildist again from the folder it was
// started in: "go run ./cmd/maildist" for a binary go run built and will
// remove, "maildist" for the one the PATH finds, else the path it was
// started by.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "maildist"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/maildist"
	}
	if p, err := exec.LookPath(filepath.Base(exe)); err == nil {
		if abs, err := filepath.Abs(p); err == nil && abs == exe {
			return filepath.Base(exe)
		}
	}
	return os.Args[0]
}

// execute runs one maildist command line in this process, with g's
// streams and config.
func execute(ctx context.Context, g *globals, args ...string) error {
	// Flags are bound afresh by the new root command, which resets them.
	if g.configPath != "" {
		args = append([]string{"--config", g.configPath}, args...)
	}
	root := newRootCommand(g)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// demoHosts is the demo's cluster: skewed, one host retiring, one new
// host twice the size of the others, one new and empty.
func demoHosts() []sandbox.HostSpec {
	return []sandbox.HostSpec{
		{Name: "bp01", Pool: "bp", Weight: 1, AcceptNew: true, Share: 4},
		{Name: "bp02", Pool: "bp", Weight: 1, AcceptNew: true, Share: 3},
		{Name: "bp03", Pool: "bp", Weight: 1, AcceptNew: true, Drain: true, Share: 2},
		{Name: "bp04", Pool: "bp", Weight: 2, AcceptNew: true, Share: 1},
		{Name: "bp05", Pool: "bp", Weight: 1, AcceptNew: true, Share: 0},
	}
}

type demoMove struct{ user, from, to string }

// demoPicks suggests a move to try by hand: the smallest mailbox of the
// fullest host, to the emptiest host that takes new users.
func demoPicks(c *sandbox.Cluster, cfg *config.Config) []demoMove {
	homes, err := openDirectoryForDemo(cfg)
	if err != nil {
		return nil
	}
	count := map[string]int{}
	for _, h := range homes {
		count[h.host]++
	}
	var from, to string
	for _, h := range cfg.Hosts {
		if from == "" || count[h.Name] > count[from] {
			from = h.Name
		}
		if !h.Drain && h.AcceptNew && (to == "" || count[h.Name] < count[to]) {
			to = h.Name
		}
	}
	var best *sandbox.User
	for i, u := range c.Users {
		if u.Status == "ok" && homes[u.Name].host == from && (best == nil || u.Bytes < best.Bytes) {
			best = &c.Users[i]
		}
	}
	if best == nil || from == to {
		return nil
	}
	return []demoMove{{best.Name, from, to}}
}

// printHosts prints users and disk use per host, read from the directory
// and the disk.
func printHosts(g *globals, cfg *config.Config) {
	homes, err := openDirectoryForDemo(cfg)
	if err != nil {
		g.logf("warning: %v", err)
		return
	}
	users := map[string]int{}
	for _, h := range homes {
		users[h.host]++
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "host\tweight\t\tusers\ton disk\t")
	for _, h := range cfg.Hosts {
		n, _ := host.DiskUsage(filepath.Join(h.FSRoot, h.Root))
		flag := ""
		switch {
		case h.Drain:
			flag = "drain"
		case !h.AcceptNew:
			flag = "no new"
		}
		fmt.Fprintf(tw, "%s\t%g\t%s\t%d\t%s\t\n", h.Name, h.Weight, flag, users[h.Name], humanBytes(n))
	}
	tw.Flush()
}

type demoHome struct{ home, host string }

// openDirectoryForDemo returns every user's home and host.
func openDirectoryForDemo(cfg *config.Config) (map[string]demoHome, error) {
	d, err := openDirectory(cfg)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	es, err := d.List(context.Background())
	if err != nil {
		return nil, err
	}
	out := map[string]demoHome{}
	c := cfg.Cluster()
	for _, e := range es {
		dh := demoHome{home: e.Home}
		if h, ok := c.HostOf(e.Home); ok {
			dh.host = h.Name
		}
		out[e.User] = dh
	}
	return out, nil
}
