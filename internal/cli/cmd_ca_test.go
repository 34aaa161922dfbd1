package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, _, errs := runMain("ca", "init", dir); code != ExitOK {
		t.Fatalf("init: %d %s", code, errs)
	}
	if code, _, errs := runMain("ca", "init", dir); code != ExitError || !strings.Contains(errs, "exists already") {
		t.Errorf("init twice: %d %s", code, errs)
	}
	code, out, errs := runMain("ca", "issue", dir, "bp04", "--role", "agent", "--ip", "127.0.0.1", "--dns", "bp04.example.edu")
	if code != ExitOK || !strings.Contains(out, "bp04.crt") {
		t.Fatalf("issue: %d %s %s", code, out, errs)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bp04.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: %v %v", fi.Mode(), err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ca", "issue", dir, "bp05"}, ExitUsage, "--role"},
		{[]string{"ca", "issue", dir, "bp05", "--role", "admin"}, ExitUsage, "want agent or coordinator"},
		{[]string{"ca", "issue", dir, "bp05", "--role", "agent", "--ip", "nowhere"}, ExitUsage, "not an IP"},
		{[]string{"ca", "issue", dir, "../bp05", "--role", "agent"}, ExitError, "not a plain name"},
		{[]string{"ca", "issue", dir, "bp04", "--role", "agent"}, ExitError, "exists already"},
		{[]string{"ca", "issue", t.TempDir(), "bp05", "--role", "agent"}, ExitError, "load the CA"},
	} {
		if code, _, errs := runMain(c.args...); code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d %s", c.args, code, errs)
		}
	}
}

func TestAgentCommandNeedsItsFiles(t *testing.T) {
	if code, _, errs := runMain("agent", "--listen", "127.0.0.1:0"); code != ExitUsage || !strings.Contains(errs, "--cert, --key and --ca") {
		t.Errorf("%d %s", code, errs)
	}
	dir := filepath.Join(t.TempDir(), "ca")
	runMain("ca", "init", dir)
	runMain("ca", "issue", dir, "runner", "--role", "coordinator")
	t.Chdir(t.TempDir()) // no ./maildist.toml
	code, _, errs := runMain("agent", "--listen", "127.0.0.1:0", "--root", "/r1", "--ca", filepath.Join(dir, "ca.crt"),
		"--cert", filepath.Join(dir, "runner.crt"), "--key", filepath.Join(dir, "runner.key"))
	if code != ExitError || !strings.Contains(errs, "needs agent") {
		t.Errorf("an agent with a coordinator's certificate: %d %s", code, errs)
	}
}

// An unreachable host's free space, skew and homes are unknown: null in
// JSON, not 0 (0 free bytes reads as a full disk).
func TestAgentRowJSONUnreachable(t *testing.T) {
	b, err := json.Marshal([]agentRow{
		{Host: "bp01", Agent: "https://a:1", Reachable: true, SkewS: 0.5, Free: 10, Homes: 3, Users: 3},
		{Host: "bp02", Agent: "https://b:1", Users: 4, Error: "connection refused"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"host":"bp01"`, `"skew_s":0.5,"free_bytes":10,"homes":3`, `"host":"bp02"`, `"skew_s":null,"free_bytes":null,"homes":null`, `"users":4`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s:\n%s", want, s)
		}
	}
	if strings.Count(s, `"skew_s"`) != 2 {
		t.Errorf("skew_s twice in a row:\n%s", s)
	}
}
