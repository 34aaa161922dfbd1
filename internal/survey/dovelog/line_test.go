package dovelog

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseLineShapes(t *testing.T) {
	ref := time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)
	type want struct {
		kind    Kind
		svc     Service
		user    string
		pid     int32
		session string
		host    string
		time    string // RFC 3339, empty: do not check
	}
	for _, tc := range []struct {
		name string
		line string
		want want
	}{
		{"2.3 login log_path", "Sep 13 00:03:15 imap-login: Info: Login: user=<info@example.com>, method=PLAIN, rip=203.0.113.207, lip=192.0.2.10, mpid=70157, TLS, session=<fzDAEldbr82XVI7P>",
			want{Login, IMAP, "info@example.com", 70157, "fzDAEldbr82XVI7P", "", "2024-09-13T00:03:15Z"}},
		{"2.3 logout with pid and session", "Sep 13 00:05:00 imap(info@example.com)<70157><fzDAEldbr82XVI7P>: Info: Logged out in=412 out=90210 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
			want{End, IMAP, "info@example.com", 70157, "fzDAEldbr82XVI7P", "", ""}},
		{"2.3 Disconnected: Logged out", "Sep 13 00:05:00 imap(bob)<7><abc>: Info: Disconnected: Logged out in=1 out=2",
			want{End, IMAP, "bob", 7, "abc", "", ""}},
		{"2.3 inactivity", "Sep 13 00:05:00 imap(bob)<7><abc>: Info: Disconnected for inactivity in=1 out=2",
			want{End, IMAP, "bob", 7, "abc", "", ""}},
		{"2.3 pop3 logout", "Sep 13 00:05:00 pop3(bob)<8><xyz>: Info: Disconnected: Logged out top=0/0, retr=1/20, del=0/1, size=20",
			want{End, POP3, "bob", 8, "xyz", "", ""}},
		{"2.2 syslog logout", "Mar  3 10:11:12 mx dovecot: imap(carol): Disconnected: Logged out in=55 out=1200",
			want{End, IMAP, "carol", 0, "", "mx", "2025-03-03T10:11:12Z"}},
		{"2.2 syslog with pid", "Mar  3 10:11:12 mx dovecot[1234]: imap-login: Login: user=<carol>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, mpid=4321, TLS",
			want{Login, IMAP, "carol", 4321, "", "mx", ""}},
		{"2.4 logged in", "2025-01-02 03:04:05 imap-login: Info: Logged in: user=<dave>, method=PLAIN, rip=::1, lip=::1, mpid=99, session=<s4>",
			want{Login, IMAP, "dave", 99, "s4", "", "2025-01-02T03:04:05Z"}},
		{"fields in another order", "Sep 13 00:03:15 pop3-login: Login: user=<a, b>, session=<s1>, mpid=42",
			want{Login, POP3, "a, b", 42, "s1", "", ""}},
		{"1.x login", "Apr  1 10:00:02 raptor dovecot: imap-login: Login: user=<admin>, PID=12151, method=PLAIN, rip=192.168.0.1, lip=10.0.0.1",
			want{Login, IMAP, "admin", 0, "", "raptor", ""}},
		{"1.x imap logout", "Apr  1 10:00:02 raptor dovecot: IMAP(trex): Disconnected: Logged out bytes=748/17264",
			want{End, IMAP, "trex", 0, "", "raptor", ""}},
		{"1.x idle", "Apr  1 10:00:09 raptor dovecot: IMAP(brachiosaurus): Disconnected in IDLE bytes=7467/14209865",
			want{End, IMAP, "brachiosaurus", 0, "", "raptor", ""}},
		{"1.x pop3", "Apr  1 10:00:02 raptor dovecot: POP3(root): Disconnected: Logged out top=0/0, retr=0/0, del=0/0, size=0",
			want{End, POP3, "root", 0, "", "raptor", ""}},
		{"1.x log file", "dovecot: Apr 01 10:00:02 Info: imap-login: Login: user=<x>, method=PLAIN, rip=::1, lip=::1, secured",
			want{Login, IMAP, "x", 0, "", "", "2025-04-01T10:00:02Z"}},
		{"idle connection closed", "May 19 10:15:05 mail01 dovecot: imap(alice): Connection closed (IDLE running for 0.001 + waiting input for 30.0 secs) in=123 out=456",
			want{End, IMAP, "alice", 0, "", "mail01", ""}},
		{"rfc3339", "2025-05-19T10:15:05.123456+02:00 mail01 dovecot[77]: imap-login: Login: user=<alice>, method=PLAIN, rip=10.0.0.5, lip=10.0.0.1, mpid=2345, TLS, session=<q>",
			want{Login, IMAP, "alice", 2345, "q", "mail01", "2025-05-19T08:15:05.123456Z"}},
		{"rfc3339 Z", "2025-05-19T10:15:05Z mail01 dovecot: imap(alice)<2345><q>: Logged out in=1 out=2",
			want{End, IMAP, "alice", 2345, "q", "mail01", "2025-05-19T10:15:05Z"}},
		{"syslog without host", "Sep 8 07:16:27 dovecot: imap(u): Logged out in=1 out=2",
			want{End, IMAP, "u", 0, "", "", "2024-09-08T07:16:27Z"}},
		{"mail process fatal ends it", "Sep 13 00:05:00 imap(bob)<7><abc>: Fatal: setgid(1000) failed",
			want{End, IMAP, "bob", 7, "abc", "", ""}},
		{"hibernate close", "Sep 13 00:05:00 imap-hibernate(bob)<7><abc>: Info: Connection closed in=1 out=2",
			want{End, IMAP, "bob", 7, "abc", "", ""}},
		{"restart 2.x", "Sep 13 00:05:00 master: Info: Dovecot v2.3.21 (47349e2482) starting up for imap, pop3, lmtp (core dumps disabled)",
			want{Restart, NoService, "", 0, "", "", ""}},
		{"restart 1.x syslog", "Apr  1 09:00:00 raptor dovecot: Dovecot v1.2.17 starting up (core dumps disabled)",
			want{Restart, NoService, "", 0, "", "raptor", ""}},
		{"stop", "Sep 13 00:05:00 master: Warning: Killed with signal 15 (by pid=1 uid=0 code=kill)",
			want{Restart, NoService, "", 0, "", "", ""}},
		{"child killed", "Sep 13 00:05:00 master: Error: service(imap): child 4321 killed with signal 9 (core dumps disabled)",
			want{ChildGone, IMAP, "", 4321, "", "", ""}},
		{"child error", "Sep 13 00:05:00 master: Error: service(pop3): child 42 returned error 89",
			want{ChildGone, POP3, "", 42, "", "", ""}},
		{"auth failed", "Sep 8 07:16:27 canyon dovecot[7508]: imap-login: Disconnected (auth failed, 1 attempts in 6 secs): user=<toto@toto.com>, method=PLAIN, rip=1.1.1.1, lip=7.7.7.7, TLS, session=<azdaDADSqqsvf-za>",
			want{FailedLogin, NoService, "", 0, "", "canyon", ""}},
		{"aborted login", "May 19 10:15:06 mail01 dovecot: imap-login: Aborted login (auth failed, 1 attempts): user=<admin>, rip=45.33.32.156",
			want{FailedLogin, NoService, "", 0, "", "mail01", ""}},
		{"no auth attempts", "Sep 13 00:12:45 pop3-login: Info: Disconnected: Connection closed (no auth attempts in 20 secs): user=<>, rip=203.0.113.149, lip=192.0.2.10, session=<7xW7NFdb8IIodxuV>",
			want{FailedLogin, NoService, "", 0, "", "", ""}},
		{"too many connections", "Apr  1 10:00:06 raptor dovecot: imap-login: Maximum number of connections from user+IP exceeded (mail_max_userip_connections): user=<oviraptor>, PID=12150, method=PLAIN, rip=10.0.0.18, lip=192.168.190.13, TLS",
			want{FailedLogin, NoService, "", 0, "", "raptor", ""}},
		{"lmtp", "May 19 10:15:07 mail01 dovecot: lmtp(2401): Error: msg id unknown: save failed to INBOX: No space left on device",
			want{Delivery, NoService, "", 0, "", "mail01", ""}},
		{"lmtp user", "Sep 13 00:05:00 lmtp(bob)<55><Xyz>: Info: msgid=<m@x>: saved mail to INBOX",
			want{Delivery, NoService, "", 0, "", "", ""}},
		{"lda", "Apr  1 10:00:03 raptor dovecot: lda(allosaurus): sieve: msgid=<1@raptor>: stored mail into mailbox 'INBOX'",
			want{Delivery, NoService, "", 0, "", "raptor", ""}},
		{"deliver as ident", "Apr  1 10:00:09 raptor deliver(apatosaurus): msgid=<m@s>: saved mail to INBOX",
			want{Delivery, NoService, "", 0, "", "raptor", ""}},
		{"submission login", "Sep 13 00:05:00 submission-login: Info: Login: user=<bob>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, mpid=9, TLS, session=<k>",
			want{OtherService, NoService, "bob", 9, "k", "", ""}},
		{"auth noise", "May 19 10:15:03 mail01 dovecot: auth: passwd-file(eve,9.9.9.9): unknown user",
			want{Noise, NoService, "", 0, "", "mail01", ""}},
		{"imap error noise", "Sep 13 00:05:00 imap(bob)<7><abc>: Error: Mailbox INBOX: UID=5: read() failed",
			want{Noise, NoService, "", 0, "", "", ""}},
		{"proxy noise", "Sep 13 00:05:00 imap-login: Info: proxy(bob): started proxying to 10.1.1.1:143: OK",
			want{Noise, NoService, "", 0, "", "", ""}},
		{"postfix", "Sep 13 00:05:00 mx postfix/smtpd[123]: connect from unknown[1.2.3.4]",
			want{Foreign, NoService, "", 0, "", "mx", ""}},
		{"garbage", "this is not a log line", want{Malformed, NoService, "", 0, "", "", ""}},
		{"login without user", "Sep 13 00:05:00 imap-login: Login: method=PLAIN", want{Malformed, NoService, "", 0, "", "", ""}},
		{"blank", "", want{Noise, NoService, "", 0, "", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewParser(time.UTC, ref)
			var ev Event
			p.Parse([]byte(tc.line), &ev)
			w := tc.want
			if ev.Kind != w.kind || ev.Service != w.svc || string(ev.User) != w.user || ev.PID != w.pid ||
				string(ev.Session) != w.session || string(ev.Host) != w.host {
				t.Errorf("got kind=%s svc=%s user=%q pid=%d session=%q host=%q (reason %q)\nwant kind=%s svc=%s user=%q pid=%d session=%q host=%q",
					ev.Kind, ev.Service, ev.User, ev.PID, ev.Session, ev.Host, ev.Reason, w.kind, w.svc, w.user, w.pid, w.session, w.host)
			}
			if w.time != "" {
				got := time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano)
				if got != w.time {
					t.Errorf("time %s, want %s", got, w.time)
				}
			}
		})
	}
}

func TestYearInference(t *testing.T) {
	// A log read on Jan 2 2026 that began in December 2025.
	p := NewParser(time.UTC, time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC))
	for _, tc := range []struct{ line, want string }{
		{"Dec 30 23:59:58 imap(a): Logged out", "2025-12-30T23:59:58Z"},
		{"Dec 31 23:59:59 imap(a): Logged out", "2025-12-31T23:59:59Z"},
		{"Jan  1 00:00:01 imap(a): Logged out", "2026-01-01T00:00:01Z"},
		{"Jan  2 09:00:00 imap(a): Logged out", "2026-01-02T09:00:00Z"}, // a little after the mtime
		{"Feb 29 10:00:00 imap(a): Logged out", "1970-01-01T00:00:00Z"}, // malformed: the last one was 2024
	} {
		var ev Event
		p.Parse([]byte(tc.line), &ev)
		if got := time.Unix(0, ev.Time).UTC().Format(time.RFC3339); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.line, got, tc.want)
		}
	}
}

func TestLocalTimeZone(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no zone data:", err) // the zone file, not the code, is missing
	}
	p := NewParser(loc, time.Date(2025, 12, 31, 0, 0, 0, 0, loc))
	for _, tc := range []struct{ line, want string }{
		{"Jul  1 12:00:00 imap(a): Logged out", "2025-07-01T10:00:00Z"},
		{"Jan  1 12:00:00 imap(a): Logged out", "2025-01-01T11:00:00Z"},
		{"2025-07-01 12:00:00 imap(a): Logged out", "2025-07-01T10:00:00Z"},
	} {
		var ev Event
		p.Parse([]byte(tc.line), &ev)
		if got := time.Unix(0, ev.Time).UTC().Format(time.RFC3339); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.line, got, tc.want)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"Sep 13 00:03:15 imap-login: Info: Login: user=<info@example.com>, method=PLAIN, mpid=70157, TLS, session=<fzDAEldbr82XVI7P>",
		"Sep 13 00:05:00 imap(bob)<7><abc>: Info: Logged out in=1 out=2",
		"Apr  1 10:00:02 raptor dovecot: IMAP(trex): Disconnected: Logged out bytes=748/17264",
		"2025-05-19T10:15:05.123+02:00 mail01 dovecot[77]: imap-login: Login: user=<a>, session=<q>",
		"dovecot: Apr 01 10:00:02 Info: imap-login: Login: user=<x>, method=PLAIN",
		"Sep 13 00:05:00 master: Error: service(imap): child 4321 killed with signal 9",
		"Apr  1 09:00:00 raptor dovecot: Dovecot v1.2.17 starting up",
		"2025-01-02 03:04:05 imap-login: Info: Logged in: user=<dave>, mpid=99",
		"Sep 13 00:05:00 imap(bob)<7<: x",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p := NewParser(time.UTC, time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC))
		var ev Event
		p.Parse(line, &ev)
		if ev.Kind >= NumKinds {
			t.Fatalf("kind %d", ev.Kind)
		}
		if (ev.Kind == Login || ev.Kind == End) && (len(ev.User) == 0 || ev.Service == NoService) {
			t.Fatalf("%s without user or service: %q", ev.Kind, line)
		}
		if ev.Kind == Malformed && ev.Reason == "" {
			t.Fatalf("malformed without a reason: %q", line)
		}
		// A parsed login or end must be usable by the pairer.
		pr := NewPairer(PairOptions{})
		pr.Add(0, &ev)
		pr.EndSource(0)
		if pr.Open() != 0 {
			t.Fatal("sessions left open after EndSource")
		}
	})
}

// Dates no calendar has are malformed lines, never rolled over into the
// next month; Feb 29 goes to the year the mtime rule gives, and is
// malformed if that year is not a leap year.
func TestImpossibleDates(t *testing.T) {
	ref := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC) // 2026 is no leap year
	for _, line := range []string{
		"Feb 31 10:00:00 imap(a): Logged out",
		"Feb 30 10:00:00 imap(a): Logged out",
		"Apr 31 10:00:00 imap(a): Logged out",
		"Jun 31 10:00:00 mx dovecot: imap(a): Logged out",
		"Feb 29 10:00:00 imap(a): Logged out", // not 2024, two years back
		"dovecot: Sep 31 10:00:02 Info: imap-login: Login: user=<x>, method=PLAIN",
		"2026-02-30T10:00:00Z mx dovecot: imap(a)<1><s>: Logged out",
		"2026-02-29T10:00:00+01:00 mx dovecot: imap(a)<1><s>: Logged out",
		"2025-11-31 10:00:00 imap(a): Logged out",
		"2026-04-31T10:00:00 mx dovecot: imap(a): Logged out",
	} {
		p := NewParser(time.UTC, ref)
		var ev Event
		p.Parse([]byte(line), &ev)
		if ev.Kind != Malformed || !strings.HasPrefix(ev.Reason, "no such date") {
			t.Errorf("%q: kind %s at %s (reason %q), want malformed: no such date", line, ev.Kind,
				time.Unix(0, ev.Time).UTC().Format(time.RFC3339), ev.Reason)
		}
	}
	// The same dates where they exist.
	for line, want := range map[string]string{
		"Feb 28 10:00:00 imap(a): Logged out":                        "2026-02-28T10:00:00Z",
		"Apr 30 10:00:00 imap(a): Logged out":                        "2025-04-30T10:00:00Z",
		"Dec 31 10:00:00 imap(a): Logged out":                        "2025-12-31T10:00:00Z",
		"2024-02-29T10:00:00Z mx dovecot: imap(a)<1><s>: Logged out": "2024-02-29T10:00:00Z",
		"2000-02-29 10:00:00 imap(a): Logged out":                    "2000-02-29T10:00:00Z",
		"2026-01-31T23:59:59+01:00 mx dovecot: imap(a): Logged out":  "2026-01-31T22:59:59Z",
		"2026-03-11T10:00:00Z mx dovecot: imap(a)<1><s>: Logged out": "2026-03-11T10:00:00Z",
		"Mar 11 10:00:00 mx dovecot: imap(a)<1><s>: Logged out":      "2026-03-11T10:00:00Z",
		"Mar 13 10:00:00 mx dovecot: imap(a)<1><s>: Logged out":      "2025-03-13T10:00:00Z",
		"2100-02-28 10:00:00 imap(a): Logged out":                    "2100-02-28T10:00:00Z",
	} {
		p := NewParser(time.UTC, ref)
		var ev Event
		p.Parse([]byte(line), &ev)
		if got := time.Unix(0, ev.Time).UTC().Format(time.RFC3339); ev.Kind == Malformed || got != want {
			t.Errorf("%q: kind %s at %s (%s), want %s", line, ev.Kind, got, ev.Reason, want)
		}
	}
	// Months, days, times and zone offsets out of range, and years no
	// timestamp can hold, with why.
	for line, why := range map[string]string{
		"2026-13-01T10:00:00Z mx dovecot: imap(a): Logged out":      "no such date: 2026-13-01",
		"2026-00-10 10:00:00 imap(a): Logged out":                   "no such date: 2026-00-10",
		"2026-01-00T10:00:00Z mx dovecot: imap(a): Logged out":      "no such date: 2026-01-00",
		"2026-01-32 10:00:00 imap(a): Logged out":                   "no such date: 2026-01-32",
		"Mar 32 10:00:00 imap(a): Logged out":                       "no such date: Mar 32",
		"Mar  0 10:00:00 imap(a): Logged out":                       "no such date: Mar  0",
		"2026-03-01T25:00:00Z mx dovecot: imap(a): Logged out":      "no such time: 25:00:00",
		"2026-03-01 24:00:00 imap(a): Logged out":                   "no such time: 24:00:00",
		"Mar  1 25:00:00 imap(a): Logged out":                       "no such time: 25:00:00",
		"Mar  1 10:61:00 mx dovecot: imap(a): Logged out":           "no such time: 10:61:00",
		"dovecot: Mar 01 10:00:61 Info: imap(a): Logged out":        "no such time: 10:00:61",
		"2026-03-01T10:00:00+25:00 mx dovecot: imap(a): Logged out": "no such zone offset: +25:00",
		"2026-03-01T10:00:00-01:75 mx dovecot: imap(a): Logged out": "no such zone offset: -01:75",
		"2026-03-01T10:00:00+2400 mx dovecot: imap(a): Logged out":  "no such zone offset: +2400",
		"0000-01-01 10:00:00 imap(a): Logged out":                   "year out of range: 0000-01-01",
		"9999-12-31T10:00:00Z mx dovecot: imap(a): Logged out":      "year out of range: 9999-12-31",
		"Mar 001 10:00:00 imap(a): Logged out":                      "no timestamp", // three digits: no syslog day
	} {
		p := NewParser(time.UTC, ref)
		var ev Event
		p.Parse([]byte(line), &ev)
		if ev.Kind != Malformed || ev.Reason != why {
			t.Errorf("%q: kind %s at %s (reason %q), want malformed: %s", line, ev.Kind,
				time.Unix(0, ev.Time).UTC().Format(time.RFC3339), ev.Reason, why)
		}
	}
	// A line after a good one of the same minute (the parser's cache).
	p := NewParser(time.UTC, ref)
	var ev Event
	p.Parse([]byte("2026-03-01T10:00:59Z mx dovecot: imap(a): Logged out"), &ev)
	for _, line := range []string{"2026-03-01T10:00:61Z mx dovecot: imap(a): Logged out", "2026-03-01T10:00:99Z mx dovecot: imap(a): Logged out"} {
		if p.Parse([]byte(line), &ev); ev.Kind != Malformed {
			t.Errorf("%q after 10:00:59: %s at %s, want malformed", line, ev.Kind, time.Unix(0, ev.Time).UTC().Format(time.RFC3339))
		}
	}
	// A syslog date placed by an mtime out of range.
	far := NewParser(time.UTC, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	if far.Parse([]byte("Mar  1 10:00:00 imap(a): Logged out"), &ev); ev.Kind != Malformed || !strings.HasPrefix(ev.Reason, "year out of range: 2999") {
		t.Errorf("mtime in 3000: %s (%q), want malformed: year out of range", ev.Kind, ev.Reason)
	}
	for _, line := range []string{"2100-02-29 10:00:00 imap(a): Logged out", "1900-02-29T00:00:00Z h dovecot: imap(a): Logged out"} {
		p := NewParser(time.UTC, ref)
		var ev Event
		p.Parse([]byte(line), &ev)
		if ev.Kind != Malformed {
			t.Errorf("%q: %s, want malformed (no leap year)", line, ev.Kind)
		}
	}
}

// Feb 29 of a syslog log: the leap year is taken only when its Feb 29 lies
// in the year up to (two days after) the file's mtime.
func TestLeapDayYear(t *testing.T) {
	for _, tc := range []struct {
		ref  time.Time
		want string // "" for malformed
	}{
		{time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), "2024-02-29T10:00:00Z"},   // a week ago
		{time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC), "2024-02-29T10:00:00Z"},  // last year, within a year
		{time.Date(2025, 2, 27, 0, 0, 0, 0, time.UTC), "2024-02-29T10:00:00Z"},  // just within a year
		{time.Date(2024, 2, 27, 12, 0, 0, 0, time.UTC), "2024-02-29T10:00:00Z"}, // a little after the mtime
		{time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC), ""},                      // more than a year back
		{time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), ""},                       // 2024 is three years back
		{time.Date(2024, 2, 20, 0, 0, 0, 0, time.UTC), ""},                      // 2024's is ahead, 2023 has none
	} {
		p := NewParser(time.UTC, tc.ref)
		var ev Event
		p.Parse([]byte("Feb 29 10:00:00 imap(a): Logged out"), &ev)
		got := ""
		if ev.Kind != Malformed {
			got = time.Unix(0, ev.Time).UTC().Format(time.RFC3339)
		}
		if got != tc.want {
			t.Errorf("mtime %s: Feb 29 is %q (%s), want %q", tc.ref.Format(time.DateOnly), got, ev.Reason, tc.want)
		}
	}
}

// The cached minute gives every line the time a fresh parser gives it.
func TestTimeCacheAgreesWithAFreshParse(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.FixedZone("X", 3600)
	}
	ref := time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 8))
	base := time.Date(2025, 10, 26, 0, 58, 50, 0, time.UTC) // a change of summer time, in Berlin
	formats := []func(time.Time) string{
		func(t time.Time) string { return t.Format(time.Stamp) },
		func(t time.Time) string { return t.Format("Jan 02 15:04:05") },
		func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
		func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000000Z07:00") },
		func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z07:00") },
		func(t time.Time) string { return t.Format(time.RFC3339Nano) }, // fractions of any length
		func(t time.Time) string { return t.In(time.FixedZone("", -5*3600)).Format(time.RFC3339) },
		func(t time.Time) string { return t.Format(time.StampMicro) },
	}
	for _, zone := range []*time.Location{time.UTC, loc} {
		cached := NewParser(zone, ref)
		tm := base
		for i := 0; i < 20000; i++ {
			tm = tm.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
			stamp := formats[r.IntN(len(formats))](tm.In(zone))
			line := []byte(stamp + " imap(a): Logged out")
			if r.IntN(50) == 0 {
				line = []byte(stamp[:len(stamp)-1] + "x imap(a): Logged out") // broken seconds
			}
			var got, want Event
			cached.Parse(line, &got)
			NewParser(zone, ref).Parse(line, &want)
			if got.Time != want.Time || got.Kind != want.Kind {
				t.Fatalf("%s, line %d %q: cached %d %s, fresh %d %s", zone, i, line, got.Time, got.Kind, want.Time, want.Kind)
			}
		}
	}
}

// Lines parsed one after another (with the parser's caches) read as each
// line alone does.
func FuzzParseLines(f *testing.F) {
	f.Add([]byte("Sep 13 00:03:15 imap(a): Logged out\nSep 13 00:03:16 imap(a): Logged out\nSep 13 00:04:16 imap(b): x"))
	f.Add([]byte("2025-05-19T10:15:05.123+02:00 h dovecot: imap(a): Logged out\n2025-05-19T10:15:06.9+02:00 h dovecot: imap(a): Logged out\n2025-05-19T10:15:06.900+03:00 h dovecot: x"))
	f.Add([]byte("2025-01-02 03:04:05 imap(a): Logged out\n2025-01-02 03:04:59 imap(a): y\n2025-01-02 03:04:60 z\n2025-01-02 03:04:6"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ref := time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)
		p := NewParser(time.UTC, ref)
		for _, line := range bytes.Split(data, []byte("\n")) {
			var got, want Event
			p.Parse(line, &got)
			NewParser(time.UTC, ref).Parse(line, &want)
			if got.Time != want.Time || got.Kind != want.Kind {
				t.Fatalf("%q: with caches %d %s, alone %d %s", line, got.Time, got.Kind, want.Time, want.Kind)
			}
		}
	})
}
