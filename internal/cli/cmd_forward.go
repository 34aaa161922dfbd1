package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/forward"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/host"
)

type forwardOptions struct {
	remove  bool
	list    bool
	refresh bool
}

func newForwardCommand(g *globals) *cobra.Command {
	var opts forwardOptions
	cmd := &cobra.Command{
		Use:   "forward USER... | --remove USER... | --list | --refresh",
		Short: "Forward mail sent to user@HOST.domain on to the user's current host",
		Long: `People keep writing to user@HOST.domain, a host's own name, long after the
user moved. For each USER, write entries that send mail for user@H.domain,
for every host H of the cluster but the user's current one, on to
user@CURRENT.domain (forward.to = "host") or user@domain (forward.to =
"domain").

The entries go into the Postfix virtual(5) map named by forward.map, in a
section of maildist's own between "# BEGIN maildist forward" and
"# END maildist forward"; every other line of the file is kept byte for
byte. The file is replaced atomically, then forward.postmap is run. Running
the same command twice writes the same file.

  --remove USER...   take the users' entries out again
  --list             show maildist's entries
  --refresh          recompute every user already in the map from the
                     directory (after a round of moves)

Users that cannot be forwarded (not in the directory, home on no host) are
named and skipped; the exit code is then 3.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case (opts.list || opts.refresh) && len(args) > 0:
				return usagef("--list and --refresh take no users")
			case !opts.list && !opts.refresh && len(args) == 0:
				return usagef("forward needs at least one USER (or --list, --refresh)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForward(cmd.Context(), opts, g, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.remove, "remove", false, "remove the users' entries")
	f.BoolVar(&opts.list, "list", false, "list maildist's entries")
	f.BoolVar(&opts.refresh, "refresh", false, "recompute the entries of every user in the map")
	cmd.MarkFlagsMutuallyExclusive("remove", "list", "refresh")
	return cmd
}

// forwardUser is what happened to one user.
type forwardUser struct {
	User    string `json:"user"`
	Host    string `json:"host,omitempty"` // the user's current host
	To      string `json:"to,omitempty"`
	Entries int    `json:"entries"`
	Error   string `json:"error,omitempty"`
}

// forwardReport is the command's result.
type forwardReport struct {
	Map          string          `json:"map"`
	Created      bool            `json:"created,omitempty"` // the file did not exist
	Changed      bool            `json:"changed"`
	Entries      int             `json:"entries"` // in maildist's section, after
	Users        int             `json:"users"`
	ForeignLines int             `json:"foreign_lines"`
	Done         []forwardUser   `json:"done,omitempty"`
	Skipped      []forwardUser   `json:"skipped,omitempty"`
	Clashes      []forward.Clash `json:"clashes,omitempty"`
	Postmap      []string        `json:"postmap,omitempty"`
	Undo         string          `json:"undo,omitempty"`
}

func runForward(ctx context.Context, opts forwardOptions, g *globals, args []string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	path := cfg.Forward.Map
	if path == "" {
		return withHint(fmt.Errorf("%s has no forward.map: maildist does not know which MTA file to write", cfg.Path),
			"add [forward] map = \"/etc/postfix/maildist-forward\" (and postmap = [\"postmap\", \"hash:/etc/postfix/maildist-forward\"]) to the config")
	}
	// Two runs at once would each write their own idea of the section.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	lock, err := fsutil.LockWait(filepath.Join(cfg.StateDir, "forward.lock"))
	if err != nil {
		return err
	}
	defer lock.Unlock()

	data, err := os.ReadFile(path)
	created := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		created = true
	case err != nil:
		return fmt.Errorf("read forward map: %w", err)
	}
	m, err := forward.Parse(path, data)
	if err != nil {
		return withHint(fmt.Errorf("forward map: %w", err), "maildist changes nothing in a file whose section it cannot read; fix the line by hand")
	}
	if opts.list {
		return printForwardList(g, path, m)
	}

	rep := forwardReport{Map: path, Created: created}
	switch {
	case opts.remove:
		for _, u := range args {
			if err := cluster.CheckUser(u); err != nil {
				rep.Skipped = append(rep.Skipped, forwardUser{User: u, Error: err.Error()})
				continue
			}
			if !m.Has(u) {
				g.logf("%s: no entries in %s", u, path)
			}
			rep.Done = append(rep.Done, forwardUser{User: u, Entries: m.Remove(u)})
		}
	default:
		users := args
		if opts.refresh {
			users = m.Users()
		}
		dir, err := openDirectory(cfg)
		if err != nil {
			return err
		}
		defer dir.Close()
		for _, u := range users {
			if err := cluster.CheckUser(u); err != nil {
				rep.Skipped = append(rep.Skipped, forwardUser{User: u, Error: err.Error()})
				continue
			}
			fu, es, err := forwardEntries(ctx, cfg, dir, u)
			if err != nil {
				if opts.refresh {
					err = fmt.Errorf("%w (its entries are kept as they were)", err)
				}
				rep.Skipped = append(rep.Skipped, forwardUser{User: u, Error: err.Error()})
				continue
			}
			clashes := m.Set(u, es)
			rep.Clashes = append(rep.Clashes, clashes...)
			fu.Entries = len(es) - len(clashes)
			rep.Done = append(rep.Done, fu)
		}
	}

	out := m.Bytes()
	rep.Changed = !bytes.Equal(out, data) || (created && len(out) > 0)
	if rep.Changed {
		if err := fsutil.WriteFile(path, out, 0o644); err != nil {
			return fmt.Errorf("write forward map: %w", err)
		}
	}
	rep.Entries, rep.Users, rep.ForeignLines = len(m.Entries()), len(m.Users()), m.ForeignLines()
	if !opts.remove && len(rep.Done) > 0 {
		var us []string
		for _, d := range rep.Done {
			us = append(us, d.User)
		}
		rep.Undo = "maildist forward --remove " + strings.Join(us, " ")
	}
	var postErr error
	if len(cfg.Forward.Postmap) > 0 && (rep.Changed || !created) {
		rep.Postmap = cfg.Forward.Postmap
		if _, err := host.RunCommand(ctx, cfg.Forward.Postmap); err != nil {
			postErr = withHint(fmt.Errorf("forward.postmap: %w", err), fmt.Sprintf("%s is written; run the command by hand once it can run", path))
		}
	}
	printForward(g, rep, opts)
	if rep.Changed && len(cfg.Forward.Postmap) == 0 {
		g.logf("note: forward.postmap is not set: rebuild what the MTA reads yourself (postmap hash:%s)", path)
	}
	for _, c := range rep.Clashes {
		g.logf("%s: no entry for %s: %s:%d of the site has that key already (Postfix keeps only one)", c.Entry.User, c.Entry.From, path, c.Line)
	}
	for _, s := range rep.Skipped {
		g.logf("%s: not forwarded: %s", s.User, s.Error)
	}
	if postErr != nil {
		return postErr
	}
	if len(rep.Skipped) > 0 {
		return partialError{fmt.Sprintf("%d of %d users not forwarded", len(rep.Skipped), len(rep.Skipped)+len(rep.Done))}
	}
	return nil
}

// forwardEntries works out one user's entries from the directory.
func forwardEntries(ctx context.Context, cfg *config.Config, dir directory.Directory, user string) (forwardUser, []forward.Entry, error) {
	fu := forwardUser{User: user}
	e, err := dir.Lookup(ctx, user)
	switch {
	case errors.Is(err, directory.ErrNotFound):
		return fu, nil, errors.New("not in the directory (unknown user)")
	case err != nil:
		return fu, nil, err
	}
	c := cfg.Cluster()
	h, ok := c.HostOf(e.Home)
	if !ok {
		return fu, nil, fmt.Errorf("home %s is under no host's root", e.Home)
	}
	es, err := forward.Entries(user, h, c.Hosts, cfg.Domain, cfg.Forward.To)
	if err != nil {
		return fu, nil, err
	}
	fu.Host = h.Name
	if len(es) > 0 {
		fu.To = es[0].To
	}
	return fu, es, nil
}

func printForward(g *globals, rep forwardReport, opts forwardOptions) {
	if g.json {
		json.NewEncoder(g.stdout).Encode(rep)
		return
	}
	for _, d := range rep.Done {
		switch {
		case opts.remove:
			fmt.Fprintf(g.stdout, "%s: %d entries removed\n", d.User, d.Entries)
		default:
			fmt.Fprintf(g.stdout, "%s: %d entries: mail for %s at any other host goes to %s (now on %s)\n", d.User, d.Entries, d.User, d.To, d.Host)
		}
	}
	verb := "wrote"
	if !rep.Changed {
		verb = "unchanged:"
	}
	fmt.Fprintf(g.stdout, "%s %s: maildist's section has %d entries for %d users; %d other lines kept as they were\n",
		verb, rep.Map, rep.Entries, rep.Users, rep.ForeignLines)
	if len(rep.Postmap) > 0 {
		fmt.Fprintf(g.stdout, "ran %s\n", strings.Join(rep.Postmap, " "))
	}
	if rep.Undo != "" {
		fmt.Fprintf(g.stdout, "undo: %s   (every entry: maildist forward --list)\n", rep.Undo)
	}
}

func printForwardList(g *globals, path string, m *forward.Map) error {
	es := m.Entries()
	if g.json {
		if es == nil {
			es = []forward.Entry{}
		}
		return json.NewEncoder(g.stdout).Encode(map[string]any{"map": path, "entries": es})
	}
	if len(es) == 0 {
		fmt.Fprintf(g.stdout, "%s: no maildist entries\n", path)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "user\tfrom\tto")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.User, e.From, e.To)
	}
	tw.Flush()
	fmt.Fprintf(g.stdout, "%d entries for %d users in %s\n", len(es), len(m.Users()), path)
	return nil
}
