package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSurveyCommand(t *testing.T) {
	sb, err := sandbox.Build(context.Background(), sandbox.Options{Dir: t.TempDir(), Users: 30, MissingHomes: 2, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "runs", "07")

	code, out, errs := runMain("--config", sb.Config, "survey", run, "--log-zone", "UTC")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"host", "bp01", "total", "wrote " + filepath.Join(run, "raw.tsv")} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"32 users on 4 hosts, missing homes: 2", "sessions paired", "lines skipped: "} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	users, err := runstate.ReadRaw(filepath.Join(run, "raw.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(sb.Users) {
		t.Fatalf("raw.tsv has %d rows, the sandbox %d users", len(users), len(sb.Users))
	}
	for _, u := range users {
		want, _ := sb.User(u.Name)
		if u.Host != want.Host || u.Status != want.Status || u.ConnectS != want.ConnectS || u.Sessions != want.Sessions || !u.LastLogin.Equal(want.LastLogin) {
			t.Errorf("%s: %+v, want host %s status %s connect_s %d sessions %d last %v", u.Name, u, want.Host, want.Status, want.ConnectS, want.Sessions, want.LastLogin)
		}
	}

	// --json, --no-disk and a window that ends before the log begins.
	code, out, errs = runMain("--config", sb.Config, "--json", "survey", run, "--no-disk", "--log-zone", "UTC",
		"--until", sb.LogStart.Add(-time.Hour).Format(time.RFC3339))
	if code != ExitOK {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var js struct {
		Users int `json:"users"`
		Hosts []struct {
			Host     string `json:"host"`
			Bytes    int64  `json:"bytes"`
			ConnectS int64  `json:"connect_s"`
		} `json:"hosts"`
		Sessions struct {
			Paired int64 `json:"paired"`
		} `json:"sessions"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if js.Users != len(sb.Users) || len(js.Hosts) != 4 || len(js.Problems) != 0 || js.Sessions.Paired == 0 {
		t.Errorf("--json: %+v", js)
	}
	for _, h := range js.Hosts {
		if h.Bytes != 0 || h.ConnectS != 0 {
			t.Errorf("--no-disk before the log: host %s has bytes %d connect %d", h.Host, h.Bytes, h.ConnectS)
		}
	}
}

func TestSurveyCommandProblems(t *testing.T) {
	sb, err := sandbox.Build(context.Background(), sandbox.Options{Dir: t.TempDir(), Users: 5, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()

	// A bad directory line is named; the others are surveyed; exit 1.
	f, err := os.OpenFile(sb.Passwd, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("broken line without fields\nzoe:x:1:1::/nowhere/zoe::\n")
	f.Close()
	code, _, errs := runMain("--config", sb.Config, "survey", run)
	if code != ExitError {
		t.Fatalf("exit %d, want %d:\n%s", code, ExitError, errs)
	}
	for _, want := range []string{sb.Passwd + ":", "home /nowhere/zoe is under no host's root", "survey finished with 2 problems"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	users, err := runstate.ReadRaw(filepath.Join(run, "raw.tsv"))
	if err != nil || len(users) != len(sb.Users)+1 {
		t.Fatalf("raw.tsv: %d rows (%v), want %d", len(users), err, len(sb.Users)+1)
	}

	// A log glob that matches nothing stops the survey before raw.tsv.
	run2 := t.TempDir()
	code, _, errs = runMain("--config", sb.Config, "survey", run2, "--log", filepath.Join(sb.Dir, "no-such.log*"))
	if code != ExitError || !strings.Contains(errs, "no-such.log") {
		t.Fatalf("exit %d, want 1 naming the glob:\n%s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(run2, "raw.tsv")); !os.IsNotExist(err) {
		t.Errorf("raw.tsv written after a log error: %v", err)
	}

	// Usage mistakes.
	for _, args := range [][]string{{"survey"}, {"survey", run, "--since", "last tuesday"}, {"survey", run, "--since", "2025-03-02", "--until", "2025-03-01"}} {
		if code, _, errs := runMain(append([]string{"--config", sb.Config}, args...)...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, ExitUsage, errs)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-03-01T08:00:00Z": time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC),
		"30d":                  now.Add(-30 * 24 * time.Hour),
		"12h":                  now.Add(-12 * time.Hour),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := parseWhen("2025-03-01", now); err != nil || got.Day() != 1 || got.Hour() != 0 {
		t.Errorf("a date: %v %v", got, err)
	}
}

// Logs that read nothing are warned about on stderr, naming them (exit
// 0); a folder given as a log is an error; -v lists the log's user names
// the directory lacks.
func TestSurveyCommandWarnings(t *testing.T) {
	sb, err := sandbox.Build(context.Background(), sandbox.Options{Dir: t.TempDir(), Users: 5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	run := t.TempDir()
	logs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(logs, "old"), 0o755); err != nil {
		t.Fatal(err)
	}

	code, _, errs := runMain("--config", sb.Config, "survey", run, "--no-disk", "--log", filepath.Join(logs, "old"))
	if code != ExitError || !strings.Contains(errs, filepath.Join(logs, "old")+" is a folder") {
		t.Errorf("--log FOLDER: exit %d, want %d saying it is a folder:\n%s", code, ExitError, errs)
	}

	code, _, errs = runMain("--config", sb.Config, "survey", run, "--no-disk", "--log", filepath.Join(logs, "*"))
	if code != ExitOK {
		t.Fatalf("--log GLOB of folders: exit %d:\n%s", code, errs)
	}
	for _, want := range []string{"warning: log glob \"" + filepath.Join(logs, "*") + "\" matches only folders (" + filepath.Join(logs, "old") + ")",
		"warning: no log line was read", "connect time is 0 for everyone"} {
		if !strings.Contains(errs, want) {
			t.Errorf("--log GLOB of folders: stderr lacks %q:\n%s", want, errs)
		}
	}

	empty := filepath.Join(logs, "dovecot.log")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runMain("--config", sb.Config, "survey", run, "--no-disk", "--log", empty)
	if code != ExitOK || !strings.Contains(errs, "warning: log file "+empty+" is empty") {
		t.Errorf("an empty log: exit %d, want 0 and a warning naming it:\n%s", code, errs)
	}

	until := sb.LogStart.Add(-time.Hour).UTC()
	code, _, errs = runMain("--config", sb.Config, "survey", run, "--no-disk", "--log-zone", "UTC", "--until", until.Format(time.RFC3339))
	if code != ExitOK || !strings.Contains(errs, "warning: no log line falls in the window up to "+until.Format(time.RFC3339)) ||
		!strings.Contains(errs, "connect time is 0 for everyone") {
		t.Errorf("a window before the log: exit %d, want 0 and a warning:\n%s", code, errs)
	}

	// Names the directory lacks: counted, listed with -v.
	other := filepath.Join(logs, "other.log")
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "Mar  1 10:00:%02d imap-login: Info: Login: user=<stranger%02d@other.org>, method=PLAIN, mpid=%d, session=<s%d>\n", i, i, i+1, i)
	}
	if err := os.WriteFile(other, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runMain("--config", sb.Config, "survey", run, "--no-disk", "--log", other)
	if code != ExitOK || !strings.Contains(errs, "60 user names in the logs are not in the directory (not counted) (-v lists them)") || strings.Contains(errs, "stranger00") {
		t.Errorf("without -v: exit %d:\n%s", code, errs)
	}
	code, _, errs = runMain("--config", sb.Config, "-v", "survey", run, "--no-disk", "--log", other)
	if code != ExitOK || !strings.Contains(errs, "survey:   stranger00@other.org (1 sessions)") || !strings.Contains(errs, "survey:   stranger49@other.org") ||
		strings.Contains(errs, "stranger50") || !strings.Contains(errs, "survey:   … and 10 more") {
		t.Errorf("-v: exit %d, want the first 50 names and a count of the rest:\n%s", code, errs)
	}
}
