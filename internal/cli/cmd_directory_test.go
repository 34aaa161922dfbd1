package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
)

// dirFixture is a cluster of two local hosts with a home or two made, and
// a config whose [directory] the test gives.
type dirFixture struct {
	dir string
}

const dirFixtureHosts = `
[delivery]
stub = "none"

[[host]]
name = "bp04"
root = "/bp04"
fsroot = "cluster/bp04"

[[host]]
name = "bp17"
root = "/bp17"
fsroot = "cluster/bp17"

[[host]]
name = "far"
root = "/far"
agent = "https://far.example.edu:7447"
`

func newDirFixture(t *testing.T) *dirFixture {
	t.Helper()
	f := &dirFixture{dir: t.TempDir()}
	for _, d := range []string{"cluster/bp04/bp04/alice", "cluster/bp17/bp17/bob", "cluster/bp17/bp17/carol.moving", "cluster/bp04/bp04"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(f.dir, "cluster/bp04/bp04/file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *dirFixture) config(t *testing.T, directoryTable string) string {
	t.Helper()
	p := filepath.Join(f.dir, "maildist.toml")
	if err := os.WriteFile(p, []byte(directoryTable+"\n"+dirFixtureHosts), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDirectoryCheckPasswd(t *testing.T) {
	f := newDirFixture(t)
	passwd := "alice:x:1:1::/bp04/alice:/bin/sh\n" +
		"bob:x:2:1::/bp17/bob:/bin/sh\n" +
		"carol:x:3:1::/bp17/carol:/bin/sh\n" + // held by rename: only carol.moving
		"dave:x:4:1::/home/dave:/bin/sh\n" + // no host
		"erin:x:5:1::/bp04/erin:/bin/sh\n" + // missing
		"file:x:6:1::/bp04/file:/bin/sh\n" + // not a folder
		"bob:x:2:1::/bp04/bob:/bin/sh\n" + // duplicate
		"short:x\n" + // bad line
		"-rf:x:7:1::/bp04/-rf:/bin/sh\n" + // bad name, and missing
		"faraway:x:8:1::/far/faraway:/bin/sh\n" // on an agent host: not looked at
	if err := os.WriteFile(filepath.Join(f.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, "[directory]\npath = \"passwd\"")

	code, out, errs := runMain("--config", cfg, "directory", "check")
	if code != ExitError {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		"bad-entry     -: " + filepath.Join(f.dir, "passwd") + ":8: 2 fields",
		"bad-name      -rf: ",
		"duplicate     bob: 2 entries, homes [\"/bp17/bob\" \"/bp04/bob\"]",
		"no-host       dave: home /home/dave is under no host's root",
		"missing-home  erin: home /bp04/erin does not exist on bp04 (" + filepath.Join(f.dir, "cluster/bp04/bp04/erin") + ")",
		"missing-home  carol: home /bp17/carol does not exist on bp17 (" + filepath.Join(f.dir, "cluster/bp17/bp17/carol") + "); /bp17/carol.moving does: a move is under way",
		"not-a-folder  file: home /bp04/file on bp04 is a file, not a folder",
		"9 entries, 8 users; 7 homes looked at, 1 on agent hosts not looked at; 9 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "alice") {
		t.Errorf("alice is fine:\n%s", out)
	}
	if !strings.Contains(errs, "9 problems in the directory") {
		t.Errorf("stderr: %s", errs)
	}

	code, out, _ = runMain("--config", cfg, "--json", "directory", "check")
	var res dirCheck
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != ExitError {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	kinds := map[string]int{}
	for _, p := range res.Problems {
		kinds[p.Kind]++
	}
	want := map[string]int{dirBadEntry: 1, dirBadName: 1, dirDuplicate: 1, dirNoHost: 1, dirMissingHome: 4, dirNotAFolder: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d problems, want %d (%v)", k, kinds[k], n, kinds)
		}
	}
	if res.Entries != 9 || res.PerHost["bp04"] != 5 || res.HomesRemote != 1 {
		t.Errorf("result = %+v", res)
	}
}

// An SQL directory, its DSN in a file: held users and a host column
// that disagrees with the home are reported; a clean table passes.
func TestDirectoryCheckSQL(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			f := newDirFixture(t)
			dsn := sqltest.Database(t, driver)
			hostOf := func(home string) string { return strings.Split(home, "/")[1] }
			sqltest.Fill(t, driver, dsn, []directory.Entry{
				{User: "alice", Home: "/bp04/alice", UID: 1, GID: 1},
				{User: "bob", Home: "/bp17/bob", UID: 2, GID: 1},
			}, hostOf)
			dsnFile := filepath.Join(f.dir, "dsn")
			if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := f.config(t, "[directory]\ntype = \"sql\"\ndriver = \""+driver+"\"\ndsn_file = \"dsn\"")

			code, out, errs := runMain("--config", cfg, "directory", "check")
			if code != ExitOK || !strings.Contains(out, "2 entries, 2 users; 2 homes looked at; 0 problems") {
				t.Fatalf("clean: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			if !strings.Contains(errs, "read the sql directory in") {
				t.Errorf("stderr: %s", errs)
			}

			sqltest.Exec(t, driver, dsn,
				"UPDATE users SET host = 'bp04', nologin = '"+directory.HoldReason+"' WHERE username = 'bob'",
				"INSERT INTO users (username, home) VALUES ('x''; DROP TABLE users; --', 'relative')")
			code, out, errs = runMain("--config", cfg, "directory", "check")
			if code != ExitError {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			for _, want := range []string{
				`bad-entry     x'; DROP TABLE users; --: list row `,
				`home "relative" is not an absolute path`,
				"host-mismatch bob: list row ",
				"host column says bp04, but home /bp17/bob is on bp17",
				"held          bob: maildist's hold marker refuses",
				"2 entries, 2 users; 2 homes looked at; 3 problems",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}

			// A DSN file others can read is refused, by name.
			if err := os.Chmod(dsnFile, 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errs = runMain("--config", cfg, "directory", "check")
			if code != ExitError || !strings.Contains(errs, "directory.dsn_file "+dsnFile+" can be read or written by others (mode 0644)") {
				t.Fatalf("readable dsn_file: exit %d\n%s", code, errs)
			}
		})
	}
}
