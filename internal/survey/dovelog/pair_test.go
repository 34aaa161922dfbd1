package dovelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func textFile(name, text string) File {
	return File{Name: name, Ref: goldenRef, Open: func() (io.ReadCloser, error) {
		if mapFiles {
			mapOpened.Add(1)
			return &memMapped{Reader: strings.NewReader(text), b: []byte(text), released: make([]bool, len(text)), t: tt}, nil
		}
		return io.NopCloser(strings.NewReader(text)), nil
	}}
}

// tt is the running test, for memMapped's complaints.
var tt *testing.T

type userWant struct {
	connect  int64
	sessions int64
	last     string
}

func scanTexts(t *testing.T, opt PairOptions, streams ...[]File) (map[string]Totals, Stats, []Session) {
	t.Helper()
	var ss []Session
	opt.OnSession = func(s Session) { ss = append(ss, s) }
	pr := NewPairer(opt)
	var st []Stream
	for _, files := range streams {
		st = append(st, Stream{Name: files[0].Name, Files: files})
	}
	if _, err := Scan(context.Background(), st, pr, ScanOptions{Loc: time.UTC, Workers: 2, BlockSize: 128}); err != nil {
		t.Fatal(err)
	}
	if pr.Open() != 0 {
		t.Fatalf("%d sessions left open", pr.Open())
	}
	return pr.Totals(), pr.Stats(), ss
}

func checkUsers(t *testing.T, got map[string]Totals, want map[string]userWant) {
	t.Helper()
	for name, w := range want {
		g := got[name]
		last := ""
		if !g.LastLogin.IsZero() {
			last = g.LastLogin.Format("15:04:05")
		}
		if int64(g.Connect/time.Second) != w.connect || g.Sessions != w.sessions || last != w.last {
			t.Errorf("%s: connect_s=%d sessions=%d last=%s, want connect_s=%d sessions=%d last=%s",
				name, int64(g.Connect/time.Second), g.Sessions, last, w.connect, w.sessions, w.last)
		}
	}
}

func TestPairing(t *testing.T) {
	login := func(ts, user, extra string) string {
		return "Sep 13 " + ts + " imap-login: Info: Login: user=<" + user + ">, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8" + extra + "\n"
	}
	for _, tc := range []struct {
		name  string
		opt   PairOptions
		texts [][]string // streams of files
		want  map[string]userWant
		stats func(Stats) string
	}{
		{
			name: "three parallel connections count once",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=1, TLS, session=<s1>") +
					login("10:00:10", "a", ", mpid=2, TLS, session=<s2>") +
					login("10:00:20", "a", ", mpid=3, TLS, session=<s3>") +
					"Sep 13 10:00:50 imap(a)<2><s2>: Info: Logged out in=1 out=2\n" +
					"Sep 13 10:01:40 imap(a)<1><s1>: Info: Logged out in=1 out=2\n" +
					"Sep 13 10:03:20 imap(a)<3><s3>: Info: Disconnected for inactivity in=1 out=2\n",
			}},
			want: map[string]userWant{"a": {200, 3, "10:00:20"}},
		},
		{
			name: "two busy periods add up",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=1, session=<s1>") +
					"Sep 13 10:01:00 imap(a)<1><s1>: Logged out\n" +
					login("11:00:00", "a", ", mpid=1, session=<s2>") +
					"Sep 13 11:00:30 imap(a)<1><s2>: Logged out\n",
			}},
			want: map[string]userWant{"a": {90, 2, "11:00:00"}},
		},
		{
			name: "pid pairs when sessions are not logged",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=11") +
					login("10:00:05", "a", ", mpid=22") +
					"Sep 13 10:00:10 imap(a)<22><>: Logged out\n" + // the second, by pid
					"Sep 13 10:01:00 imap(a)<11><>: Logged out\n",
			}},
			want: map[string]userWant{"a": {60, 2, "10:00:05"}},
		},
		{
			name: "first in first out per user and service",
			texts: [][]string{{
				login("10:00:00", "a", "") +
					"Sep 13 10:00:01 pop3-login: Login: user=<a>, method=PLAIN\n" +
					login("10:00:02", "a", "") +
					"Sep 13 10:00:03 pop3(a): Disconnected: Logged out top=0/0, retr=0/0, del=0/0, size=0\n" +
					"Sep 13 10:00:10 imap(a): Logged out in=1 out=1\n" + // closes the 10:00:00 one
					"Sep 13 10:00:20 imap(a): Logged out in=1 out=1\n",
			}},
			want: map[string]userWant{"a": {20, 3, "10:00:02"}},
		},
		{
			name: "a restart closes only its host's sessions",
			texts: [][]string{{
				"Sep 13 10:00:00 h1 dovecot: imap-login: Login: user=<a>, mpid=1, session=<x>\n" +
					"Sep 13 10:00:00 h2 dovecot: imap-login: Login: user=<b>, mpid=1, session=<x>\n" +
					"Sep 13 10:00:30 h1 dovecot: master: Dovecot v2.3.21 starting up for imap\n" +
					"Sep 13 10:01:00 h2 dovecot: imap(b)<1><x>: Logged out\n" +
					"Sep 13 10:01:30 h1 dovecot: imap(a)<1><x>: Logged out\n", // after the restart: nothing open
			}},
			want: map[string]userWant{"a": {30, 1, "10:00:00"}, "b": {60, 1, "10:00:00"}},
			stats: func(s Stats) string {
				return check(s.Closed[ClosedByRestart] == 1 && s.Unmatched == 1, "one restart close, one unmatched end")
			},
		},
		{
			name: "a dead mail process ends its sessions",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=77, session=<p>") +
					"Sep 13 10:00:40 master: Error: service(imap): child 77 killed with signal 9\n" +
					"Sep 13 10:09:00 imap(z): Logged out\n",
			}},
			want: map[string]userWant{"a": {40, 1, "10:00:00"}},
		},
		{
			name: "open sessions end at the last line",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=1, session=<p>") +
					"Sep 13 10:05:00 auth: Info: something\n",
			}},
			want: map[string]userWant{"a": {300, 1, "10:00:00"}},
		},
		{
			name: "failed logins never count",
			texts: [][]string{{
				"Sep 13 10:00:00 imap-login: Info: Disconnected: Aborted login (auth failed, 1 attempts in 4 secs): user=<a>, method=PLAIN, session=<f1>\n" +
					"Sep 13 10:00:00 imap-login: Disconnected (auth failed, 1 attempts in 6 secs): user=<a>, method=PLAIN, TLS, session=<f2>\n" +
					"Sep 13 10:09:00 imap(z): Logged out\n",
			}},
			want: map[string]userWant{"a": {0, 0, ""}},
		},
		{
			name: "window clips sessions",
			opt: PairOptions{Since: time.Date(2025, 9, 13, 10, 0, 30, 0, time.UTC),
				Until: time.Date(2025, 9, 13, 10, 2, 0, 0, time.UTC)},
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=1, session=<1>") + // 10:00:30–10:01:00 inside
					"Sep 13 10:01:00 imap(a)<1><1>: Logged out\n" +
					login("10:00:00", "b", ", mpid=2, session=<2>") + // ends before the window
					"Sep 13 10:00:10 imap(b)<2><2>: Logged out\n" +
					login("10:01:30", "c", ", mpid=3, session=<3>") + // 10:01:30–10:02:00 inside
					"Sep 13 10:05:00 imap(c)<3><3>: Logged out\n" +
					login("10:03:00", "d", ", mpid=4, session=<4>") + // after the window
					"Sep 13 10:04:00 imap(d)<4><4>: Logged out\n",
			}},
			want: map[string]userWant{"a": {30, 1, "10:00:00"}, "b": {0, 0, ""}, "c": {30, 1, "10:01:30"}, "d": {0, 0, ""}},
		},
		{
			name: "rotated files carry open sessions over",
			texts: [][]string{{
				login("10:00:00", "a", ", mpid=1, session=<r>"),
				"Sep 13 10:10:00 imap(a)<1><r>: Logged out\n",
			}},
			want: map[string]userWant{"a": {600, 1, "10:00:00"}},
		},
		{
			name: "two hosts' logs merge by time into one union",
			texts: [][]string{
				{login("10:00:00", "a", ", mpid=1, session=<h1>") + "Sep 13 10:02:00 imap(a)<1><h1>: Logged out\n"},
				{login("10:01:00", "a", ", mpid=1, session=<h2>") + "Sep 13 10:03:00 imap(a)<1><h2>: Logged out\n"},
			},
			want: map[string]userWant{"a": {180, 2, "10:01:00"}},
		},
		{
			name: "same session id on two hosts are two sessions",
			texts: [][]string{
				{login("10:00:00", "a", ", mpid=1, session=<same>") + "Sep 13 10:01:00 imap(a)<1><same>: Logged out\n"},
				{login("10:00:30", "a", ", mpid=1, session=<same>") + "Sep 13 10:05:00 imap(a)<1><same>: Logged out\n"},
			},
			want: map[string]userWant{"a": {300, 2, "10:00:30"}},
		},
		{
			name: "a reused mail process pid ends the session whose end line was lost",
			texts: [][]string{{
				login("10:00:00", "alice", ", mpid=100, TLS, session=<s1>") + // her logout is lost
					login("10:10:00", "bob", ", mpid=100, TLS, session=<s2>") + // pid 100 again: alice's process had ended
					"Sep 13 10:20:00 imap(bob)<100><s2>: Info: Logged out in=1 out=2\n" +
					"Sep 13 10:30:00 auth: Info: something\n",
			}},
			want: map[string]userWant{"alice": {600, 1, "10:00:00"}, "bob": {600, 1, "10:10:00"}},
			stats: func(s Stats) string {
				return check(s.Closed[ClosedByPidReused] == 1 && s.Closed[ClosedAtEnd] == 0 && s.Paired() == 1, "one pid-reused close, one logout")
			},
		},
		{
			name: "a reused pid without session ids (2.2), and by the same user",
			texts: [][]string{{
				login("10:00:00", "alice", ", mpid=100") +
					login("10:05:00", "alice", ", mpid=100") + // the first one's logout was lost
					login("10:06:00", "carol", ", mpid=100") + // and the second's
					"Sep 13 10:07:00 imap(carol): Disconnected: Logged out in=1 out=2\n" +
					"Sep 13 10:30:00 auth: Info: something\n",
			}},
			want:  map[string]userWant{"alice": {360, 2, "10:05:00"}, "carol": {60, 1, "10:06:00"}},
			stats: func(s Stats) string { return check(s.Closed[ClosedByPidReused] == 2, "two pid-reused closes") },
		},
		{
			// The end line names pid 100: it is the second login's, whose
			// process has that pid now, not the first one's, which ended
			// when the pid was handed out again.
			name: "an end by pid after the pid was reused pairs with the newer login",
			texts: [][]string{{
				login("10:00:00", "alice", ", mpid=100") + // its end line is lost
					login("10:05:00", "bob", ", mpid=200") +
					login("10:10:00", "alice", ", mpid=100") +
					"Sep 13 10:20:00 imap(alice)<100><>: Info: Logged out in=1 out=2\n" +
					"Sep 13 10:25:00 imap(bob)<200><>: Info: Logged out in=1 out=2\n" +
					"Sep 13 10:40:00 auth: Info: something\n",
			}},
			want: map[string]userWant{"alice": {1200, 2, "10:10:00"}, "bob": {1200, 1, "10:05:00"}},
			stats: func(s Stats) string {
				return check(s.Closed[ClosedByPidReused] == 1 && s.Paired() == 2 && s.Closed[ClosedAtEnd] == 0 && s.Counted == 3,
					"one pid-reused close, two logouts, none open at the end, three sessions")
			},
		},
		{
			name: "the same pid on another host is another process",
			texts: [][]string{{
				"Sep 13 10:00:00 h1 dovecot: imap-login: Login: user=<alice>, mpid=100, session=<a>\n" +
					"Sep 13 10:10:00 h2 dovecot: imap-login: Login: user=<bob>, mpid=100, session=<b>\n" +
					"Sep 13 10:20:00 h1 dovecot: imap(alice)<100><a>: Logged out\n" +
					"Sep 13 10:30:00 h2 dovecot: imap(bob)<100><b>: Logged out\n",
			}},
			want:  map[string]userWant{"alice": {1200, 1, "10:00:00"}, "bob": {1200, 1, "10:10:00"}},
			stats: func(s Stats) string { return check(s.Closed[ClosedByPidReused] == 0, "no pid-reused close") },
		},
		{
			// Dovecot 1.x's PID= is the login process's: one login process
			// serves many logins at once (the lograptor sample has three
			// logins and a failed one with PID=12150 within ten seconds), so
			// its reuse says nothing about the end of a session.
			name: "a reused 1.x login PID ends nothing",
			texts: [][]string{{
				"Apr  1 10:00:03 raptor dovecot: imap-login: Login: user=<triceratops>, PID=12150, method=PLAIN, rip=192.168.41.96, lip=192.168.190.13\n" +
					"Apr  1 10:00:12 raptor dovecot: imap-login: Login: user=<tarbosauros>, PID=12150, method=PLAIN, rip=192.168.19.178, lip=192.168.190.13, TLS\n" +
					"Apr  1 10:01:03 raptor dovecot: IMAP(triceratops): Disconnected: Logged out bytes=1719/139719\n" +
					"Apr  1 10:01:12 raptor dovecot: IMAP(tarbosauros): Disconnected: Logged out bytes=807/3976\n",
			}},
			want: map[string]userWant{"triceratops": {60, 1, "10:00:03"}, "tarbosauros": {60, 1, "10:00:12"}},
			stats: func(s Stats) string {
				return check(s.Closed[ClosedByPidReused] == 0 && s.Paired() == 2, "both paired by their logouts")
			},
		},
		{
			name: "a dead process ends the session of its pid, not an older one's",
			texts: [][]string{{
				login("10:00:00", "alice", ", mpid=100, session=<s1>") +
					login("10:10:00", "bob", ", mpid=100, session=<s2>") +
					"Sep 13 10:15:00 master: Error: service(imap): child 100 killed with signal 9\n" +
					"Sep 13 10:30:00 auth: Info: something\n",
			}},
			want: map[string]userWant{"alice": {600, 1, "10:00:00"}, "bob": {300, 1, "10:10:00"}},
			stats: func(s Stats) string {
				return check(s.Closed[ClosedByPidReused] == 1 && s.Closed[ClosedByChild] == 1, "one of each")
			},
		},
		{
			name: "user names normalised",
			opt: PairOptions{Normalize: func(s string) (string, bool) {
				s = strings.TrimSuffix(s, "@example.edu")
				return s, s == "alice"
			}},
			texts: [][]string{{
				login("10:00:00", "alice@example.edu", ", mpid=1, session=<1>") +
					login("10:00:30", "alice", ", mpid=2, session=<2>") +
					"Sep 13 10:01:00 imap(alice@example.edu)<1><1>: Logged out\n" +
					"Sep 13 10:02:00 imap(alice)<2><2>: Logged out\n",
			}},
			want: map[string]userWant{"alice": {120, 2, "10:00:30"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var streams [][]File
			for i, files := range tc.texts {
				var fs []File
				for j, text := range files {
					fs = append(fs, textFile(string(rune('a'+i))+string(rune('0'+j)), text))
				}
				streams = append(streams, fs)
			}
			got, st, _ := scanTexts(t, tc.opt, streams...)
			checkUsers(t, got, tc.want)
			if tc.stats != nil {
				if msg := tc.stats(st); msg != "" {
					t.Errorf("stats %+v: want %s", st, msg)
				}
			}
		})
	}
}

func check(ok bool, msg string) string {
	if ok {
		return ""
	}
	return msg
}

func TestUnreadableFileIsAnError(t *testing.T) {
	pr := NewPairer(PairOptions{})
	bad := File{Name: "/var/log/dovecot.log.1", Open: func() (io.ReadCloser, error) { return nil, io.ErrUnexpectedEOF }}
	_, err := Scan(context.Background(), []Stream{{Name: "x", Files: []File{bad}}}, pr, ScanOptions{})
	if err == nil || !strings.Contains(err.Error(), "/var/log/dovecot.log.1") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

func TestMalformedNamedByFileAndLine(t *testing.T) {
	text := "Sep 13 10:00:00 imap(a): Logged out\ngarbage\nSep 13 10:00:00 imap(a): Logged out\nmore garbage\n"
	pr := NewPairer(PairOptions{})
	rep, err := Scan(context.Background(), []Stream{{Name: "x", Files: []File{textFile("one.log", text)}}}, pr, ScanOptions{BlockSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ByKind[Malformed] != 2 || len(rep.Malformed) != 2 || rep.Malformed[0].Line != 2 || rep.Malformed[1].Line != 4 || rep.Malformed[1].File != "one.log" {
		t.Fatalf("malformed = %d %v", rep.ByKind[Malformed], rep.Malformed)
	}
}

// A line with a date no calendar has is a malformed line, named by file
// and line; it opens and closes nothing.
func TestImpossibleDatesMakeNoSessions(t *testing.T) {
	text := "Feb 27 10:00:00 imap-login: Login: user=<a>, mpid=1, session=<s1>\n" +
		"Feb 31 10:00:00 imap(a)<1><s1>: Logged out in=1 out=2\n" + // would be Mar 3: four days
		"Apr 31 09:00:00 imap-login: Login: user=<b>, mpid=2, session=<s2>\n" + // would be May 1
		"2025-02-30T10:00:00Z imap(b)<2><s2>: Logged out in=1 out=2\n" +
		"2025-13-01T10:00:00Z imap-login: Login: user=<c>, mpid=3, session=<s3>\n" + // would be 2026-01-01
		"Feb 27 25:00:00 imap-login: Login: user=<c>, mpid=4, session=<s4>\n" + // would be Feb 28 01:00
		"2025-02-27T10:01:00+26:00 imap-login: Login: user=<c>, mpid=5, session=<s5>\n" + // would be Feb 26
		"Feb 27 10:05:00 auth: Info: something\n"
	var sessions []Session
	pr := NewPairer(PairOptions{OnSession: func(s Session) { sessions = append(sessions, s) }})
	rep, err := Scan(context.Background(), []Stream{{Name: "x", Files: []File{textFile("mail.log", text)}}}, pr, ScanOptions{Loc: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ByKind[Malformed] != 6 || len(rep.Malformed) != 5 {
		t.Fatalf("malformed %d, examples %v; want 6, the first 5 shown", rep.ByKind[Malformed], rep.Malformed)
	}
	for i, want := range []struct {
		line int64
		why  string
	}{{2, "no such date"}, {3, "no such date"}, {4, "no such date"}, {5, "no such date"}, {6, "no such time"}} {
		m := rep.Malformed[i]
		if m.File != "mail.log" || m.Line != want.line || !strings.HasPrefix(m.Reason, want.why) {
			t.Errorf("example %d = %s, want mail.log:%d: %s", i, m, want.line, want.why)
		}
	}
	tot := pr.Totals()
	if a := tot["a"]; a.Connect != 5*time.Minute || a.Sessions != 1 {
		t.Errorf("a: %v in %d sessions, want 5m0s (open to the last line) in 1", a.Connect, a.Sessions)
	}
	if b, ok := tot["b"]; ok {
		t.Errorf("b has totals %+v: a login on Apr 31 made a session", b)
	}
	if c, ok := tot["c"]; ok {
		t.Errorf("c has totals %+v: a login in month 13, at hour 25 or at +26:00 made a session", c)
	}
	if len(sessions) != 1 {
		t.Errorf("sessions %+v, want one", sessions)
	}
}

// However the streams are cut into blocks and however many goroutines
// parse them, the totals are the same: blocks are paired in order.
func TestScanSameWhateverTheBlocks(t *testing.T) {
	tt = t
	var streams [][]File
	for h := 0; h < 3; h++ {
		log := benchLog(200<<10+h*7919, 300)
		var files []File
		// Rotated files: three pieces cut at line ends.
		for k, rest := 0, log; k < 3; k++ {
			n := len(rest)
			if k < 2 {
				n = len(rest) / (3 - k)
				n += bytes.IndexByte(rest[n:], '\n') + 1
			}
			files = append(files, textFile(fmt.Sprintf("h%d.log.%d", h, 2-k), string(rest[:n])))
			rest = rest[n:]
		}
		streams = append(streams, files)
	}
	// Normalize, asked by the parsers and the pairer, maps two log names
	// to one user (userN and userN+1, N even), if known.
	norm := func(s string) (string, bool) {
		n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSuffix(s, "@example.edu"), "user"))
		return "u" + strconv.Itoa(n/2), n%3 != 0
	}
	run := func(workers, block int) (map[string]Totals, Stats, Report) {
		pr := NewPairer(PairOptions{Normalize: norm})
		var st []Stream
		for _, files := range streams {
			st = append(st, Stream{Name: files[0].Name, Files: files})
		}
		rep, err := Scan(context.Background(), st, pr, ScanOptions{Loc: time.UTC, Workers: workers, BlockSize: block})
		if err != nil {
			t.Fatal(err)
		}
		return pr.Totals(), pr.Stats(), rep
	}
	want, wantStats, wantRep := run(1, 64<<20)
	// The pairing goroutine gives up on a helper at once, every time:
	// blocks parsed twice, one copy left to the helper, must change
	// nothing either.
	slack, grace := awaitSlack, awaitGrace
	defer func() { awaitSlack, awaitGrace = slack, grace }()
	if wantStats.Logins == 0 || len(want) < 100 || wantRep.Files != 9 {
		t.Fatalf("reference: %d users, %+v, %d files", len(want), wantStats, wantRep.Files)
	}
	for _, impatient := range []bool{false, true} {
		if impatient {
			awaitSlack, awaitGrace = 0, 0
		}
		for _, mapped := range []bool{false, true} {
			mapFiles = mapped
			for _, workers := range []int{1, 2, 5} {
				for _, block := range []int{100, 4096, 1 << 20} {
					got, st, rep := run(workers, block)
					if o, c := mapOpened.Load(), mapClosed.Load(); o != c || mapped && o == 0 {
						t.Errorf("%d mapped files opened, %d closed", o, c)
					}
					if st != wantStats || rep.Lines != wantRep.Lines || rep.Files != wantRep.Files || rep.ByKind != wantRep.ByKind {
						t.Errorf("workers %d, blocks of %d: stats %+v, %d lines in %d files; want %+v, %d in %d",
							workers, block, st, rep.Lines, rep.Files, wantStats, wantRep.Lines, wantRep.Files)
					}
					if len(got) != len(want) {
						t.Errorf("workers %d, blocks of %d: %d users, want %d", workers, block, len(got), len(want))
					}
					for name, w := range want {
						if got[name] != w {
							t.Errorf("workers %d, blocks of %d, mapped %v, impatient %v: %s = %+v, want %+v", workers, block, mapped, impatient, name, got[name], w)
							break
						}
					}
				}
			}
		}
	}
	mapFiles = false
}

// mapFiles makes textFile's files Mapped.
var (
	mapFiles             bool
	mapOpened, mapClosed atomic.Int64
)

// memMapped is a Mapped in memory, which checks that Scan releases every
// byte once and closes it once.
type memMapped struct {
	*strings.Reader
	b        []byte
	released []bool
	closed   int
	mu       sync.Mutex
	t        *testing.T
}

func (m *memMapped) Bytes() []byte { return m.b }
func (m *memMapped) Release(off, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := off; i < off+n; i++ {
		if m.released[i] {
			m.t.Errorf("byte %d released twice", i)
			return
		}
		m.released[i] = true
	}
}
func (m *memMapped) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed++
	mapClosed.Add(1)
	for i, r := range m.released {
		if !r {
			m.t.Errorf("closed with byte %d of %d not released", i, len(m.b))
			break
		}
	}
	return nil
}

// A scan stopped midway stops its helpers and closes its files.
func TestScanCancelled(t *testing.T) {
	log := benchLog(4<<20, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	closed := 0
	var mu sync.Mutex
	f := File{Name: "big.log", Open: func() (io.ReadCloser, error) {
		return closer{strings.NewReader(string(log)), func() { mu.Lock(); closed++; mu.Unlock() }}, nil
	}}
	pr := NewPairer(PairOptions{OnSession: func(Session) { cancel() }})
	_, err := Scan(ctx, []Stream{{Name: "x", Files: []File{f}}}, pr, ScanOptions{Workers: 2, BlockSize: 4096})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if closed != 1 {
		t.Errorf("file closed %d times, want once", closed)
	}
}

type closer struct {
	io.Reader
	fn func()
}

func (c closer) Close() error { c.fn(); return nil }
