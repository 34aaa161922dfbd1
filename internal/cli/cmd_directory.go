package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/wire"
)

func newDirectoryCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "directory",
		Short: "Look at the user directory",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Read every directory entry and report what is wrong",
		Long: `Read every entry of the directory (passwd file or SQL table) and report:

  bad-entry      a line or row that cannot be read
  bad-name       a user name maildist refuses (/, NUL, leading -, …)
  duplicate      a user with more than one entry
  unclean-home   a home that is not a clean absolute path (//, a trailing
                 /, . or .. elements): the survey cannot read it
  no-host        a home under no host's root
  host-mismatch  an SQL host column naming another host than the home's
  missing-home   a home that does not exist on its host
  not-a-folder   a home that is not a folder
  held           logins refused by maildist's hold marker
  unreadable     a home whose state cannot be read
  shared-uid     with [activity] source = "proc": users who share one uid
                 (virtual users of one mail uid); proc tells users apart
                 by uid, so while one of them is logged in all of them
                 count as active and are never moved: use doveadm

Homes on hosts reached through an agent are not looked at. Exits 1 when
anything is wrong. Results go to stdout, or as JSON with --json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDirectoryCheck(cmd.Context(), g)
		},
	})
	return c
}

// Problem kinds of directory check.
const (
	dirBadEntry     = "bad-entry"
	dirBadName      = "bad-name"
	dirDuplicate    = "duplicate"
	dirUncleanHome  = "unclean-home"
	dirNoHost       = "no-host"
	dirHostMismatch = "host-mismatch"
	dirMissingHome  = "missing-home"
	dirNotAFolder   = "not-a-folder"
	dirHeld         = "held"
	dirUnreadable   = "unreadable"
	dirSharedUID    = "shared-uid"
)

// dirProblem is one thing wrong with the directory.
type dirProblem struct {
	Kind   string `json:"kind"`
	User   string `json:"user,omitempty"`
	Home   string `json:"home,omitempty"`
	Host   string `json:"host,omitempty"`
	Detail string `json:"detail"`
}

// dirCheck is what directory check found.
type dirCheck struct {
	Type        string         `json:"type"`
	Entries     int            `json:"entries"`
	Users       int            `json:"users"`
	PerHost     map[string]int `json:"per_host"`
	HomesLooked int            `json:"homes_looked_at"`
	HomesRemote int            `json:"homes_on_agent_hosts"` // not looked at
	ListMS      int64          `json:"list_ms"`
	Problems    []dirProblem   `json:"problems"`
}

func runDirectoryCheck(ctx context.Context, g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	dir, err := wire.Directory(cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	res, err := checkDirectory(ctx, cfg, dir)
	if err != nil {
		return err
	}
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			who := p.User
			if who == "" {
				who = "-"
			}
			fmt.Fprintf(g.stdout, "%-13s %s: %s\n", p.Kind, who, p.Detail)
		}
		fmt.Fprintf(g.stdout, "%d entries, %d users; %d homes looked at", res.Entries, res.Users, res.HomesLooked)
		if res.HomesRemote > 0 {
			fmt.Fprintf(g.stdout, ", %d on agent hosts not looked at", res.HomesRemote)
		}
		fmt.Fprintf(g.stdout, "; %d problems\n", len(res.Problems))
	}
	g.logf("read the %s directory in %d ms", res.Type, res.ListMS)
	if n := len(res.Problems); n > 0 {
		return fmt.Errorf("%d problems in the directory", n)
	}
	return nil
}

// checkDirectory reads every entry and looks at every local home.
func checkDirectory(ctx context.Context, cfg *config.Config, dir directory.Directory) (*dirCheck, error) {
	c := cfg.Cluster()
	res := &dirCheck{Type: cfg.Directory.Type, PerHost: map[string]int{}, Problems: []dirProblem{}}
	start := time.Now()
	entries, lerr := dir.List(ctx)
	res.ListMS = time.Since(start).Milliseconds()
	res.Entries = len(entries)
	add := func(p dirProblem) { res.Problems = append(res.Problems, p) }

	// Errors that came with the entries: bad lines and rows, a host
	// column that disagrees. Anything else with no entries at all is the
	// directory failing as a whole.
	for _, e := range splitErrors(lerr) {
		var le *directory.LineError
		var re *dirsql.RowError
		var hm *dirsql.HostMismatch
		switch {
		case errors.As(e, &hm):
			add(dirProblem{Kind: dirHostMismatch, User: hm.User, Home: hm.Home, Host: hm.HomeHost, Detail: e.Error()})
		case errors.As(e, &re):
			add(dirProblem{Kind: dirBadEntry, User: re.User, Detail: e.Error()})
		case errors.As(e, &le):
			add(dirProblem{Kind: dirBadEntry, Detail: e.Error()})
		case len(entries) == 0:
			return nil, fmt.Errorf("read the directory: %w", lerr)
		default:
			add(dirProblem{Kind: dirBadEntry, Detail: e.Error()})
		}
	}

	byUser := map[string][]directory.Entry{}
	for _, e := range entries {
		byUser[e.User] = append(byUser[e.User], e)
	}
	res.Users = len(byUser)
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		es := byUser[u]
		if err := cluster.CheckUser(u); err != nil {
			add(dirProblem{Kind: dirBadName, User: u, Detail: err.Error()})
		}
		if len(es) > 1 {
			var homes []string
			for _, e := range es {
				homes = append(homes, e.Home)
			}
			add(dirProblem{Kind: dirDuplicate, User: u, Detail: fmt.Sprintf("%d entries, homes %q: a move would not know which to switch", len(es), homes)})
		}
		for _, e := range es {
			if e.Held {
				add(dirProblem{Kind: dirHeld, User: u, Home: e.Home, Detail: "maildist's hold marker refuses this user's logins; if no move of the user is under way, run `maildist recover`"})
			}
			clean := path.Clean(e.Home)
			unclean := clean != e.Home || !path.IsAbs(e.Home)
			if unclean {
				add(dirProblem{Kind: dirUncleanHome, User: u, Home: e.Home, Detail: fmt.Sprintf("home %q is not a clean absolute path (clean: %s): the survey cannot read it; write it clean in the directory", e.Home, clean)})
			}
			h, ok := c.HostOf(e.Home)
			if !ok {
				add(dirProblem{Kind: dirNoHost, User: u, Home: e.Home, Detail: fmt.Sprintf("home %s is under no host's root", e.Home)})
				continue
			}
			res.PerHost[h.Name]++
			if !h.Local() {
				res.HomesRemote++
				continue
			}
			if unclean {
				continue // reported; the survey does not read it either
			}
			res.HomesLooked++
			if p, bad := lookAtHome(h, e); bad {
				add(p)
			}
		}
	}
	if cfg.Activity.Source == "proc" {
		sharedUIDs(entries, add)
	}
	return res, nil
}

// sharedUIDs reports every uid that more than one user has: the proc
// activity source finds a user's sessions by uid, so it cannot tell those
// users apart.
func sharedUIDs(entries []directory.Entry, add func(dirProblem)) {
	byUID := map[int][]string{}
	seen := map[directory.Entry]bool{}
	for _, e := range entries {
		key := directory.Entry{User: e.User, UID: e.UID}
		if e.UID < 0 || seen[key] {
			continue // a user listed twice is reported as a duplicate
		}
		seen[key] = true
		byUID[e.UID] = append(byUID[e.UID], e.User)
	}
	uids := make([]int, 0, len(byUID))
	for uid, us := range byUID {
		if len(us) > 1 {
			uids = append(uids, uid)
		}
	}
	sort.Ints(uids)
	for _, uid := range uids {
		us := byUID[uid]
		sort.Strings(us)
		named := strings.Join(us[:min(len(us), 5)], ", ")
		if len(us) > 5 {
			named += fmt.Sprintf(", and %d more", len(us)-5)
		}
		add(dirProblem{Kind: dirSharedUID, User: us[0], Detail: fmt.Sprintf(
			"%d users share uid %d (%s): [activity] source = \"proc\" finds sessions by uid, so while one of them is logged in every one counts as active and is not moved; set source = \"doveadm\" (Dovecot's own list of sessions)",
			len(us), uid, named)})
	}
}

// lookAtHome checks that a home is a folder on its host's file system.
func lookAtHome(h *cluster.Host, e directory.Entry) (dirProblem, bool) {
	p := dirProblem{User: e.User, Home: e.Home, Host: h.Name}
	local := filepath.Join(h.FSRoot, e.Home)
	fi, err := os.Lstat(local)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Kind = dirMissingHome
		p.Detail = fmt.Sprintf("home %s does not exist on %s (%s)", e.Home, h.Name, local)
		if _, err := os.Lstat(local + ".moving"); err == nil {
			p.Detail += "; " + e.Home + ".moving does: a move is under way or was cut short (`maildist recover`)"
		}
	case err != nil:
		p.Kind, p.Detail = dirUnreadable, err.Error()
	case !fi.IsDir():
		p.Kind = dirNotAFolder
		p.Detail = fmt.Sprintf("home %s on %s is a %s, not a folder", e.Home, h.Name, kindOf(fi.Mode()))
	default:
		return p, false
	}
	return p, true
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	}
	return m.Type().String()
}

// splitErrors undoes errors.Join.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
