package runstate

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/maildist/maildist/internal/fsutil"
)

// runsFile, in state_dir, lists the run folders runners have worked in, so
// that a plain `maildist recover` finds the journals of every run.
const runsFile = "runs.list"

// RememberRun adds a run folder (made absolute) to state_dir's list, once.
func RememberRun(stateDir, run string) error {
	abs, err := filepath.Abs(run)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	lk, err := fsutil.LockWait(filepath.Join(stateDir, runsFile+".lock"))
	if err != nil {
		return err
	}
	defer lk.Unlock()
	known, err := KnownRuns(stateDir)
	if err != nil {
		return err
	}
	for _, k := range known {
		if k == abs {
			return nil
		}
	}
	known = append(known, abs)
	return fsutil.WriteWith(filepath.Join(stateDir, runsFile), 0o600, func(w io.Writer) error {
		for _, k := range known {
			if _, err := io.WriteString(w, k+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
}

// KnownRuns lists the run folders in state_dir's list that still exist.
func KnownRuns(stateDir string) ([]string, error) {
	f, err := os.Open(filepath.Join(stateDir, runsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}
