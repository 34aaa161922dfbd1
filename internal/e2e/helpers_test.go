package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/sandbox"
)

// fileFact is what an independent look at one file of a home says.
type fileFact struct {
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	MTime int64
	Size  int64
	Sum   [32]byte
	Link  string
}

// facts walks a home with the standard library alone and returns, by path
// relative to the home, what each entry is.
func facts(t *testing.T, root string) map[string]fileFact {
	t.Helper()
	out := map[string]fileFact{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		f := fileFact{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, MTime: fi.ModTime().UnixNano()}
		if !fi.IsDir() {
			// A folder's st_size is the file system's business (it
			// depends on the order entries were made), not the mail's.
			f.Size = fi.Size()
		}
		switch {
		case fi.Mode().IsRegular():
			fh, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, fh)
			fh.Close()
			if err != nil {
				return err
			}
			copy(f.Sum[:], h.Sum(nil))
		case fi.Mode()&fs.ModeSymlink != 0:
			f.Link, _ = os.Readlink(p)
		}
		out[rel] = f
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

var (
	corpusOnce sync.Once
	corpusPath string
	corpusErr  error

	templatesMu sync.Mutex
	templates   = map[string]*sandbox.Cluster{} // built once per options, copied per test
	templateDir string                          // removed by TestMain
)

// enron gives the test a fresh copy of the Enron corpus built as a sandbox
// cluster with the given options. Each distinct set of options is built
// once per test binary and copied (cp -a) for every test that asks. It
// fails (never skips) when the corpus cannot be found: CI has it.
func enron(t *testing.T, opt sandbox.Options) *sandbox.Cluster {
	t.Helper()
	corpusOnce.Do(func() { corpusPath, corpusErr = sandbox.FindCorpus() })
	if corpusErr != nil {
		t.Fatalf("the Enron corpus is needed: %v", corpusErr)
	}
	opt.Corpus = corpusPath
	key := fmt.Sprintf("%+v", opt)

	templatesMu.Lock()
	tmpl, ok := templates[key]
	if !ok {
		if templateDir == "" {
			d, err := os.MkdirTemp("", "maildist-e2e-enron")
			if err != nil {
				templatesMu.Unlock()
				t.Fatal(err)
			}
			templateDir = d
		}
		opt.Dir = filepath.Join(templateDir, fmt.Sprintf("c%d", len(templates)))
		start := time.Now()
		c, err := sandbox.Build(context.Background(), opt)
		if err != nil {
			templatesMu.Unlock()
			t.Fatalf("build sandbox: %v", err)
		}
		t.Logf("built the Enron sandbox (%d users) in %v", len(c.Users), time.Since(start).Round(time.Millisecond))
		templates[key] = c
		tmpl = c
	}
	templatesMu.Unlock()

	dir := filepath.Join(t.TempDir(), "cluster")
	if out, err := exec.Command("cp", "-a", tmpl.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy the sandbox: %v %s", err, out)
	}
	c := *tmpl
	rebase := func(p string) string { return filepath.Join(dir, strings.TrimPrefix(p, tmpl.Dir)) }
	c.Dir, c.Config, c.Passwd, c.Log = dir, rebase(tmpl.Config), rebase(tmpl.Passwd), rebase(tmpl.Log)
	c.Users = append([]sandbox.User(nil), tmpl.Users...)
	return &c
}

type sandboxUser = sandbox.User

// usersOf lists the users of a sandbox that have a home.
func usersOf(c *sandbox.Cluster) []sandbox.User {
	var us []sandbox.User
	for _, u := range c.Users {
		if u.Status == "ok" {
			us = append(us, u)
		}
	}
	return us
}

// sandboxDefaults is the Enron cluster every end-to-end test starts from.
func sandboxDefaults() sandbox.Options {
	return sandbox.Options{Seed: 7}
}
