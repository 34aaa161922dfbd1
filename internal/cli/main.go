package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/maildist/maildist/internal/config"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitPartial = 3 // finished, but some users were not moved
)

// globals are the flags every command shares, and where output goes.
type globals struct {
	configPath string
	json       bool
	verbose    bool
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer

	// stopping, if set, is what the first signal says instead of the
	// moves' "finishing or undoing", and the second signal then says
	// nothing of recover: for commands that move nobody (agent).
	stopping *atomic.Pointer[string]
}

// loadConfig finds and loads the config the flags and environment name.
func (g *globals) loadConfig() (*config.Config, error) {
	return config.Load(config.Find(g.configPath))
}

// logf writes a line of progress or warning to stderr.
func (g *globals) logf(format string, args ...any) {
	fmt.Fprintf(g.stderr, format+"\n", args...)
}

// usageError marks an error as a usage mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// errPartial is returned when a command finished but left users unmoved.
var errPartial = errors.New("finished, but some users were not moved")

// partialError carries a summary of what was left.
type partialError struct{ msg string }

func (e partialError) Error() string { return e.msg }
func (e partialError) Unwrap() error { return errPartial }

// hinted wraps an error with a hint shown after it.
type hinted struct {
	err  error
	hint string
}

func (e hinted) Error() string { return e.err.Error() }
func (e hinted) Unwrap() error { return e.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return hinted{err, hint}
}

func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "maildist",
		Short: "Move mailboxes between the hosts of a mail cluster, and rebalance them",
		Long: `maildist moves users' mailboxes between the storage hosts of a mail cluster
without losing a message, and rebalances users across the hosts by activity
and disk use.

  maildist demo                 build a sandbox cluster and run the whole job on it
  maildist move USER HOST       move one user now
  maildist done                 release held mail, remove stubs, purge the trash
  maildist recover              finish or undo interrupted moves

The config is --config FILE, else $MAILDIST_CONFIG, else ./maildist.toml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "", "config file (default $MAILDIST_CONFIG or ./maildist.toml)")
	pf.BoolVar(&g.json, "json", false, "print results as JSON")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "say more on stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		newVersionCommand(g),
		newSurveyCommand(g),
		newPlanCommand(g),
		newAssignCommand(g),
		newMoveCommand(g),
		newDoneCommand(g),
		newRecoverCommand(g),
		newDemoCommand(g),
		newRunCommand(g),
		newStatusCommand(g),
	)
	root.AddCommand(newDirectoryCommand(g))
	root.AddCommand(newForwardCommand(g))
	root.AddCommand(newStubdirsCommand(g))
	root.AddCommand(newSessionsCommand(g))
	root.AddCommand(newCACommand(g), newAgentCommand(g), newAgentsCommand(g))
	return root
}

// Main runs maildist with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, stopping: new(atomic.Pointer[string])}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first signal lets moves in flight finish or undo themselves; a
	// second one stops at once, and recover completes the rest.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		if note := g.stopping.Load(); note != nil {
			fmt.Fprintf(stderr, "maildist: stopping: %s (signal again to stop at once)\n", *note)
			cancel()
			<-sigs
			fmt.Fprintln(stderr, "maildist: stopped at once")
			os.Exit(130)
		}
		fmt.Fprintln(stderr, "maildist: stopping: finishing or undoing the moves in flight (signal again to stop at once)")
		cancel()
		<-sigs
		fmt.Fprintln(stderr, "maildist: stopped at once; `maildist recover` finishes or undoes what was in flight")
		os.Exit(130)
	}()
	root := newRootCommand(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return report(g, err)
}

// report prints err and returns its exit code.
func report(g *globals, err error) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(g.stderr, "maildist: %v\n", err)
	var h hinted
	if errors.As(err, &h) {
		fmt.Fprintf(g.stderr, "hint: %s\n", h.hint)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue), isCobraUsage(err):
		return ExitUsage
	case errors.Is(err, errPartial):
		return ExitPartial
	default:
		return ExitError
	}
}

// isCobraUsage recognises cobra's own argument errors, which are plain.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "requires exactly", "invalid argument", "unknown flag", "unknown shorthand"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// Version is set at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, "maildist", Version)
			return nil
		},
	}
}
