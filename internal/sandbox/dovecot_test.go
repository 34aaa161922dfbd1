package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

// TestDovecotReadsSandbox runs a throwaway Dovecot (no listeners, every
// file in a temp folder) over a sandbox and has doveadm read every
// mailbox as its user: it must see each message the sandbox wrote, with
// the UID of our dovecot-uidlist (which it must leave as it is), the
// flags and keywords of the file name, and the file's mtime as its
// INTERNALDATE, and log no complaint.
func TestDovecotReadsSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: Dovecot reads mail as each user's uid")
	}
	for _, bin := range []string{"dovecot", "doveadm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	top := t.TempDir()
	for _, d := range []string{filepath.Dir(top), top} {
		os.Chmod(d, 0o755) // the users' uids must reach their homes
	}
	c := build(t, Options{Dir: filepath.Join(top, "sandbox"), Seed: 1, Users: 12})

	// On a real host Dovecot sees /bp01/alice; here the home is RealPath.
	run := filepath.Join(top, "dovecot")
	os.Mkdir(run, 0o755)
	var pw strings.Builder
	for _, u := range c.Users {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s::\n", u.Name, u.Password, u.UID, u.GID, c.RealPath(u.Home))
	}
	os.WriteFile(filepath.Join(run, "passwd"), []byte(pw.String()), 0o644)
	conf := filepath.Join(run, "dovecot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`protocols =
ssl = no
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = sandbox-test
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
}
`, run)), 0o644)
	cmd := exec.Command("dovecot", "-F", "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(run, "run", "auth-userdb")); err == nil {
			break
		}
		if i == 100 {
			t.Fatal("dovecot did not start in 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	doveadm := func(args ...string) string {
		out, err := exec.Command("doveadm", append([]string{"-c", conf}, args...)...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(run, "dovecot.log"))
			t.Fatalf("doveadm %s: %v\n%s\n%s", strings.Join(args, " "), err, out, log)
		}
		return string(out)
	}

	imapFlag := map[rune]string{'S': `\Seen`, 'R': `\Answered`, 'F': `\Flagged`, 'T': `\Deleted`, 'D': `\Draft`}
	for i, k := range keywords {
		imapFlag[rune('a'+i)] = k
	}
	seen := 0
	for _, u := range c.Users {
		if u.Status != cluster.StatusOK {
			continue
		}
		md := filepath.Join(c.RealPath(u.Home), "Maildir")
		for _, mailbox := range strings.Fields(doveadm("mailbox", "list", "-u", u.Name)) {
			dir := md
			if mailbox != "INBOX" {
				dir = filepath.Join(md, "."+mailbox)
			}
			uidlist, err := os.ReadFile(filepath.Join(dir, "dovecot-uidlist"))
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]string{} // uid → base name
			for _, l := range strings.Split(string(uidlist), "\n")[1:] {
				if f := strings.Fields(l); len(f) == 2 {
					files[f[0]] = strings.TrimPrefix(f[1], ":")
				}
			}
			out := doveadm("-f", "tab", "fetch", "-u", u.Name, "uid flags date.received", "mailbox", mailbox)
			rows := strings.Split(strings.TrimRight(out, "\n"), "\n")[1:]
			if len(rows) != len(files) {
				t.Errorf("%s %s: dovecot sees %d messages, dovecot-uidlist lists %d", u.Name, mailbox, len(rows), len(files))
			}
			for _, row := range rows {
				f := strings.Split(row, "\t")
				if len(f) != 3 {
					t.Fatalf("%s %s: doveadm fetch row %q", u.Name, mailbox, row)
				}
				seen++
				paths, _ := filepath.Glob(filepath.Join(dir, "*", files[f[0]]+"*"))
				if len(paths) != 1 {
					t.Errorf("%s %s: uid %s is not one file of ours: %v", u.Name, mailbox, f[0], paths)
					continue
				}
				name := filepath.Base(paths[0])
				var want []string
				if _, flags, ok := strings.Cut(name, ":2,"); ok {
					for _, ch := range flags {
						want = append(want, imapFlag[ch])
					}
				}
				got := strings.Fields(f[1])
				got = slices.DeleteFunc(got, func(s string) bool { return s == `\Recent` })
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s: %s: dovecot's flags %q, the name's %q", u.Name, mailbox, name, got, want)
				}
				fi, _ := os.Stat(paths[0])
				if date := fi.ModTime().Local().Format("2006-01-02 15:04:05"); f[2] != date {
					t.Errorf("%s %s: %s: INTERNALDATE %s, mtime %s", u.Name, mailbox, name, f[2], date)
				}
			}
			after, _ := os.ReadFile(filepath.Join(dir, "dovecot-uidlist"))
			if string(after) != string(uidlist) {
				t.Errorf("%s %s: dovecot rewrote dovecot-uidlist", u.Name, mailbox)
			}
		}
	}
	total := 0
	for _, u := range c.Users {
		total += u.Messages
	}
	if seen != total {
		t.Errorf("dovecot saw %d messages, the sandbox made %d", seen, total)
	}
	log, _ := os.ReadFile(filepath.Join(run, "dovecot.log"))
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "Error") || strings.Contains(l, "Warning") || strings.Contains(l, "Panic") || strings.Contains(l, "Fatal") {
			t.Errorf("dovecot complained: %s", l)
		}
	}
}
