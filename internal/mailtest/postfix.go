package mailtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/textproto"
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

// PostfixOptions say what a Postfix accepts and where it delivers.
type PostfixOptions struct {
	// Dir holds every file of the instance: conf/ (main.cf, master.cf,
	// the transport map), queue/, data/ and postfix.log.
	Dir string
	// Domain is the one domain mail is accepted for.
	Domain string
	// LMTP is Dovecot's LMTP listener, host:port.
	LMTP string
	// Extra is appended to main.cf.
	Extra string
}

// Postfix is a running Postfix.
type Postfix struct {
	Dir          string
	ConfigDir    string // postfix -c ConfigDir
	TransportMap string // listed in transport_maps as hash:TransportMap; starts empty
	Log          string
	SMTP         string // host:port on 127.0.0.1

	cmd  *exec.Cmd
	done chan struct{}
}

// StartPostfix starts a Postfix for the test; it is stopped when the test
// ends.
func StartPostfix(t testing.TB, opt PostfixOptions) *Postfix {
	t.Helper()
	var last error
	for range 3 {
		p, err := startPostfix(opt)
		if err == nil {
			t.Cleanup(func() { p.Stop() })
			return p
		}
		last = err
	}
	t.Fatalf("start postfix: %v", last)
	return nil
}

func startPostfix(opt PostfixOptions) (*Postfix, error) {
	if opt.Domain == "" {
		opt.Domain = "example.test"
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, err
	}
	p := &Postfix{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "conf"),
		Log:       filepath.Join(dir, "postfix.log"),
		done:      make(chan struct{}),
	}
	p.TransportMap = filepath.Join(p.ConfigDir, "transport")
	queue, data := filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{dir, p.ConfigDir, queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := OpenPath(dir); err != nil {
		return nil, err
	}
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(data, uid, gid)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	p.SMTP = fmt.Sprintf("127.0.0.1:%d", ports[0])
	mainCF := fmt.Sprintf(`# A throwaway Postfix for maildist's tests: every file is below %[1]s.
compatibility_level = 3.6
queue_directory = %[2]s
data_directory = %[3]s
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[4]s
maillog_file_prefixes = %[1]s
myhostname = mx.%[5]s
mydomain = %[5]s
myorigin = $mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $myhostname ESMTP mailtest
# A held recipient must be queued here, not refused at RCPT time.
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = %[5]s
virtual_transport = lmtp:inet:%[6]s
transport_maps = hash:%[7]s
smtputf8_enable = no
biff = no
append_dot_mydomain = no
# Retry soon: held mail is delivered by the flush, the rest by itself.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
lmtp_connection_cache_on_demand = no
in_flow_delay = 0
%[8]s
`, dir, queue, data, p.Log, opt.Domain, opt.LMTP, p.TransportMap, opt.Extra)
	masterCF := fmt.Sprintf(`# service type private unpriv chroot wakeup maxproc command
%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, p.SMTP)
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), []byte(masterCF), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.TransportMap, nil, 0o644); err != nil {
		return nil, err
	}
	// Postfix commands re-read a main.cf younger than about 2s, stalling
	// each time: date it in the past.
	old := time.Now().Add(-10 * time.Second)
	for _, f := range []string{"main.cf", "master.cf"} {
		os.Chtimes(filepath.Join(p.ConfigDir, f), old, old)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := p.Command(ctx, "postmap", "hash:"+p.TransportMap); err != nil {
		return nil, err
	}
	if _, err := p.Command(ctx, "postfix", "check"); err != nil {
		return nil, err
	}
	daemons, err := p.Command(ctx, "postconf", "-h", "daemon_directory")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(strings.TrimSpace(daemons), "master"), "-c", p.ConfigDir, "-d")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd = cmd
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := p.greets(); err == nil {
			break
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(p.Log)
			return nil, fmt.Errorf("postfix master exited: %s\n%s", stderr.String(), tail(log, 2000))
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("postfix does not greet on %s after 15s", p.SMTP)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// greets reads the SMTP banner.
func (p *Postfix) greets() error {
	c, err := net.DialTimeout("tcp", p.SMTP, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	tp := textproto.NewConn(c)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return err
	}
	tp.PrintfLine("QUIT")
	return nil
}

// Command runs a Postfix command (postfix, postmap, postqueue, postconf)
// with -c ConfigDir and returns its stdout.
func (p *Postfix) Command(ctx context.Context, name string, args ...string) (string, error) {
	argv := p.Argv(name, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(p.Log)
		return stdout.String(), fmt.Errorf("%s: %v: %s%s", strings.Join(argv, " "), err, stderr.String(), tail(log, 1000))
	}
	return stdout.String(), nil
}

// Argv is the command line of a Postfix command for this instance.
func (p *Postfix) Argv(name string, args ...string) []string {
	return append([]string{Bin(name), "-c", p.ConfigDir}, args...)
}

// Queued is one message in the queue, as `postqueue -j` tells it.
type Queued struct {
	QueueName  string `json:"queue_name"`
	QueueID    string `json:"queue_id"`
	Arrival    int64  `json:"arrival_time"`
	Sender     string `json:"sender"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// Queue lists the queue.
func (p *Postfix) Queue(ctx context.Context) ([]Queued, error) {
	out, err := p.Command(ctx, "postqueue", "-j")
	if err != nil {
		return nil, err
	}
	var qs []Queued
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var q Queued
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			return nil, fmt.Errorf("postqueue -j: %v: %q", err, sc.Text())
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// WaitEmpty flushes the queue and waits until it is empty, up to timeout.
// It returns what is left.
func (p *Postfix) WaitEmpty(ctx context.Context, timeout time.Duration) ([]Queued, error) {
	deadline := time.Now().Add(timeout)
	for {
		qs, err := p.Queue(ctx)
		if err != nil || len(qs) == 0 || time.Now().After(deadline) {
			return qs, err
		}
		p.Command(ctx, "postqueue", "-f")
		time.Sleep(100 * time.Millisecond)
	}
}

// LogText is what Postfix has logged so far.
func (p *Postfix) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Stop stops Postfix's master by its pid and waits for it.
func (p *Postfix) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	stopGroup(p.cmd.Process.Pid, p.done, 10*time.Second)
}
