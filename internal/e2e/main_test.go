package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/maildist/maildist/internal/directory/sql/sqltest"
)

// bin is the maildist binary the tests run, built once by TestMain, so that
// the end-to-end tests run the commands as an operator does, in processes
// of their own that can be killed.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "maildist-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "maildist")
	args := []string{"build", "-o", bin}
	// The binary is built without the race detector even under -race: it
	// makes every copy and hash many times slower, and the packages' own
	// tests run under it. MAILDIST_E2E_RACE=1 builds it with -race too.
	if raceEnabled && os.Getenv("MAILDIST_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/maildist/maildist/cmd/maildist")
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build maildist:", err)
		os.Exit(1)
	}
	code := sqltest.Main(m)
	os.RemoveAll(dir)
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
	os.Exit(code)
}

// result of one maildist command.
type result struct {
	stdout, stderr string
	code           int
}

// maildist runs the binary with the given config and arguments.
func maildist(t *testing.T, config string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAILDIST_CONFIG="+config)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("maildist %v: %v", args, err)
	}
	return r
}

// must runs a command that must exit with one of the given codes (0 if
// none are given).
func must(t *testing.T, config string, codes []int, args ...string) result {
	t.Helper()
	r := maildist(t, config, args...)
	if len(codes) == 0 {
		codes = []int{0}
	}
	for _, c := range codes {
		if r.code == c {
			return r
		}
	}
	t.Fatalf("maildist %v exited %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	return r
}
