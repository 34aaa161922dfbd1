package mailtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequiredEnv, when set to anything, makes Require fail a test instead of
// skipping it: CI installs the servers and must not pass by skipping.
const RequiredEnv = "MAILDIST_TEST_MAIL_REQUIRED"

// Binaries the servers need, with the Debian package that has each.
var binaries = []struct{ name, pkg string }{
	{"dovecot", "dovecot-core"},
	{"doveadm", "dovecot-core"},
	{"postfix", "postfix"},
	{"postmap", "postfix"},
	{"postqueue", "postfix"},
	{"postconf", "postfix"},
}

// Modules Dovecot needs for the protocols the tests speak.
var modules = []struct{ glob, pkg string }{
	{"/usr/lib/dovecot/imap", "dovecot-imapd"},
	{"/usr/lib/dovecot/pop3", "dovecot-pop3d"},
	{"/usr/lib/dovecot/lmtp", "dovecot-lmtpd"},
}

// Missing says what is missing to run real servers here, or "".
func Missing() string {
	if os.Geteuid() != 0 {
		return "not root: Dovecot reads each user's mail as the user's uid"
	}
	for _, b := range binaries {
		if _, err := lookPath(b.name); err != nil {
			return fmt.Sprintf("%s is not installed (apt-get install %s)", b.name, b.pkg)
		}
	}
	for _, m := range modules {
		if got, _ := filepath.Glob(m.glob); len(got) == 0 {
			return fmt.Sprintf("%s is not installed (apt-get install %s)", m.glob, m.pkg)
		}
	}
	return ""
}

// Require skips the test when Postfix or Dovecot cannot be run here, or
// fails it when $MAILDIST_TEST_MAIL_REQUIRED is set.
func Require(t testing.TB) {
	t.Helper()
	if why := Missing(); why != "" {
		if os.Getenv(RequiredEnv) != "" {
			t.Fatalf("real mail servers are required ($%s is set) but cannot run: %s", RequiredEnv, why)
		}
		t.Skipf("real mail servers cannot run: %s", why)
	}
}

// lookPath finds a program on $PATH, else in /usr/sbin and /usr/bin:
// Postfix's and Dovecot's commands live in sbin, which a test's $PATH may
// lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on $PATH or in /usr/sbin", name)
}

// Bin is the full path of a server's command, for configs and for argv
// given to maildist.
func Bin(name string) string {
	p, err := lookPath(name)
	if err != nil {
		return name
	}
	return p
}

// freePorts returns n TCP ports free on 127.0.0.1 just now. Another
// process may take one before the server binds it; Start retries then.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// OpenPath makes dir and every folder above it searchable by everyone
// (t.TempDir's folders are 0700): the servers' own users and the mail
// users' uids must reach what lies below.
func OpenPath(dir string) error {
	for d := filepath.Clean(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o011 != 0o011 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunArgv runs a command and returns its stdout, with the end of its
// stderr in the error: an activity.Runner for tests.
func RunArgv(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
