package kick

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a process as it was listed. Before any signal the process
// with that pid must still have this uid, this name and (unless Since is
// zero) this start time.
type Process struct {
	PID   int
	UID   int
	Name  string
	Since time.Time
}

func (p Process) String() string {
	return fmt.Sprintf("pid %d (%s, uid %d)", p.PID, p.Name, p.UID)
}

// How a process ended.
const (
	EndedTerm = "term" // it left after SIGTERM
	EndedKill = "kill" // it needed SIGKILL
	EndedGone = "gone" // it had gone before it was signalled
)

// Result is what happened to one process.
type Result struct {
	Process
	Ended string // one of the Ended… values; "" when Err is set
	Err   error
}

// ErrNotSame is wrapped when a pid now names another process.
var ErrNotSame = errors.New("not the process that was listed")

// startSlack is how far a start time read again may differ from the one
// listed: both are the boot time plus clock ticks, and the boot time the
// kernel reports can move by a second when the clock is adjusted.
const startSlack = time.Second

// Ender ends processes.
type Ender struct {
	// Grace is how long a process has after SIGTERM before SIGKILL.
	Grace time.Duration
	// ProcDir is /proc unless a test says otherwise.
	ProcDir string
	// noPidfd makes the ender work as on a kernel without pidfds.
	noPidfd bool
}

// target is one process being ended.
type target struct {
	res  *Result
	fd   int // pidfd, or -1
	done bool
}

// End ends every process of ps that is still the process listed, at
// once: SIGTERM to all, then, after Grace, SIGKILL to those still there.
// It returns one Result a process, in the order of ps.
func (e *Ender) End(ctx context.Context, ps []Process) []Result {
	rs := make([]Result, len(ps))
	var ts []*target
	for i, p := range ps {
		rs[i].Process = p
		t := &target{res: &rs[i], fd: -1}
		if e.open(t) {
			ts = append(ts, t)
		}
	}
	defer func() {
		for _, t := range ts {
			if t.fd >= 0 {
				unix.Close(t.fd)
			}
		}
	}()
	for _, t := range ts {
		if err := e.signal(t, unix.SIGTERM); err != nil {
			t.res.Err, t.done = err, true
		}
	}
	if e.wait(ctx, ts, e.Grace, EndedTerm) {
		return rs
	}
	for _, t := range ts {
		if !t.done {
			if err := e.signal(t, unix.SIGKILL); err != nil {
				t.res.Err, t.done = err, true
			}
		}
	}
	// SIGKILL cannot be refused, but a process in uninterruptible sleep
	// (a hung NFS server) goes only when the sleep ends.
	if !e.wait(ctx, ts, 5*time.Second, EndedKill) {
		for _, t := range ts {
			if !t.done {
				t.res.Err = fmt.Errorf("%s still there after SIGKILL (in uninterruptible sleep?)", t.res.Process)
			}
		}
	}
	return rs
}

// open takes hold of the process and checks it is the one listed. It
// reports whether there is something to signal.
func (e *Ender) open(t *target) bool {
	p := t.res.Process
	if p.PID <= 0 {
		t.res.Err = fmt.Errorf("pid %d: not a process", p.PID)
		return false
	}
	if !e.noPidfd {
		fd, err := unix.PidfdOpen(p.PID, 0)
		switch {
		case errors.Is(err, unix.ESRCH):
			t.res.Ended = EndedGone
			return false
		case errors.Is(err, unix.ENOSYS):
			// An old kernel: check right before kill(2) instead.
		case err != nil:
			t.res.Err = fmt.Errorf("%s: pidfd_open: %w", p, err)
			return false
		default:
			t.fd = fd
		}
	}
	// With the pidfd held: while its process lives, /proc/PID is that
	// process; once it has exited, the pid may name a newer one, but a
	// signal through the pidfd reaches nothing. So a match here, then a
	// signal through the pidfd, can only reach the process listed.
	if err := e.same(p); err != nil {
		if errors.Is(err, os.ErrNotExist) || (t.fd >= 0 && e.exited(t)) {
			t.res.Ended = EndedGone
		} else {
			t.res.Err = err
		}
		if t.fd >= 0 {
			unix.Close(t.fd)
			t.fd = -1
		}
		return false
	}
	return true
}

func (e *Ender) signal(t *target, sig unix.Signal) error {
	p := t.res.Process
	var err error
	if t.fd >= 0 {
		err = unix.PidfdSendSignal(t.fd, sig, nil, 0)
	} else {
		if err = e.same(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				t.done, t.res.Ended = true, EndedGone
				return nil
			}
			return err
		}
		err = unix.Kill(p.PID, sig)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ESRCH):
		t.done = true
		if t.res.Ended == "" {
			t.res.Ended = EndedGone
		}
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: %s: not permitted (run as root or as uid %d)", p, unix.SignalName(sig), p.UID)
	}
	return fmt.Errorf("%s: %s: %w", p, unix.SignalName(sig), err)
}

// wait waits up to d for every target not done to exit, marking those
// that do with how. It reports whether all are done.
func (e *Ender) wait(ctx context.Context, ts []*target, d time.Duration, how string) bool {
	deadline := time.Now().Add(d)
	for {
		all := true
		for _, t := range ts {
			if t.done {
				continue
			}
			if e.exited(t) {
				t.done = true
				if t.res.Ended == "" {
					t.res.Ended = how
				}
				continue
			}
			all = false
		}
		if all || !time.Now().Before(deadline) || ctx.Err() != nil {
			return all
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exited reports whether a target's process has exited (a zombie has).
func (e *Ender) exited(t *target) bool {
	if t.fd >= 0 {
		fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	return e.same(t.res.Process) != nil
}

// same checks that pid is still the process listed.
func (e *Ender) same(p Process) error {
	now, err := e.read(p.PID)
	if err != nil {
		return err
	}
	if now.zombie {
		return os.ErrNotExist
	}
	switch {
	case now.Name != p.Name, now.UID != p.UID:
	case !p.Since.IsZero() && !now.Since.IsZero() && absDur(now.Since.Sub(p.Since)) > startSlack:
	default:
		return nil
	}
	return fmt.Errorf("pid %d is now %s (uid %d, started %s), not %s (uid %d, started %s): %w",
		p.PID, now.Name, now.UID, stamp(now.Since), p.Name, p.UID, stamp(p.Since), ErrNotSame)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.DateTime)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// seen is what /proc says of a pid now.
type seen struct {
	Process
	zombie bool
}

// read reads the name and real uid (status) and the state and start time
// (stat) of pid. A pid that is not there gives os.ErrNotExist.
func (e *Ender) read(pid int) (seen, error) {
	dir := e.ProcDir
	if dir == "" {
		dir = "/proc"
	}
	base := dir + "/" + strconv.Itoa(pid)
	s := seen{Process: Process{PID: pid, UID: -1}}
	b, err := os.ReadFile(base + "/status")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return s, os.ErrNotExist
		}
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "Name:"):
			s.Name = strings.TrimSpace(line[5:])
		case strings.HasPrefix(line, "Uid:"):
			if f := strings.Fields(line[4:]); len(f) > 0 {
				s.UID, _ = strconv.Atoi(f[0])
			}
		}
	}
	st, err := os.ReadFile(base + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return s, os.ErrNotExist
		}
		return s, err
	}
	// The name (field 2) may hold spaces and parentheses; the fields after
	// it start after the last ')': state is field 3, starttime field 22.
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return s, fmt.Errorf("%s/stat: no ')'", base)
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) > 0 {
		s.zombie = f[0] == "Z" || f[0] == "X"
	}
	if len(f) >= 20 {
		if ticks, err := strconv.ParseInt(f[19], 10, 64); err == nil {
			if boot := bootTime(dir); !boot.IsZero() {
				// USER_HZ is 100 on every Linux maildist runs on.
				s.Since = boot.Add(time.Duration(ticks) * (time.Second / 100))
			}
		}
	}
	return s, nil
}

// bootTime reads btime from /proc/stat.
func bootTime(dir string) time.Time {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

// Runner runs a command and returns its stdout.
type Runner func(ctx context.Context, argv []string) ([]byte, error)

// DoveadmKick ends every Dovecot session of user: doveadm kick USER, with
// doveadm the configured command (["doveadm", "-c", "…"]).
func DoveadmKick(ctx context.Context, run Runner, doveadm []string, user string) error {
	if user == "" || strings.HasPrefix(user, "-") {
		return fmt.Errorf("doveadm kick: %q is not a user name", user)
	}
	argv := append(append([]string(nil), doveadm...), "kick", user)
	if _, err := run(ctx, argv); err != nil {
		// Exit code 68 (EX_NOUSER) is doveadm's "no users kicked": the
		// user had no session left, which is what was wanted.
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 68 {
			return nil
		}
		return fmt.Errorf("doveadm kick %s: %w", user, err)
	}
	return nil
}
