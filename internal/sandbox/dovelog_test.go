package sandbox

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	logStamp  = regexp.MustCompile(`^([A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2}) (.*)$`)
	logLogin  = regexp.MustCompile(`^(imap|pop3)-login: Info: Login: user=<([^>]+)>, method=(PLAIN|LOGIN), rip=[0-9.]+, lip=[0-9.]+, mpid=(\d+), (TLS|secured), session=<([A-Za-z0-9+/]{16})>$`)
	logEnd    = regexp.MustCompile(`^(imap|pop3)\(([^)]+)\)<(\d+)><([A-Za-z0-9+/]+)>: Info: (.*)$`)
	logFailed = regexp.MustCompile(`^(imap|pop3)-login: Info: Disconnected \((auth failed, \d+ attempts|no auth attempts) in \d+ secs\): user=<[^>]*>, `)
	logOther  = regexp.MustCompile(`^(master: Info: Dovecot v2\.3|auth: Info: passwd-file\(|lmtp\()`)
)

// TestLogTruth reads the log back with a small parser of its own and
// checks each user's Sessions, ConnectS and LastLogin, and the shapes a
// survey must cope with.
func TestLogTruth(t *testing.T) {
	c := build(t, Options{Seed: 11, Users: 30, LogDays: 5})
	f, err := os.Open(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	type open struct {
		user, svc, pid string
		start          time.Time
	}
	sessions := map[string]*open{}
	spans := map[string][][2]int64{}
	count := map[string]int64{}
	last := map[string]time.Time{}
	kinds := map[string]int{}
	var prev time.Time
	year := c.LogEnd.Year()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		m := logStamp.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("line %d: no time stamp: %q", n, sc.Text())
		}
		ts, err := time.Parse("Jan 02 15:04:05", m[1])
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		ts = ts.AddDate(year-ts.Year(), 0, 0)
		if ts.Before(prev) || ts.Before(c.LogStart) || ts.After(c.LogEnd) {
			t.Fatalf("line %d: time %v out of order or outside [%v, %v]", n, ts, c.LogStart, c.LogEnd)
		}
		prev = ts
		text := m[2]
		if lm := logLogin.FindStringSubmatch(text); lm != nil {
			if sessions[lm[6]] != nil {
				t.Fatalf("line %d: session %s logged in twice", n, lm[6])
			}
			sessions[lm[6]] = &open{user: lm[2], svc: lm[1], pid: lm[4], start: ts}
			count[lm[2]]++
			if ts.After(last[lm[2]]) {
				last[lm[2]] = ts
			}
			kinds[lm[1]+" login"]++
			continue
		}
		if em := logEnd.FindStringSubmatch(text); em != nil {
			s := sessions[em[4]]
			if s == nil || s.user != em[2] || s.svc != em[1] || s.pid != em[3] {
				t.Fatalf("line %d: end of a session that did not begin: %q", n, text)
			}
			delete(sessions, em[4])
			spans[s.user] = append(spans[s.user], [2]int64{s.start.Unix(), ts.Unix()})
			switch end := em[5]; {
			case strings.HasPrefix(end, "Logged out in="):
				kinds["Logged out"]++
			case strings.HasPrefix(end, "Disconnected: Logged out"):
				kinds["Disconnected: Logged out"]++
			case strings.HasPrefix(end, "Disconnected for inactivity"):
				kinds["inactivity"]++
			case strings.HasPrefix(end, "Connection closed (IDLE running for"):
				kinds["IDLE"]++
			case strings.HasPrefix(end, "Disconnected: Connection closed"):
				kinds["closed"]++
			default:
				t.Fatalf("line %d: unknown session end %q", n, end)
			}
			continue
		}
		if logFailed.MatchString(text) {
			kinds["failed"]++
			continue
		}
		if om := logOther.FindStringSubmatch(text); om != nil {
			kinds[strings.Fields(om[1])[0]]++
			continue
		}
		t.Fatalf("line %d: unknown line %q", n, text)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sessions) > 0 {
		t.Errorf("%d sessions never end", len(sessions))
	}
	t.Logf("line kinds: %v", kinds)
	for _, k := range []string{"imap login", "pop3 login", "Logged out", "Disconnected: Logged out", "inactivity", "IDLE", "failed", "lmtp(", "auth:", "master:"} {
		if kinds[k] == 0 {
			t.Errorf("the log has no %q lines", k)
		}
	}

	overlapping, never := 0, 0
	for _, u := range c.Users {
		var sum int64
		for _, s := range spans[u.Name] {
			sum += s[1] - s[0]
		}
		union := unionSeconds(spans[u.Name])
		if union < sum {
			overlapping++
		}
		if count[u.Name] == 0 {
			never++
		}
		if u.Sessions != count[u.Name] || u.ConnectS != union || !u.LastLogin.Equal(last[u.Name]) {
			t.Errorf("user %s: truth says %d sessions, %d s, last %v; the log says %d, %d s, last %v",
				u.Name, u.Sessions, u.ConnectS, u.LastLogin, count[u.Name], union, last[u.Name])
		}
	}
	if overlapping == 0 || never == 0 {
		t.Errorf("%d users with parallel sessions, %d who never log in: want some of each", overlapping, never)
	}
}

func TestUnionSeconds(t *testing.T) {
	for _, tc := range []struct {
		spans [][2]int64
		want  int64
	}{
		{nil, 0},
		{[][2]int64{{5, 5}}, 0},
		{[][2]int64{{0, 10}, {5, 20}}, 20},
		{[][2]int64{{10, 20}, {0, 5}}, 15},
		{[][2]int64{{0, 10}, {10, 20}}, 20},
		{[][2]int64{{0, 100}, {10, 20}, {30, 40}}, 100},
	} {
		if got := unionSeconds(tc.spans); got != tc.want {
			t.Errorf("unionSeconds(%v) = %d, want %d", tc.spans, got, tc.want)
		}
	}
}
