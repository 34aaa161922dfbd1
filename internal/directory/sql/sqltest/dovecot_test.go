package sqltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
)

// Dovecot reads the default schema through DovecotSQL: homes and ids from
// userdb, and a held user's nologin and reason (words with spaces, as
// the column keeps them) from passdb. Skipped where
// Dovecot and its SQL drivers are not installed.
func TestDovecotReadsTheTable(t *testing.T) {
	if _, err := exec.LookPath("dovecot"); err != nil {
		t.Skip("no dovecot (apt-get install dovecot-core dovecot-pgsql dovecot-sqlite)")
	}
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			module := map[string]string{"sqlite": "sqlite", "postgres": "pgsql"}[driver]
			if m, _ := filepath.Glob("/usr/lib/dovecot/modules/*driver_" + module + "*"); len(m) == 0 {
				t.Skipf("no Dovecot %s driver (apt-get install dovecot-%s)", module, module)
			}
			dsn := Database(t, driver)
			Fill(t, driver, dsn, []directory.Entry{
				{User: "alice", Home: "/bp04/alice", UID: 5001, GID: 100},
				{User: "bob", Home: "/bp17/bob", UID: 5002, GID: 100, Held: true},
			}, nil)
			dir, err := os.MkdirTemp("/tmp", "maildist-dovecot-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			// Dovecot's auth process does not run as root: it must reach
			// the SQLite file.
			for _, p := range []string{dir, filepath.Dir(filepath.Dir(dsn)), filepath.Dir(dsn)} {
				os.Chmod(p, 0o755)
			}
			os.Chmod(dsn, 0o644)

			sqlConf, err := DovecotSQL(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(dir, "dovecot.conf")
			write := func(name, body string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("sql.conf", sqlConf)
			write("dovecot.conf", "base_dir = "+dir+"/run\nstate_dir = "+dir+"/state\nlog_path = "+dir+"/log\n"+
				"protocols =\nssl = no\n"+
				"passdb {\n  driver = sql\n  args = "+dir+"/sql.conf\n}\n"+
				"userdb {\n  driver = sql\n  args = "+dir+"/sql.conf\n}\n")
			// dovecot forks into the background: give it no pipes to hold.
			if err := exec.Command("dovecot", "-c", conf).Run(); err != nil {
				t.Fatalf("start dovecot: %v", err)
			}
			t.Cleanup(func() { exec.Command("doveadm", "-c", conf, "stop").Run() })
			doveadm := func(args ...string) string {
				out, err := exec.Command("doveadm", append([]string{"-c", conf}, args...)...).CombinedOutput()
				if err != nil {
					log, _ := os.ReadFile(filepath.Join(dir, "log"))
					t.Fatalf("doveadm %s: %v\n%s\nlog:\n%s", strings.Join(args, " "), err, out, log)
				}
				return string(out)
			}
			if out := doveadm("user", "alice"); !strings.Contains(out, "/bp04/alice") || !strings.Contains(out, "5001") {
				t.Errorf("doveadm user alice:\n%s", out)
			}
			if out := doveadm("auth", "test", "bob", "password"); !strings.Contains(out, "nologin") || !strings.Contains(out, "reason="+dirsql.HoldReason) {
				t.Errorf("doveadm auth test bob: a held user must be refused:\n%s", out)
			}
			if out := doveadm("auth", "test", "alice", "password"); strings.Contains(out, "nologin") {
				t.Errorf("doveadm auth test alice: alice is not held:\n%s", out)
			}
		})
	}
}
