package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/sandbox"
	"github.com/maildist/maildist/internal/survey"
	"github.com/maildist/maildist/internal/wire"
)

// A survey through the agents (homes walked by each host's agent, the
// Dovecot log read from the host that keeps it) finds what a survey of
// the same cluster from its folders finds, user by user.
func TestAgentsSurvey(t *testing.T) {
	ctx := context.Background()
	c, err := sandbox.Build(ctx, sandbox.Options{Dir: filepath.Join(t.TempDir(), "cluster"), Users: 40, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The log is bp01's; the other agents have none.
	text, _ := os.ReadFile(c.Config)
	nolog := filepath.Join(c.Dir, "nolog.toml")
	os.WriteFile(nolog, []byte(strings.Replace(string(text), `logs = ["logs/dovecot.log"]`, "logs = []", 1)), 0o644)
	own := map[string]string{}
	for _, h := range c.Hosts[1:] {
		own[h.Name] = nolog
	}
	ac := startAgentsWith(t, c, "", own)

	survey1 := func(conf string, agents bool) *survey.Result {
		t.Helper()
		cfg, err := config.Load(conf)
		if err != nil {
			t.Fatal(err)
		}
		d, err := wire.Directory(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		es, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		opt := survey.Options{Cluster: cfg.Cluster(), Entries: es, Logs: cfg.Survey.Logs, Until: time.Now().Add(time.Hour)}
		if agents {
			opt.Logs = nil
			if opt.Disk, err = wire.Disk(cfg); err != nil {
				t.Fatal(err)
			}
			if opt.Remote, opt.RemoteSizes, err = wire.AgentLogs(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			if len(opt.Remote) != 1 {
				t.Fatalf("%d log streams from the agents, want bp01's", len(opt.Remote))
			}
		}
		res, err := survey.Run(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	local := survey1(c.Config, false)
	remote := survey1(ac.config, true)
	if len(local.Users) != len(remote.Users) || len(local.Users) == 0 {
		t.Fatalf("%d users locally, %d through the agents", len(local.Users), len(remote.Users))
	}
	connected := 0
	for i, l := range local.Users {
		r := remote.Users[i]
		if l != r {
			t.Errorf("%s: through the agents %+v, locally %+v", l.Name, r, l)
		}
		if r.ConnectS > 0 {
			connected++
		}
	}
	if connected == 0 || remote.Missing == 0 {
		t.Errorf("%d users with connect time, %d missing homes: the survey saw too little", connected, remote.Missing)
	}
	// The same through the command: `maildist survey` on the coordinator,
	// whose config names no logs (they are bp01's, read through its
	// agent), writes the raw.tsv that a survey of the folders writes.
	coord, _ := os.ReadFile(ac.config)
	noLogs := filepath.Join(c.Dir, "coordinator-nolog.toml")
	os.WriteFile(noLogs, []byte(strings.Replace(string(coord), `logs = ["logs/dovecot.log"]`, "logs = []", 1)), 0o644)
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	localRun, remoteRun := filepath.Join(c.Dir, "runs/local"), filepath.Join(c.Dir, "runs/agents")
	must(t, c.Config, nil, "survey", localRun, "--until", until)
	r := must(t, noLogs, nil, "survey", remoteRun, "--until", until)
	if !strings.Contains(r.stderr, "logs: 1 read through agents") {
		t.Errorf("stderr does not say it read bp01's log through its agent:\n%s", r.stderr)
	}
	want, _ := os.ReadFile(filepath.Join(localRun, "raw.tsv"))
	got, _ := os.ReadFile(filepath.Join(remoteRun, "raw.tsv"))
	if len(want) == 0 || string(got) != string(want) {
		t.Errorf("raw.tsv through the agents differs from the folders':\n%s\nwant:\n%s", got, want)
	}
}
