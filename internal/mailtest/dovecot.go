package mailtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DovecotOptions say what a Dovecot serves.
type DovecotOptions struct {
	// Dir holds every file of the instance; it is made if missing.
	Dir string

	// Passwd is the passwd-file passdb and userdb read
	// (user:{PLAIN}password:uid:gid::home::extra). Homes must be real
	// paths on this machine. It is made readable by Dovecot's auth
	// process (group dovecot, 0640), a mode maildist keeps when it
	// rewrites the file.
	Passwd string

	// SQL, instead of Passwd, is a dovecot-sql.conf.ext for passdb and
	// userdb (needs dovecot-pgsql or dovecot-sqlite).
	SQL string

	// Domain is the mail domain, for the postmaster address. Users log in
	// and are looked up by their plain names: user@Domain is cut to user.
	Domain string

	// Extra is appended to dovecot.conf.
	Extra string
}

// Dovecot is a running Dovecot.
type Dovecot struct {
	Dir  string
	Conf string // dovecot.conf
	Log  string // log_path and info_log_path: the survey can read it

	IMAP, POP3, LMTP string // host:port on 127.0.0.1

	cmd  *exec.Cmd
	done chan struct{}
}

// StartDovecot starts a Dovecot for the test; it is stopped when the test
// ends.
func StartDovecot(t testing.TB, opt DovecotOptions) *Dovecot {
	t.Helper()
	var last error
	for range 3 {
		d, err := startDovecot(opt)
		if err == nil {
			t.Cleanup(func() { d.Stop() })
			return d
		}
		last = err
	}
	t.Fatalf("start dovecot: %v", last)
	return nil
}

func startDovecot(opt DovecotOptions) (*Dovecot, error) {
	if opt.Domain == "" {
		opt.Domain = "example.test"
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := OpenPath(dir); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	d := &Dovecot{
		Dir:  dir,
		Conf: filepath.Join(dir, "dovecot.conf"),
		Log:  filepath.Join(dir, "dovecot.log"),
		IMAP: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		POP3: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		LMTP: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		done: make(chan struct{}),
	}
	var db string
	switch {
	case opt.SQL != "":
		sqlConf := filepath.Join(dir, "dovecot-sql.conf.ext")
		if err := os.WriteFile(sqlConf, []byte(opt.SQL), 0o640); err != nil {
			return nil, err
		}
		if err := shareWithDovecot(sqlConf); err != nil {
			return nil, err
		}
		db = fmt.Sprintf("passdb {\n  driver = sql\n  args = %[1]s\n}\nuserdb {\n  driver = sql\n  args = %[1]s\n}\n", sqlConf)
	case opt.Passwd != "":
		if err := shareWithDovecot(opt.Passwd); err != nil {
			return nil, err
		}
		db = fmt.Sprintf("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%n %[1]s\n}\n"+
			"userdb {\n  driver = passwd-file\n  args = username_format=%%n %[1]s\n}\n", opt.Passwd)
	default:
		return nil, fmt.Errorf("mailtest: DovecotOptions needs Passwd or SQL")
	}
	conf := fmt.Sprintf(`# A throwaway Dovecot for maildist's tests: every file is below %[1]s.
instance_name = mailtest-%[2]d
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[3]s
info_log_path = %[3]s
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_username_format = %%Ln
mail_location = maildir:~/Maildir
first_valid_uid = 100
mail_max_userip_connections = 100
%[4]s
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[7]d
  }
}
protocol lmtp {
  postmaster_address = postmaster@%[8]s
}
%[9]s
`, dir, ports[0], d.Log, db, ports[0], ports[1], ports[2], opt.Domain, opt.Extra)
	if err := os.WriteFile(d.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	bin, err := lookPath("dovecot")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-F", "-c", d.Conf)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d.cmd = cmd
	go func() { cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{d.IMAP, d.POP3, d.LMTP} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-d.done:
				log, _ := os.ReadFile(d.Log)
				return nil, fmt.Errorf("dovecot exited: %s\n%s", stderr.String(), tail(log, 2000))
			default:
			}
			if time.Now().After(deadline) {
				d.Stop()
				return nil, fmt.Errorf("dovecot does not listen on %s after 15s", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return d, nil
}

// shareWithDovecot lets Dovecot's auth process (group dovecot) read a
// file: group dovecot, mode 0640.
func shareWithDovecot(path string) error {
	g, err := user.LookupGroup("dovecot")
	if err != nil {
		return os.Chmod(path, 0o644)
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Chown(path, -1, gid); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o640); err != nil {
		return err
	}
	return OpenPath(filepath.Dir(path))
}

// Doveadm is the command that reaches this instance: maildist's
// activity.doveadm.
func (d *Dovecot) Doveadm() []string { return []string{Bin("doveadm"), "-c", d.Conf} }

// Run runs doveadm with args and returns its output.
func (d *Dovecot) Run(ctx context.Context, args ...string) (string, error) {
	argv := append(d.Doveadm(), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// LogText is what Dovecot has logged so far.
func (d *Dovecot) LogText() string {
	b, _ := os.ReadFile(d.Log)
	return string(b)
}

// Stop stops Dovecot (SIGTERM to its pid, then SIGKILL to its process
// group if it lingers) and waits for it.
func (d *Dovecot) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	stopGroup(d.cmd.Process.Pid, d.done, 10*time.Second)
}

// stopGroup sends SIGTERM to pid, waits for done, and kills the process
// group pid leads if it has not ended in time. The group is the server's
// own (Setpgid), so nothing else is touched.
func stopGroup(pid int, done <-chan struct{}, grace time.Duration) {
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
