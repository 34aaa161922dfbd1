package sandbox

import (
	"bufio"
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"
)

// connKind is what a connection in the log is.
type connKind int

const (
	connIMAP   connKind = iota // a login that succeeded
	connPOP3                   // a login that succeeded
	connFailed                 // auth failed
	connNoAuth                 // disconnected before trying to log in
	connLMTP                   // a delivery
)

// conn is one connection the log tells of.
type conn struct {
	kind       connKind
	user       string
	start, end time.Time
	rip, lip   string
	secured    bool   // from the host itself (webmail): "secured", not TLS
	ending     string // imap/pop3: how the session ended, after "Info: "
	attempts   int    // failed logins
	scan       bool   // a failed login for a name not in the directory
	in, out    int64
	pid        int
	session    string
}

// hostIP is the address a sandbox host listens on: lip in the log.
func hostIP(i int) string { return fmt.Sprintf("10.0.0.%d", 11+i%240) }

// writeLog writes Dovecot's log (log_path format of 2.3: time stamps
// "Jan 02 15:04:05", UTC) of the cluster's users over [LogStart, LogEnd],
// and fills in each user's truth: sessions, union connect seconds, last
// login. Every session in the log is closed inside it: no restarts, no
// session left open at the end, none begun before the start.
func writeLog(path string, seed int64, c *Cluster) error {
	start, end := c.LogStart, c.LogEnd
	lip := map[string]string{}
	for i, h := range c.Hosts {
		lip[h.Name] = hostIP(i)
	}
	var conns []conn
	for i := range c.Users {
		u := &c.Users[i]
		r := newRand(seed, "activity", u.Name, 0)
		cs := userConns(r, u.Name, lip[u.Host], start, end)
		var spans [][2]int64
		for _, cn := range cs {
			if cn.kind != connIMAP && cn.kind != connPOP3 {
				continue
			}
			u.Sessions++
			spans = append(spans, [2]int64{cn.start.Unix(), cn.end.Unix()})
			if cn.start.After(u.LastLogin) {
				u.LastLogin = cn.start
			}
		}
		u.ConnectS = unionSeconds(spans)
		conns = append(conns, cs...)
	}
	conns = append(conns, noise(newRand(seed, "noise", "", 0), c, lip, start, end)...)

	// Processes and sessions get their ids in the order they start, as a
	// real server hands out pids.
	slices.SortStableFunc(conns, func(a, b conn) int { return a.start.Compare(b.start) })
	r := newRand(seed, "pids", "", 0)
	pid := 2000 + r.IntN(20000)
	for i := range conns {
		pid += 1 + r.IntN(40)
		if pid > 4_000_000 {
			pid = 300
		}
		conns[i].pid = pid
		sid := make([]byte, 12)
		if conns[i].kind == connLMTP {
			sid = make([]byte, 16)
		}
		for k := range sid {
			sid[k] = byte(r.Uint32())
		}
		conns[i].session = base64.RawStdEncoding.EncodeToString(sid)
	}

	type line struct {
		t     time.Time
		n, ph int
		text  string
	}
	lines := []line{{t: start, n: -1, text: "master: Info: Dovecot v2.3.19.1 (9b53102964) starting up for imap, pop3, lmtp (core dumps disabled)"}}
	add := func(t time.Time, n, ph int, format string, args ...any) {
		lines = append(lines, line{t, n, ph, fmt.Sprintf(format, args...)})
	}
	for n, cn := range conns {
		svc := "imap"
		if cn.kind == connPOP3 || (cn.kind == connFailed || cn.kind == connNoAuth) && cn.pid%3 == 0 {
			svc = "pop3"
		}
		sec := "TLS"
		if cn.secured {
			sec = "secured"
		}
		switch cn.kind {
		case connIMAP, connPOP3:
			method := "PLAIN"
			if cn.pid%7 == 0 {
				method = "LOGIN"
			}
			add(cn.start, n, 0, "%s-login: Info: Login: user=<%s>, method=%s, rip=%s, lip=%s, mpid=%d, %s, session=<%s>",
				svc, cn.user, method, cn.rip, cn.lip, cn.pid, sec, cn.session)
			add(cn.end, n, 1, "%s(%s)<%d><%s>: Info: %s", svc, cn.user, cn.pid, cn.session, cn.ending)
		case connFailed:
			secs := int(cn.end.Sub(cn.start) / time.Second)
			if cn.scan {
				add(cn.end, n, 0, "auth: Info: passwd-file(%s,%s,<%s>): unknown user", cn.user, cn.rip, cn.session)
			} else {
				add(cn.end, n, 0, "auth: Info: passwd-file(%s,%s,<%s>): Password mismatch", cn.user, cn.rip, cn.session)
			}
			add(cn.end, n, 1, "%s-login: Info: Disconnected (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=%s, %s, session=<%s>",
				svc, cn.attempts, secs, cn.user, cn.rip, cn.lip, sec, cn.session)
		case connNoAuth:
			add(cn.end, n, 0, "%s-login: Info: Disconnected (no auth attempts in %d secs): user=<>, rip=%s, lip=%s, session=<%s>",
				svc, int(cn.end.Sub(cn.start)/time.Second), cn.rip, cn.lip, cn.session)
		case connLMTP:
			add(cn.start, n, 0, "lmtp(%d): Info: Connect from local", cn.pid)
			add(cn.start, n, 1, "lmtp(%s)<%d><%s>: Info: msgid=<%s>: saved mail to INBOX", cn.user, cn.pid, cn.session, cn.ending)
			add(cn.end, n, 2, "lmtp(%d): Info: Disconnect from local: Client has quit the connection (state=READY)", cn.pid)
		}
	}
	slices.SortFunc(lines, func(a, b line) int {
		return cmp.Or(a.t.Compare(b.t), cmp.Compare(a.n, b.n), cmp.Compare(a.ph, b.ph))
	})

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	for _, l := range lines {
		w.WriteString(l.t.UTC().Format("Jan 02 15:04:05 "))
		w.WriteString(l.text)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// unionSeconds is the length of the union of closed intervals of seconds.
func unionSeconds(spans [][2]int64) int64 {
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var total int64
	var cur [2]int64
	open := false
	for _, s := range spans {
		switch {
		case !open:
			cur, open = s, true
		case s[0] <= cur[1]:
			cur[1] = max(cur[1], s[1])
		default:
			total += cur[1] - cur[0]
			cur = s
		}
	}
	if open {
		total += cur[1] - cur[0]
	}
	return total
}

// userConns makes one user's week: a skewed amount of use (some users
// never log in), by a mix of clients: a desktop IMAP client that keeps a
// few parallel connections open through the working day, a phone with
// many short sessions, a POP3 client polling on a timer, webmail.
func userConns(r *rand.Rand, user, lip string, start, end time.Time) []conn {
	var out []conn
	home := fmt.Sprintf("198.51.100.%d", 1+r.IntN(254))
	office := fmt.Sprintf("10.%d.%d.%d", 20+r.IntN(10), r.IntN(256), 1+r.IntN(254))
	mobile := func() string { return fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)) }

	if r.Float64() < 0.25 { // mistyped passwords
		for range 1 + r.IntN(3) {
			t := between(r, start.Add(time.Minute), end)
			out = append(out, conn{kind: connFailed, user: user, start: t.Add(-time.Duration(1+r.IntN(8)) * time.Second),
				end: t, rip: pick(r, []string{home, office, mobile()}), lip: lip, attempts: 1 + r.IntN(2)})
		}
	}
	if r.Float64() < 0.15 {
		return out // never logs in
	}
	intensity := logNormal(r, 0, 0.9, 0.05, 6)
	desktop, phone, pop, web := r.Float64() < 0.6, r.Float64() < 0.45, r.Float64() < 0.12, r.Float64() < 0.25
	if !desktop && !phone && !pop && !web {
		desktop = true
	}
	pollEvery := time.Duration(pick(r, []int{10, 15, 30, 60})) * time.Minute
	session := func(kind connKind, s time.Time, d time.Duration, rip string) {
		e := s.Add(d).Truncate(time.Second)
		if s.Before(start) || !s.Before(end) {
			return
		}
		if e.After(end) {
			e = end
		}
		cn := conn{kind: kind, user: user, start: s, end: e, rip: rip, lip: lip,
			in: int64(logNormal(r, 6, 1.5, 20, 5e6)), out: int64(logNormal(r, 9, 2, 100, 5e8))}
		if rip == "127.0.0.1" {
			cn.secured = true
		}
		cn.ending = ending(r, cn)
		out = append(out, cn)
	}
	for day := start.Truncate(24 * time.Hour); day.Before(end); day = day.Add(24 * time.Hour) {
		workday := day.Weekday() != time.Saturday && day.Weekday() != time.Sunday
		at := func(fromH, toH float64) time.Time {
			return day.Add(time.Duration((fromH + (toH-fromH)*r.Float64()) * float64(time.Hour))).Truncate(time.Second)
		}
		if desktop {
			p := 0.15 * intensity
			if workday {
				p = min(0.95, 0.6*intensity)
			}
			if r.Float64() < p {
				s := at(7, 10)
				d := time.Duration(logNormal(r, math.Log(5*3600), 0.6, 600, 14*3600)) * time.Second
				rip := office
				if !workday {
					rip = home
				}
				for k := range 1 + r.IntN(3) { // clients keep several connections
					cs := s.Add(time.Duration(k*r.IntN(30)) * time.Second)
					cd := d - time.Duration(r.IntN(600))*time.Second
					session(connIMAP, cs, max(cd, 0), rip)
				}
			}
		}
		if phone {
			for range r.IntN(int(6*intensity) + 1) {
				d := time.Duration(logNormal(r, math.Log(90), 1.3, 1, 2400)) * time.Second
				session(connIMAP, at(7, 23), d, mobile())
			}
		}
		if pop && workday && r.Float64() < min(1, intensity) {
			for t := at(8, 8.5); t.Before(day.Add(18 * time.Hour)); t = t.Add(pollEvery + time.Duration(r.IntN(60))*time.Second) {
				session(connPOP3, t, time.Duration(1+r.IntN(15))*time.Second, home)
			}
		}
		if web && r.Float64() < 0.3*intensity {
			for range 1 + r.IntN(3) {
				d := time.Duration(logNormal(r, math.Log(300), 1, 20, 3600)) * time.Second
				session(connIMAP, at(8, 22), d, "127.0.0.1")
			}
		}
	}
	return out
}

// ending is how a session's last line reads in Dovecot 2.3.
func ending(r *rand.Rand, cn conn) string {
	if cn.kind == connPOP3 {
		n := r.IntN(5)
		size := cn.out * int64(n) / 5
		return fmt.Sprintf("Disconnected: Logged out top=0/0, retr=%d/%d, del=%d/%d, size=%d", n, size, 0, 20+r.IntN(400), cn.out)
	}
	counters := fmt.Sprintf("in=%d out=%d deleted=%d expunged=%d trashed=%d hdr_count=%d hdr_bytes=%d body_count=%d body_bytes=%d",
		cn.in, cn.out, r.IntN(3), r.IntN(3), r.IntN(2), r.IntN(50), r.IntN(50_000), r.IntN(20), cn.out/2)
	secs := int64(cn.end.Sub(cn.start) / time.Second)
	switch x := r.Float64(); {
	case x < 0.5:
		return "Logged out " + counters
	case x < 0.6:
		return fmt.Sprintf("Disconnected: Logged out in=%d out=%d", cn.in, cn.out)
	case x < 0.75 && secs >= 1800:
		return "Disconnected for inactivity " + counters
	case x < 0.95:
		return fmt.Sprintf("Connection closed (IDLE running for 0.001 + waiting input for %d.%03d secs) %s",
			min(secs, 1799), r.IntN(1000), counters)
	default:
		return "Disconnected: Connection closed (UID FETCH finished 0.051 secs ago) " + counters
	}
}

// noise is what else a mail host logs: password guessing against names
// that do not exist, connections that never log in, and deliveries.
func noise(r *rand.Rand, c *Cluster, lip map[string]string, start, end time.Time) []conn {
	var out []conn
	days := int(end.Sub(start)/(24*time.Hour)) + 1
	anyLip := func() string { return hostIP(r.IntN(len(c.Hosts))) }
	for range 3 * days {
		t := between(r, start.Add(time.Minute), end)
		out = append(out, conn{kind: connFailed, scan: true, user: pick(r, []string{"admin", "test", "root", "info", "postmaster", "webmaster", "sales"}),
			start: t.Add(-time.Duration(r.IntN(10)) * time.Second), end: t,
			rip: fmt.Sprintf("192.0.2.%d", 1+r.IntN(254)), lip: anyLip(), attempts: 1 + r.IntN(3)})
	}
	for range 5 * days {
		t := between(r, start.Add(time.Minute), end)
		out = append(out, conn{kind: connNoAuth, start: t.Add(-time.Duration(r.IntN(30)) * time.Second), end: t,
			rip: fmt.Sprintf("192.0.2.%d", 1+r.IntN(254)), lip: anyLip()})
	}
	for range 2 * len(c.Users) * days {
		u := c.Users[r.IntN(len(c.Users))]
		t := between(r, start.Add(time.Minute), end.Add(-time.Minute))
		out = append(out, conn{kind: connLMTP, user: u.Name, start: t, end: t.Add(time.Duration(r.IntN(2)) * time.Second),
			lip: lip[u.Host], ending: fmt.Sprintf("%s.%x@%s", t.Format("20060102150405"), r.Uint64(), pick(r, otherDomains))})
	}
	return out
}
