package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/agent/agentapi"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
	"github.com/maildist/maildist/internal/wire"
)

func newAgentsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "agents",
		Aliases: []string{"hosts"},
		Short:   "Show every host: reachable, version, free space, users, clock skew",
		Long: `Ask every host of the config, at once, how it is: for a host with an agent,
whether the agent answers (within [agents] timeout) with a certificate of the
CA for that host's name, its version, its clock's skew from this machine's,
the space free under its root and the homes there; for a local host, the
same from its fsroot. users is how many users the directory places on the
host. The exit code is 1 if an agent did not answer.

  maildist agents bench FROM TO [--path HOME]   stream a home between two hosts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgents(cmd.Context(), g)
		},
	}
	cmd.AddCommand(newAgentsBenchCommand(g))
	return cmd
}

// MarshalJSON gives null, not 0, for what an unreachable host did not
// tell: 0 free bytes would read as a full disk.
func (r agentRow) MarshalJSON() ([]byte, error) {
	type plain agentRow
	out := struct {
		plain
		SkewS *float64 `json:"skew_s"`
		Free  *int64   `json:"free_bytes"`
		Homes *int     `json:"homes"`
	}{plain: plain(r)}
	if r.Reachable {
		out.SkewS, out.Free, out.Homes = &r.SkewS, &r.Free, &r.Homes
	}
	return json.Marshal(out)
}

// agentRow is one host's line.
type agentRow struct {
	Host      string  `json:"host"`
	Agent     string  `json:"agent,omitempty"` // URL; empty for a local host
	Reachable bool    `json:"reachable"`
	Version   string  `json:"version,omitempty"`
	SkewS     float64 `json:"skew_s"`
	RTTMS     float64 `json:"rtt_ms,omitempty"`
	Free      int64   `json:"free_bytes"`
	Homes     int     `json:"homes"`
	Users     int     `json:"users"`
	Error     string  `json:"error,omitempty"`
}

func runAgents(ctx context.Context, g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	users := map[string]int{}
	if d, err := wire.Directory(cfg); err != nil {
		g.logf("warning: the directory: %v", err)
	} else {
		es, err := d.List(ctx)
		d.Close()
		if err != nil {
			g.logf("warning: the directory: %v", err)
		}
		c := cfg.Cluster()
		for _, e := range es {
			if h, ok := c.HostOf(e.Home); ok {
				users[h.Name]++
			}
		}
	}
	var pool *agentapi.Pool
	if wire.HasAgents(cfg) {
		if pool, err = wire.Agents(cfg, false); err != nil {
			return err
		}
	}
	rows := make([]agentRow, len(cfg.Hosts))
	var wg sync.WaitGroup
	for i, h := range cfg.Hosts {
		wg.Go(func() {
			rows[i] = hostRow(ctx, cfg, pool, h)
			rows[i].Users = users[h.Name]
		})
	}
	wg.Wait()
	down := 0
	for _, r := range rows {
		if !r.Reachable {
			down++
		}
	}
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "host\tagent\treachable\tversion\tskew\tfree\thomes\tusers")
		for _, r := range rows {
			agent, reach, skew, version := "(local)", "yes", "-", r.Version
			if r.Agent != "" {
				agent = r.Agent
				skew = fmt.Sprintf("%+.3fs", r.SkewS)
			}
			if !r.Reachable {
				reach, skew = "NO", "-"
			}
			if version == "" {
				version = "-"
			}
			free, homes := humanBytes(r.Free), strconv.Itoa(r.Homes)
			if !r.Reachable {
				free, homes = "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Host, agent, reach, version, skew, free, homes, r.Users)
		}
		tw.Flush()
		for _, r := range rows {
			if r.Error != "" {
				g.logf("%s: %s", r.Host, r.Error)
			}
		}
	}
	if down > 0 {
		return fmt.Errorf("%d host(s) did not answer", down)
	}
	return nil
}

func hostRow(ctx context.Context, cfg *config.Config, pool *agentapi.Pool, h *cluster.Host) agentRow {
	r := agentRow{Host: h.Name, Agent: h.Agent}
	ctx, cancel := context.WithTimeout(ctx, cfg.Agents.Timeout)
	defer cancel()
	var hh host.Host
	if h.Local() {
		if fi, err := os.Stat(h.FSRoot); err != nil || !fi.IsDir() {
			r.Error = fmt.Sprintf("fsroot %s is not a folder", h.FSRoot)
			return r
		}
		r.Reachable = true
		hh = host.NewLocal(h, cfg.Cluster())
		if ents, err := os.ReadDir(h.FSRoot + h.Root); err == nil {
			for _, e := range ents {
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".maildist-") {
					r.Homes++
				}
			}
		}
	} else {
		c := pool.Client(h)
		before := time.Now()
		in, rtt, err := c.Info(ctx)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		r.Reachable, r.Version = true, in.Version
		r.RTTMS = float64(rtt.Microseconds()) / 1000
		r.SkewS = in.Time.Sub(before.Add(rtt / 2)).Seconds()
		if homes, err := c.Homes(ctx, h.Root); err == nil {
			r.Homes = len(homes)
		} else {
			r.Error = err.Error()
		}
		hh = c
	}
	if free, err := hh.FreeBytes(ctx, h.Root); err == nil {
		r.Free = free
	} else if r.Error == "" {
		r.Error = err.Error()
	}
	return r
}

type benchOptions struct {
	path     string
	keep     bool
	bwlimit  string
	compress string
}

func newAgentsBenchCommand(g *globals) *cobra.Command {
	var opts benchOptions
	cmd := &cobra.Command{
		Use:   "bench FROM TO [--path HOME]",
		Short: "Stream a home from one host to another as a move would, and time it",
		Long: `Copy HOME (default: the largest home under FROM's root) from host FROM to a
staging folder on host TO exactly as the copy step of a move does (agent to
agent directly when both have one), verify the copy, print the rate, and
remove the copy (unless --keep). Nothing else is changed: the user is not
held and the directory is not touched.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("agents bench needs the hosts FROM and TO")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgentsBench(cmd.Context(), opts, g, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.path, "path", "", "the home to send (host-absolute)")
	f.BoolVar(&opts.keep, "keep", false, "keep the copy")
	f.StringVar(&opts.bwlimit, "bwlimit", "", "cap the stream, bytes per second (e.g. 50M)")
	f.StringVar(&opts.compress, "compress", "", "auto, zstd or none (default: [agents] compress)")
	return cmd
}

// benchResult is what agents bench prints with --json.
type benchResult struct {
	From        string  `json:"from"`
	To          string  `json:"to"`
	Path        string  `json:"path"`
	Files       int     `json:"files"`
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	MBps        float64 `json:"mb_per_s"`
	WireBytes   int64   `json:"wire_bytes,omitempty"`
	VerifyS     float64 `json:"verify_seconds"`
	Differences int     `json:"differences"`
}

func runAgentsBench(ctx context.Context, opts benchOptions, g *globals, from, to string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if opts.compress != "" {
		cfg.Agents.Compress = opts.compress
		if opts.compress != "auto" && opts.compress != "zstd" && opts.compress != "none" {
			return usagef("--compress %q: want auto, zstd or none", opts.compress)
		}
	}
	cl := cfg.Cluster()
	fh, ok1 := cl.Host(from)
	th, ok2 := cl.Host(to)
	if !ok1 || !ok2 || from == to {
		return usagef("agents bench needs two different hosts of %s", cfg.Path)
	}
	hosts := wire.Hosts(cfg)
	src, err := hosts(from)
	if err != nil {
		return err
	}
	dst, err := hosts(to)
	if err != nil {
		return err
	}
	home := opts.path
	if home == "" {
		if home, err = largestHome(ctx, src, fh.Root); err != nil {
			return err
		}
	}
	cp := &host.LocalCopier{}
	if opts.bwlimit != "" {
		r, err := parseRate(opts.bwlimit)
		if err != nil {
			return usageError{err}
		}
		cp.Limit = rate.NewLimiter(rate.Limit(r), int(max(r/4, 1<<20)))
	}
	stagingDir := path.Join(th.Root, ".maildist-staging")
	staging := path.Join(stagingDir, fmt.Sprintf("bench.%d", time.Now().UnixNano()))
	if _, err := dst.MkdirAll(ctx, stagingDir, 0o700, 0, 0); err != nil {
		return err
	}
	wire0 := sentWire(ctx, src)
	start := time.Now()
	st, err := cp.Copy(ctx, src, home, dst, staging, host.CopyFresh)
	el := time.Since(start)
	if err != nil {
		dst.RemoveAll(context.WithoutCancel(ctx), staging)
		return err
	}
	res := benchResult{From: from, To: to, Path: home, Files: st.Files, Bytes: st.Bytes, Seconds: el.Seconds(),
		MBps: float64(st.Bytes) / 1e6 / el.Seconds()}
	if w := sentWire(ctx, src); w > wire0 {
		res.WireBytes = w - wire0
	}
	vstart := time.Now()
	a, err1 := src.Scan(ctx, home, true)
	b, err2 := dst.Scan(ctx, staging, true)
	res.VerifyS = time.Since(vstart).Seconds()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	res.Differences = len(tree.Compare(a, b, tree.CompareOptions{IgnoreOwners: os.Geteuid() != 0}))
	if !opts.keep {
		if err := dst.RemoveAll(ctx, staging); err != nil {
			return err
		}
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(res)
	}
	fmt.Fprintf(g.stdout, "%s %s → %s: %d files, %s in %.2fs: %.1f MB/s", from, home, to, res.Files, humanBytes(res.Bytes), res.Seconds, res.MBps)
	if res.WireBytes > 0 {
		fmt.Fprintf(g.stdout, " (%s on the wire)", humanBytes(res.WireBytes))
	}
	fmt.Fprintf(g.stdout, "; verified in %.2fs, %d difference(s)\n", res.VerifyS, res.Differences)
	if res.Differences > 0 {
		return fmt.Errorf("the copy differs from the source in %d place(s)", res.Differences)
	}
	return nil
}

// largestHome finds the home under root that takes the most space.
func largestHome(ctx context.Context, h host.Host, root string) (string, error) {
	var homes []string
	if c, ok := h.(*agentapi.Client); ok {
		hs, err := c.Homes(ctx, root)
		if err != nil {
			return "", err
		}
		homes = hs
	} else if l, ok := h.(*host.Local); ok {
		ents, err := os.ReadDir(l.FSRoot() + root)
		if err != nil {
			return "", err
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".maildist-") {
				homes = append(homes, path.Join(root, e.Name()))
			}
		}
	}
	type sized struct {
		home string
		n    int64
	}
	var ss []sized
	for _, hm := range homes {
		n, err := h.Usage(ctx, hm)
		if err == nil {
			ss = append(ss, sized{hm, n})
		}
	}
	if len(ss) == 0 {
		return "", fmt.Errorf("no home under %s on %s", root, h.Name())
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].n > ss[j].n })
	return ss[0].home, nil
}

// sentWire reads an agent's count of stream bytes sent, from its metrics
// (0 for a local host).
func sentWire(ctx context.Context, h host.Host) int64 {
	c, ok := h.(*agentapi.Client)
	if !ok {
		return 0
	}
	resp, err := c.Get(ctx, "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "maildist_agent_sent_wire_bytes_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}
