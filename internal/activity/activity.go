package activity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/config"
)

// Session is one live session.
type Session struct {
	User    string    `json:"user"`
	Host    string    `json:"host,omitempty"`
	Service string    `json:"service"`
	PID     int       `json:"pid,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Since   time.Time `json:"since,omitzero"` // zero when the source cannot tell
}

func (s Session) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.User, s.Service)
	if s.PID > 0 {
		fmt.Fprintf(&b, " pid %d", s.PID)
	}
	if s.Remote != "" {
		fmt.Fprintf(&b, " from %s", s.Remote)
	}
	if s.Host != "" {
		fmt.Fprintf(&b, " on %s", s.Host)
	}
	return b.String()
}

// Source lists live sessions.
type Source interface {
	// Sessions lists the live sessions of user ("" for everyone). uid is
	// the user's uid from the directory, or -1 when it does not say.
	Sessions(ctx context.Context, user string, uid int) ([]Session, error)
}

// Runner runs a command and returns its stdout.
type Runner func(ctx context.Context, argv []string) ([]byte, error)

// New returns the source a config names. domain is used to match
// user@domain against user.
func New(a config.Activity, domain string, run Runner) (Source, error) {
	switch a.Source {
	case "proc":
		return &Proc{Services: a.Services}, nil
	case "doveadm":
		return &Doveadm{Command: a.Doveadm, Domain: domain, Run: run}, nil
	case "command":
		return &Command{Command: a.Command, Domain: domain, Run: run}, nil
	case "none", "":
		return None{}, nil
	}
	return nil, fmt.Errorf("activity source %q: want proc, doveadm, command or none", a.Source)
}

// None never sees anyone.
type None struct{}

// Sessions returns nothing.
func (None) Sessions(context.Context, string, int) ([]Session, error) { return nil, nil }

// SameUser reports whether a name a server printed is the directory's
// user: equal, or equal once "@domain" is cut (either side).
func SameUser(printed, user, domain string) bool {
	if printed == user {
		return true
	}
	if domain == "" {
		return false
	}
	cut := func(s string) string {
		if i := strings.LastIndexByte(s, '@'); i > 0 && strings.EqualFold(s[i+1:], domain) {
			return s[:i]
		}
		return s
	}
	return cut(printed) == cut(user)
}

// Proc finds processes by uid and name in /proc.
type Proc struct {
	Services []string
	// ProcDir is /proc unless a test says otherwise.
	ProcDir string
}

// Sessions lists processes running as uid whose name is a service.
func (p *Proc) Sessions(ctx context.Context, user string, uid int) ([]Session, error) {
	if user != "" && uid < 0 {
		return nil, fmt.Errorf("activity proc: the directory gives no uid for %s", user)
	}
	dir := p.ProcDir
	if dir == "" {
		dir = "/proc"
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("activity proc: %w", err)
	}
	boot := bootTime(dir)
	var out []Session
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, puid, ok := procStatus(dir + "/" + e.Name() + "/status")
		if !ok || (user != "" && puid != uid) || !p.isService(name) {
			continue
		}
		s := Session{User: user, Service: name, PID: pid}
		if user == "" {
			s.User = "uid " + strconv.Itoa(puid)
		}
		if !boot.IsZero() {
			s.Since = startTime(dir+"/"+e.Name()+"/stat", boot)
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *Proc) isService(name string) bool {
	for _, s := range p.Services {
		// /proc truncates names to 15 bytes.
		if name == s || (len(name) == 15 && strings.HasPrefix(s, name)) {
			return true
		}
	}
	return false
}

// procStatus reads Name and the real Uid from /proc/PID/status.
func procStatus(path string) (name string, uid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	uid = -1
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "Name:"):
			name = strings.TrimSpace(line[5:])
		case strings.HasPrefix(line, "Uid:"):
			f := strings.Fields(line[4:])
			if len(f) > 0 {
				uid, _ = strconv.Atoi(f[0])
			}
		}
	}
	return name, uid, name != "" && uid >= 0
}

func bootTime(dir string) time.Time {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "btime ") {
			n, err := strconv.ParseInt(strings.TrimSpace(line[6:]), 10, 64)
			if err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

// startTime reads field 22 (starttime, clock ticks after boot) of
// /proc/PID/stat. The kernel's USER_HZ is 100 on every Linux we run on.
func startTime(path string, boot time.Time) time.Time {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}
	}
	// The command name (field 2) may hold spaces and parentheses; fields
	// after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return time.Time{}
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return boot.Add(time.Duration(ticks) * (time.Second / 100))
}

// Doveadm asks Dovecot: `doveadm who -1 [USER]`.
type Doveadm struct {
	Command []string // e.g. ["doveadm", "-c", "/etc/dovecot/dovecot.conf"]
	Domain  string
	Run     Runner
}

// Sessions parses `doveadm who -1`: one connection a line,
// "username proto pid ip" after a header line (Dovecot 2.3.19 prints
// "alice imap 18311 127.0.0.1"; older ones put the pid and the address
// in parentheses).
func (d *Doveadm) Sessions(ctx context.Context, user string, uid int) ([]Session, error) {
	argv := append(append([]string(nil), d.Command...), "who", "-1")
	out, err := d.Run(ctx, argv)
	if err != nil {
		return nil, fmt.Errorf("activity doveadm: %w", err)
	}
	return ParseWho(out, user, d.Domain), nil
}

// ParseWho reads `doveadm who -1` output and keeps user's lines (every
// line when user is "").
func ParseWho(out []byte, user, domain string) []Session {
	var ss []Session
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// The header is "username proto pid ip" ("username # proto
		// (pids) (ips)" without -1); a user may be named "username".
		if len(f) < 2 || f[0] == "username" && (f[1] == "proto" || f[1] == "#") {
			continue
		}
		if user != "" && !SameUser(f[0], user, domain) {
			continue
		}
		s := Session{User: f[0], Service: f[1]}
		if len(f) > 2 {
			s.PID, _ = strconv.Atoi(strings.Trim(f[2], "()"))
		}
		if len(f) > 3 {
			s.Remote = strings.Trim(f[3], "()")
		}
		ss = append(ss, s)
	}
	return ss
}

// Command runs a site's program that prints one active user a line (or
// JSON objects with a "user" field).
type Command struct {
	Command []string
	Domain  string
	Run     Runner
}

// Sessions runs the command and keeps user's lines.
func (c *Command) Sessions(ctx context.Context, user string, uid int) ([]Session, error) {
	out, err := c.Run(ctx, c.Command)
	if err != nil {
		return nil, fmt.Errorf("activity command: %w", err)
	}
	var ss []Session
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := Session{Service: "command"}
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				return nil, fmt.Errorf("activity command: bad line %q: %v", line, err)
			}
		} else {
			s.User = strings.Fields(line)[0]
		}
		if user == "" || SameUser(s.User, user, c.Domain) {
			ss = append(ss, s)
		}
	}
	return ss, nil
}

// Here answers for every host from this machine: right when every host is
// a folder of this machine (a sandbox, or hosts sharing one machine's
// services).
type Here struct{ Source Source }

// Active lists user's sessions seen on this machine.
func (h Here) Active(ctx context.Context, user string, uid int, hosts []string) ([]Session, error) {
	return h.Source.Sessions(ctx, user, uid)
}
