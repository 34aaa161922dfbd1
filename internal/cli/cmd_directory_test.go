package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
	"github.com/maildist/maildist/internal/runstate"
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

[tls]
ca = "ca.crt"
cert = "coordinator.crt"
key = "coordinator.key"
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

// TestDirectoryCheckSharedUID: virtual users of one mail uid cannot be
// told apart by the proc activity source; check says so, and only then.
func TestDirectoryCheckSharedUID(t *testing.T) {
	f := newDirFixture(t)
	passwd := "alice:x:5000:5000::/bp04/alice:/bin/sh\n" +
		"bob:x:5000:5000::/bp17/bob:/bin/sh\n" +
		"bob:x:5000:5000::/bp17/bob:/bin/sh\n" + // a duplicate, not a third user
		"carol:x:3:1::/bp17/carol.moving:/bin/sh\n"
	for i := 0; i < 6; i++ {
		passwd += fmt.Sprintf("v%d:x:6000:6000::/far/v%d:/bin/sh\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, "[directory]\npath = \"passwd\"")
	_, out, _ := runMain("--config", cfg, "directory", "check")
	for _, want := range []string{
		"shared-uid    alice: 2 users share uid 5000 (alice, bob): [activity] source = \"proc\"",
		"shared-uid    v0: 6 users share uid 6000 (v0, v1, v2, v3, v4, and 1 more)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "shared-uid"); n != 2 {
		t.Errorf("%d shared-uid problems, want 2:\n%s", n, out)
	}

	cfg = f.config(t, "[directory]\npath = \"passwd\"\n[activity]\nsource = \"doveadm\"")
	_, out, _ = runMain("--config", cfg, "directory", "check")
	if strings.Contains(out, "shared-uid") {
		t.Errorf("doveadm tells users apart; check says:\n%s", out)
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

			// A DSN file others can read is refused, by name, saying who.
			for mode, who := range map[os.FileMode]string{0o644: "everyone", 0o640: "its group"} {
				if err := os.Chmod(dsnFile, mode); err != nil {
					t.Fatal(err)
				}
				code, _, errs = runMain("--config", cfg, "directory", "check")
				if want := fmt.Sprintf("directory.dsn_file %s can be read by %s (mode %04o)", dsnFile, who, mode); code != ExitError || !strings.Contains(errs, want) {
					t.Fatalf("readable dsn_file: exit %d\n%s\nwant %q", code, errs, want)
				}
			}
		})
	}
}

// Homes that are not clean absolute paths are reported, and not looked
// at (the survey cannot read them either), even when the folder they
// would name exists; clean ones are looked at.
func TestDirectoryCheckUncleanHomes(t *testing.T) {
	f := newDirFixture(t)
	for _, d := range []string{"cluster/bp04/bp04/u1", "cluster/bp04/bp04/u2", "cluster/bp04/bp04/u3", "cluster/bp17/bp17/u4"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	passwd := "alice:x:1:1::/bp04/alice:/bin/sh\n" +
		"u1:x:2:1::/bp04//u1/:/bin/sh\n" +
		"u2:x:3:1::/bp04/u2/:/bin/sh\n" +
		"u3:x:4:1::/bp04/./u3:/bin/sh\n" +
		"u4:x:5:1::/bp17/x/../u4:/bin/sh\n" +
		"u5:x:6:1::/far//u5:/bin/sh\n" // on an agent host: reported all the same
	if err := os.WriteFile(filepath.Join(f.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, "[directory]\npath = \"passwd\"")
	code, out, errs := runMain("--config", cfg, "directory", "check")
	if code != ExitError {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{
		`unclean-home  u1: home "/bp04//u1/" is not a clean absolute path (clean: /bp04/u1): the survey cannot read it`,
		`unclean-home  u2: home "/bp04/u2/" is not a clean absolute path (clean: /bp04/u2)`,
		`unclean-home  u3: home "/bp04/./u3" is not a clean absolute path (clean: /bp04/u3)`,
		`unclean-home  u4: home "/bp17/x/../u4" is not a clean absolute path (clean: /bp17/u4)`,
		`unclean-home  u5: home "/far//u5" is not a clean absolute path (clean: /far/u5)`,
		"6 entries, 6 users; 1 homes looked at, 1 on agent hosts not looked at; 5 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "missing-home") || strings.Contains(out, "alice") {
		t.Errorf("only the unclean homes are problems:\n%s", out)
	}
}

// sqlDirFixture is a fixture whose directory is the default SQL table of
// a driver, filled by the statements given after the schema; its config
// has only the two local hosts.
func sqlDirFixture(t *testing.T, driver string, stmts ...string) (f *dirFixture, cfg string) {
	t.Helper()
	f = newDirFixture(t)
	dsn := sqltest.Database(t, driver)
	sqltest.Exec(t, driver, dsn, append([]string{dirsql.DefaultSchema}, stmts...)...)
	if err := os.WriteFile(filepath.Join(f.dir, "dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hosts, _, _ := strings.Cut(dirFixtureHosts, "[[host]]\nname = \"far\"")
	p := filepath.Join(f.dir, "maildist.toml")
	toml := "[directory]\ntype = \"sql\"\ndriver = \"" + driver + "\"\ndsn_file = \"dsn\"\n" + hosts
	if err := os.WriteFile(p, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, p
}

// A row whose host column disagrees with its home, and rows that cannot
// be read, do not stop the survey: it writes raw.tsv with every user it
// could read (the home decides where a user is) and names each row.
func TestSurveyGoesOnPastBadSQLRows(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			f, cfg := sqlDirFixture(t, driver,
				"INSERT INTO users (username, home, uid, gid, host) VALUES ('alice', '/bp04/alice', 1, 1, 'bp04')",
				"INSERT INTO users (username, home, uid, gid, host) VALUES ('clindqvist', '/bp17/bob', 2, 1, 'bp04')",
				"INSERT INTO users (username, home, uid, gid, host) VALUES ('nohome', '', 3, 1, 'bp04')",
				"INSERT INTO users (username, home, uid, gid, host) VALUES ('-rf', '/bp04/-rf', 4, 1, 'bp04')",
				"INSERT INTO users (username, home, uid, gid, host) VALUES ('erin', '/bp04/erin', 5, 1, 'bp04')")
			run := filepath.Join(f.dir, "runs", "01")
			code, out, errs := runMain("--config", cfg, "survey", run, "--no-disk")
			if code != ExitError {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			for _, want := range []string{
				`list row 2 (user "clindqvist"): host column says bp04, but home /bp17/bob is on bp17`,
				`list row 3 (user "nohome"): no home`,
				`user "-rf"`,
				"survey finished with 3 problems",
			} {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
			users, err := runstate.ReadRaw(filepath.Join(run, "raw.tsv"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				got = append(got, u.Name+"@"+u.Host)
			}
			sort.Strings(got)
			if want := "alice@bp04 clindqvist@bp17 erin@bp04"; strings.Join(got, " ") != want {
				t.Errorf("raw.tsv users %q, want %s", got, want)
			}

			// directory check names the same rows, each by its kind.
			code, out, _ = runMain("--config", cfg, "directory", "check")
			if code != ExitError {
				t.Fatalf("check: exit %d\n%s", code, out)
			}
			for _, want := range []string{
				`host-mismatch clindqvist: list row 2 (user "clindqvist"): host column says bp04`,
				`bad-entry     nohome: list row 3 (user "nohome"): no home`,
				"bad-name      -rf: ",
				"missing-home  erin: ",
				"4 entries, 4 users; 4 homes looked at; 5 problems",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("check stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// move names the users whose moves have not finished, so that a user
// left held by a crash is not forgotten while others are moved.
func TestMoveWarnsOfUnfinishedMoves(t *testing.T) {
	state := t.TempDir()
	jd := filepath.Join(state, "journal")
	os.MkdirAll(jd, 0o755)
	line := `{"time":"2026-01-01T00:00:00Z","step":"check","plan":{"id":"x1","user":"carol","from":"h1","to":"h2"}}` + "\n" +
		`{"time":"2026-01-01T00:00:01Z","step":"hold"}` + "\n"
	os.WriteFile(filepath.Join(jd, "carol.x1.journal"), []byte(line), 0o644)
	var errb strings.Builder
	g := &globals{stderr: &errb}
	warnUnfinished(g, &config.Config{StateDir: state}, "alice")
	if !strings.Contains(errb.String(), "unfinished moves of carol") || !strings.Contains(errb.String(), "maildist recover") {
		t.Errorf("stderr: %q", errb.String())
	}
	errb.Reset()
	warnUnfinished(g, &config.Config{StateDir: state}, "carol")
	if errb.Len() != 0 {
		t.Errorf("warned of the user being moved: %q", errb.String())
	}
}
