// Command survey-loggen writes a mixed Dovecot 2.3 log for benchmarking
// the survey, in log_path format with the default log_timestamp
// (-format path), through syslog (-format syslog: "Mar  1 00:00:00 mail01
// dovecot: …") or rsyslog's RFC 3339 stamps (-format rfc3339): IMAP and POP3
// logins and their ends (logout, inactivity, IDLE close), failed logins,
// LMTP deliveries, auth and imap noise, a restart now and then. Users
// hold several connections at once. The output is the same for the same
// flags.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

func main() {
	size := flag.Int64("size", 1<<30, "bytes to write (about)")
	users := flag.Int("users", 1_000_000, "distinct users")
	maxOpen := flag.Int("open", 50_000, "sessions open at most")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("o", "-", "output file")
	format := flag.String("format", "path", "path (log_path), syslog or rfc3339")
	flag.Parse()
	switch *format {
	case "path", "syslog", "rfc3339":
	default:
		fmt.Fprintf(os.Stderr, "-format %q: want path, syslog or rfc3339\n", *format)
		os.Exit(2)
	}

	var f *os.File = os.Stdout
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := &gen{r: rand.New(rand.NewPCG(*seed, 7)), users: *users, maxOpen: *maxOpen,
		t: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), pid: 1000, format: *format}
	var written int64
	for written < *size {
		line := g.line()
		n, err := w.Write(line)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		written += int64(n)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if f != os.Stdout {
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

type open struct {
	user int
	pid  int
	sid  [16]byte
	pop  bool
}

type gen struct {
	r       *rand.Rand
	users   int
	maxOpen int
	t       time.Time
	pid     int
	open    []open
	buf     []byte
	format  string
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func (g *gen) stamp() {
	g.t = g.t.Add(time.Duration(g.r.IntN(400)) * time.Millisecond)
	switch g.format {
	case "syslog":
		g.buf = g.t.AppendFormat(g.buf[:0], time.Stamp)
		g.buf = append(g.buf, " mail01 dovecot: "...)
	case "rfc3339":
		g.buf = g.t.AppendFormat(g.buf[:0], "2006-01-02T15:04:05.000000-07:00")
		g.buf = append(g.buf, " mail01 dovecot[1234]: "...)
	default:
		g.buf = g.t.AppendFormat(g.buf[:0], time.Stamp)
		g.buf = append(g.buf, ' ')
	}
}

func (g *gen) user(u int) {
	g.buf = append(g.buf, "user"...)
	g.buf = strconv.AppendInt(g.buf, int64(u), 10)
	g.buf = append(g.buf, "@example.edu"...)
}

func (g *gen) ip() {
	g.buf = append(g.buf, "10."...)
	g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(256)), 10)
	g.buf = append(g.buf, '.')
	g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(256)), 10)
	g.buf = append(g.buf, '.')
	g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(256)), 10)
}

func (g *gen) line() []byte {
	g.stamp()
	k := g.r.IntN(100)
	switch {
	case k < 27 && len(g.open) < g.maxOpen || len(g.open) == 0:
		// A login; some users open several connections.
		var o open
		if len(g.open) > 0 && g.r.IntN(5) == 0 {
			o.user = g.open[g.r.IntN(len(g.open))].user
		} else {
			o.user = g.r.IntN(g.users)
		}
		o.pop = g.r.IntN(6) == 0
		g.pid++
		o.pid = g.pid
		for i := range o.sid {
			o.sid[i] = b64[g.r.IntN(64)]
		}
		g.open = append(g.open, o)
		if o.pop {
			g.buf = append(g.buf, "pop3-login: Info: Login: user=<"...)
		} else {
			g.buf = append(g.buf, "imap-login: Info: Login: user=<"...)
		}
		g.user(o.user)
		g.buf = append(g.buf, ">, method=PLAIN, rip="...)
		g.ip()
		g.buf = append(g.buf, ", lip=192.0.2.10, mpid="...)
		g.buf = strconv.AppendInt(g.buf, int64(o.pid), 10)
		g.buf = append(g.buf, ", TLS, session=<"...)
		g.buf = append(g.buf, o.sid[:]...)
		g.buf = append(g.buf, ">\n"...)
	case k < 52:
		i := g.r.IntN(len(g.open))
		o := g.open[i]
		g.open[i] = g.open[len(g.open)-1]
		g.open = g.open[:len(g.open)-1]
		if o.pop {
			g.buf = append(g.buf, "pop3("...)
		} else {
			g.buf = append(g.buf, "imap("...)
		}
		g.user(o.user)
		g.buf = append(g.buf, ")<"...)
		g.buf = strconv.AppendInt(g.buf, int64(o.pid), 10)
		g.buf = append(g.buf, "><"...)
		g.buf = append(g.buf, o.sid[:]...)
		g.buf = append(g.buf, ">: Info: "...)
		switch {
		case o.pop:
			g.buf = append(g.buf, "Disconnected: Logged out top=0/0, retr=1/4211, del=0/3, size=88031\n"...)
		case g.r.IntN(10) == 0:
			g.buf = append(g.buf, "Disconnected for inactivity in=482 out=9120 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0\n"...)
		case g.r.IntN(10) == 0:
			g.buf = append(g.buf, "Connection closed (IDLE running for 1740.002 + waiting input for 0.001 secs, 2 B in + 10+10 B out, state=wait-input) in=1201 out=2330\n"...)
		default:
			g.buf = append(g.buf, "Logged out in=1402 out=38851 deleted=0 expunged=0 trashed=0 hdr_count=2 hdr_bytes=911 body_count=1 body_bytes=4211\n"...)
		}
	case k < 80:
		g.pid++
		g.buf = append(g.buf, "lmtp("...)
		g.user(g.r.IntN(g.users))
		g.buf = append(g.buf, ")<"...)
		g.buf = strconv.AppendInt(g.buf, int64(g.pid), 10)
		g.buf = append(g.buf, "><qL2bFk4Qh2YsIAAMN0Uqg>: Info: msgid=<20250301.4711@mx.example.org>: saved mail to INBOX\n"...)
	case k < 90:
		g.buf = append(g.buf, "imap-login: Info: Disconnected: Aborted login (auth failed, 1 attempts in 2 secs): user=<"...)
		g.user(g.r.IntN(g.users))
		g.buf = append(g.buf, ">, method=PLAIN, rip="...)
		g.ip()
		g.buf = append(g.buf, ", lip=192.0.2.10, TLS, session=<Zm9vYmFyYmF6cXV4>\n"...)
	case k < 99:
		g.buf = append(g.buf, "auth: Info: passwd-file(unknown,"...)
		g.ip()
		g.buf = append(g.buf, "): unknown user\n"...)
	default:
		if g.r.IntN(2000) == 0 {
			g.buf = append(g.buf, "master: Info: Dovecot v2.3.21 (47349e2482) starting up for imap, pop3, lmtp (core dumps disabled)\n"...)
			g.open = g.open[:0]
		} else {
			g.buf = append(g.buf, "imap(someone@example.edu)<4242><cHJvYmxlbXM>: Error: Mailbox Sent: fsync(/home/x/Maildir/.Sent/dovecot.index.log) failed: Disk quota exceeded\n"...)
		}
	}
	return g.buf
}
