package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/agent"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/config"
)

type agentOptions struct {
	listen string
	files  pki.Files
	fsroot string
	roots  []string
}

func newAgentCommand(g *globals) *cobra.Command {
	var opts agentOptions
	cmd := &cobra.Command{
		Use:   "agent --listen ADDR --cert FILE --key FILE --ca FILE [--fsroot /]",
		Short: "Serve this host's file system and services to coordinators (HTTPS, mutual TLS)",
		Long: `Run on each storage host reached through an agent (agent = "https://…" in
the config). It serves, over HTTPS with mutual TLS 1.3 and certificates of
the cluster CA only (maildist ca), this host's file system under --fsroot
and its services: homes and disk use, Dovecot logs, live sessions, holds,
tree transfers straight to other agents, stubs, trash, flush and queue.

Its name is the name of its certificate, which must be the host's name in
the config. Every path a request names must lie under one of the cluster's
roots: from the config's hosts (--config, $MAILDIST_CONFIG or
./maildist.toml), or --root. From its config it also takes the hold and
release commands, delivery.flush and delivery.queue, the activity source and
survey.logs of this host: it runs no other command.

Coordinator certificates may do everything; agent certificates only push a
tree a coordinator announced (a one-time ticket). Metrics for Prometheus are
at /metrics (any certificate of the CA). It prints "listening on ADDR" on
stdout when ready, logs on stderr, and stops on SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), opts, g)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", ":7447", "address to listen on (host:port; port 0 picks one)")
	f.StringVar(&opts.files.Cert, "cert", "", "this agent's certificate (role agent)")
	f.StringVar(&opts.files.Key, "key", "", "its key")
	f.StringVar(&opts.files.CA, "ca", "", "the cluster CA's certificate")
	f.StringVar(&opts.fsroot, "fsroot", "/", "where this host's file system is (a folder, for a sandbox)")
	f.StringArrayVar(&opts.roots, "root", nil, "a root of the cluster, if there is no config (repeatable)")
	return cmd
}

func runAgent(ctx context.Context, opts agentOptions, g *globals) error {
	note := "no new requests; those under way get 5 seconds to end (a move cut off is undone or finished by its coordinator)"
	if g.stopping != nil {
		g.stopping.Store(&note)
	}
	if opts.files.Cert == "" || opts.files.Key == "" || opts.files.CA == "" {
		return usagef("agent needs --cert, --key and --ca (make them with maildist ca)")
	}
	var cfg *config.Config
	path := config.Find(g.configPath)
	if _, err := os.Stat(path); err == nil || g.configPath != "" || os.Getenv("MAILDIST_CONFIG") != "" {
		c, err := config.Load(path)
		if err != nil {
			return err
		}
		cfg = c
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cfg == nil && len(opts.roots) == 0 {
		return usagef("agent needs the cluster's roots: a config (--config) or --root")
	}
	l, err := pki.Load(opts.files, pki.RoleAgent)
	if err != nil {
		return err
	}
	logger := log.New(g.stderr, "", log.LstdFlags)
	s, err := agent.New(agent.Options{TLS: l, FSRoot: opts.fsroot, Roots: opts.roots, Config: cfg, Version: Version, Log: logger})
	if err != nil {
		return err
	}
	if cfg != nil {
		if _, ok := cfg.Cluster().Host(s.Name()); !ok {
			logger.Printf("warning: %s (this agent's certificate) is not a host of %s", s.Name(), cfg.Path)
		}
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "listening on %s\n", ln.Addr())
	logger.Printf("agent %s %s serving %s on %s", s.Name(), Version, opts.fsroot, ln.Addr())
	err = s.Serve(ctx, ln)
	logger.Printf("agent %s stopped", s.Name())
	return err
}
