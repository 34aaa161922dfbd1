package survey

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/survey/dovelog"
)

// duBytes is `du --block-size=1 -s` of a folder.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "--block-size=1", "-s", dir).Output()
	if err != nil {
		t.Fatalf("du %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// findMessages is `find DIR -type f (-path */cur/* -o -path */new/*) | wc -l`.
func findMessages(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("find", dir, "-type", "f", "(", "-path", "*/cur/*", "-o", "-path", "*/new/*", ")").Output()
	if err != nil {
		t.Fatalf("find %s: %v", dir, err)
	}
	return int64(strings.Count(string(out), "\n"))
}

// tree makes files (content) and folders (a name ending in /) under dir.
func tree(t *testing.T, dir string, spec map[string]string) {
	t.Helper()
	for name, body := range spec {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSurveyHomes(t *testing.T) {
	root := t.TempDir()
	c := &cluster.Cluster{Domain: "example.edu", Hosts: []*cluster.Host{
		{Name: "bp01", Pool: "bp", Root: "/bp01", FSRoot: filepath.Join(root, "bp01")},
		{Name: "bp02", Pool: "bp", Root: "/bp02", FSRoot: filepath.Join(root, "bp02")},
	}}
	big := strings.Repeat("x", 70000)
	alice := filepath.Join(root, "bp01/bp01/alice")
	tree(t, alice, map[string]string{
		"Maildir/cur/1.a:2,S":              "Subject: one\n\nbody\n",
		"Maildir/cur/2.b:2,RS":             big,
		"Maildir/new/3.c":                  "Subject: three\n\n",
		"Maildir/tmp/4.d":                  "being delivered: not a message yet",
		"Maildir/dovecot-uidlist":          "3 V1 N4\n",
		"Maildir/.Sent/cur/5.e:2,S":        "sent\n",
		"Maildir/.Sent/new/":               "",
		"Maildir/.Sent/tmp/":               "",
		"Maildir/.Sent/maildirfolder":      "",
		"Maildir/.Drafts/cur/":             "", // no new/ or tmp/: a Maildir folder all the same
		"Maildir/.Drafts/cur/x":            "a draft",
		"Maildir/.Sent.2024/cur/6.f:2,S":   "archived\n",
		"Maildir/.Sent.2024/new/7.g":       "archived, new\n",
		"mail/saved":                       "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\n>From the start\nFrom nowhere: not at a line start? yes it is\n\nFrom c@d Tue Jan  2 00:00:00 2024\nSubject: y\n\nbody\n",
		"mail/notes.txt":                   "no mbox: Fromage\nFrom x\n",
		".forward":                         "alice@elsewhere\n",
		"Maildir/.Trash/cur/8.h:2,ST":      "trash\n",
		"Maildir/.Trash/new/":              "",
		"Maildir/dovecot.index.log":        "From but dovecot's own file",
		"Maildir/subscriptions":            "Sent\n",
		"Maildir/.Sent/dovecot-uidlist":    "3 V1 N2\n",
		"Maildir/.Sent.2024/maildirfolder": "",
	})
	// A hard link is counted once; a symlink is not followed.
	if err := os.Link(filepath.Join(alice, "Maildir/cur/2.b:2,RS"), filepath.Join(alice, "Maildir/.Trash/cur/9.i:2,S")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(root, "outside")
	tree(t, outside, map[string]string{"cur/x": big, "new/y": big})
	if err := os.Symlink(outside, filepath.Join(alice, "Maildir/.Evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "cur/x"), filepath.Join(alice, "Maildir/cur/10.j:2,S")); err != nil {
		t.Fatal(err)
	}
	bob := filepath.Join(root, "bp02/bp02/bob")
	tree(t, bob, map[string]string{"Maildir/cur/": "", "Maildir/new/": "", "Maildir/tmp/": ""})
	// carol's home is a symlink: not followed, unreadable.
	if err := os.Symlink(bob, filepath.Join(root, "bp02/bp02/carol")); err != nil {
		t.Fatal(err)
	}
	// erin's home is a file.
	tree(t, filepath.Join(root, "bp01/bp01"), map[string]string{"erin": "not a folder"})

	entries := []directory.Entry{
		{User: "alice", Home: "/bp01/alice"},
		{User: "bob", Home: "/bp02/bob"},
		{User: "carol", Home: "/bp02/carol"},
		{User: "dave", Home: "/bp02/dave"},     // missing
		{User: "erin", Home: "/bp01/erin"},     // a file
		{User: "frank", Home: "/srv/frank"},    // on no host
		{User: "alice", Home: "/bp02/alice2"},  // duplicate
		{User: "../x", Home: "/bp01/x"},        // not a plain name
		{User: "gina", Home: "/bp01/gina/../"}, // not clean
	}
	for _, noDisk := range []bool{false, true} {
		res, err := Run(context.Background(), Options{Cluster: c, Entries: entries, NoDisk: noDisk})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]cluster.User{}
		for _, u := range res.Users {
			got[u.Name] = u
		}
		wantStatus := map[string]string{"alice": "ok", "bob": "ok", "carol": "unreadable", "dave": "missing-home",
			"erin": "unreadable", "frank": "unreadable", "gina": "unreadable"}
		if len(res.Users) != len(wantStatus) {
			t.Errorf("%d users, want %d", len(res.Users), len(wantStatus))
		}
		for name, st := range wantStatus {
			if got[name].Status != st {
				t.Errorf("no-disk %v: %s status %q, want %q", noDisk, name, got[name].Status, st)
			}
		}
		if h := got["frank"]; h.Host != "" || h.Pool != "" {
			t.Errorf("frank on host %q pool %q, want none", h.Host, h.Pool)
		}
		if h := got["bob"]; h.Host != "bp02" || h.Pool != "bp" {
			t.Errorf("bob on host %q pool %q", h.Host, h.Pool)
		}
		// carol, erin, frank, gina, the duplicate and the bad name.
		if len(res.Problems) != 6 {
			t.Errorf("%d problems, want 6: %v", len(res.Problems), res.Problems)
		}
		if res.Missing != 1 {
			t.Errorf("missing = %d, want 1", res.Missing)
		}
		if noDisk {
			if got["alice"].Bytes != 0 || got["alice"].Messages != 0 {
				t.Errorf("--no-disk walked: %+v", got["alice"])
			}
			continue
		}
		// cur+new files: 1,2,3 + Sent 5 + Sent.2024 6,7 + Trash 8,9 +
		// Drafts x = 9; mbox "saved": 3 "From " lines. The symlinks count
		// as nothing.
		if m := got["alice"].Messages; m != 9+3 {
			t.Errorf("alice messages = %d, want 12", m)
		}
		for _, name := range []string{"alice", "bob"} {
			dir := filepath.Join(root, got[name].Host, got[name].Home)
			if du := duBytes(t, dir); got[name].Bytes != du {
				t.Errorf("%s bytes = %d, du says %d", name, got[name].Bytes, du)
			}
		}
	}
}

// A Maildir folder is one with cur/ or new/: an archive folder that only
// ever got cur/ counts, and so does one with new/ alone; the files at the
// top of such a folder are Dovecot's, never an mbox.
func TestMaildirFoldersWithCurOrNew(t *testing.T) {
	home := filepath.Join(t.TempDir(), "alice")
	tree(t, home, map[string]string{
		"Maildir/cur/1:2,S":                     "one",
		"Maildir/new/2":                         "two",
		"Maildir/tmp/3":                         "not yet",
		"Maildir/.Archive.2020/cur/a1":          "archived",
		"Maildir/.Archive.2020/cur/a2:2,S":      "archived",
		"Maildir/.Archive.2020/dovecot-uidlist": "From the uidlist: no mbox",
		"Maildir/.Archive.2021/new/b1":          "only new/",
		"Maildir/.Archive.2021/tmp/b2":          "in tmp/ of a folder with new/: not yet a message",
		"Maildir/.Empty/tmp/c1":                 "tmp/ alone: no mailbox, no message",
		"Maildir/.Junk/cur/":                    "",
		"Maildir/.Junk/tmp/":                    "",
	})
	h := &cluster.Host{Name: "h", Root: "/", FSRoot: "/"}
	b, msgs, err := LocalDisk{}.Usage(context.Background(), h, home)
	if err != nil {
		t.Fatal(err)
	}
	if msgs != 5 {
		t.Errorf("%d messages, want 5 (cur/ 1, new/ 2, .Archive.2020/cur a1 a2, .Archive.2021/new b1)", msgs)
	}
	if want := findMessages(t, home); msgs != want {
		t.Errorf("%d messages, find counts %d files in cur/ and new/", msgs, want)
	}
	if du := duBytes(t, home); b != du {
		t.Errorf("bytes = %d, du says %d", b, du)
	}
}

func TestMboxAcrossReads(t *testing.T) {
	dir := t.TempDir()
	// "\nFrom " lands across the 64 KiB read boundary at every offset.
	for shift := 0; shift < 8; shift++ {
		body := "From a@b Mon Jan  1 00:00:00 2024\n" + strings.Repeat("y", 64<<10-40+shift) + "\nFrom c@d x\nz\nFrom e@f y\n"
		p := filepath.Join(dir, "home"+strconv.Itoa(shift))
		tree(t, p, map[string]string{"mbox": body})
		h := &cluster.Host{Name: "h", Root: "/", FSRoot: "/"}
		_, msgs, err := LocalDisk{}.Usage(context.Background(), h, p)
		if err != nil {
			t.Fatal(err)
		}
		if msgs != 3 {
			t.Errorf("shift %d: %d messages, want 3", shift, msgs)
		}
	}
}

func TestNormalizer(t *testing.T) {
	users := []cluster.User{{Name: "alice"}, {Name: "bob@example.edu"}, {Name: "Carol"}, {Name: "dan"}, {Name: "Dan"}}
	n := Normalizer(users, "Example.EDU")
	for _, tc := range []struct {
		in, want string
		known    bool
	}{
		{"alice", "alice", true},
		{"alice@example.edu", "alice", true},
		{"alice@EXAMPLE.EDU", "alice", true},
		{"ALICE@example.edu", "alice", true},
		{"alice@other.org", "alice@other.org", false},
		{"bob", "bob@example.edu", true},
		{"bob@example.edu", "bob@example.edu", true},
		{"carol", "Carol", true},
		{"dan", "dan", true},
		{"DAN", "DAN", false}, // dan or Dan: no guessing
		{"zed", "zed", false},
	} {
		got, known := n(tc.in)
		if got != tc.want || known != tc.known {
			t.Errorf("normalize %q = %q %v, want %q %v", tc.in, got, known, tc.want, tc.known)
		}
	}
}

// The Normalizer's shortcut for lower-case names gives what the full
// search gives, whatever the directory's names.
func TestNormalizerShortcut(t *testing.T) {
	full := func(users []cluster.User, domain string) func(string) (string, bool) {
		names := map[string]bool{}
		lower := map[string]string{}
		for _, u := range users {
			names[u.Name] = true
			l := strings.ToLower(u.Name)
			if prev, dup := lower[l]; dup && prev != u.Name {
				lower[l] = ""
			} else {
				lower[l] = u.Name
			}
		}
		suffix := "@" + strings.ToLower(domain)
		return func(s string) (string, bool) {
			if names[s] {
				return s, true
			}
			if i := strings.LastIndexByte(s, '@'); i > 0 && strings.EqualFold(s[i:], suffix) && names[s[:i]] {
				return s[:i], true
			}
			if !strings.Contains(s, "@") && names[s+suffix] {
				return s + suffix, true
			}
			l := strings.ToLower(s)
			if n := lower[l]; n != "" {
				return n, true
			}
			if i := strings.LastIndexByte(l, '@'); i > 0 && l[i:] == suffix {
				if n := lower[l[:i]]; n != "" {
					return n, true
				}
			}
			if !strings.Contains(l, "@") {
				if n := lower[l+suffix]; n != "" {
					return n, true
				}
			}
			return s, false
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	word := func() string {
		parts := []string{"al", "Al", "ice", "ICE", "bo", "b", "é", "É"}
		w := parts[r.IntN(len(parts))] + parts[r.IntN(len(parts))]
		switch r.IntN(4) {
		case 0:
			w += "@example.edu"
		case 1:
			w += "@Example.EDU"
		case 2:
			w += "@other.org"
		}
		return w
	}
	for round := 0; round < 200; round++ {
		var users []cluster.User
		lowerOnly := round%2 == 0
		for i := r.IntN(12); i >= 0; i-- {
			name := word()
			if lowerOnly {
				name = strings.ToLower(name)
			}
			users = append(users, cluster.User{Name: name})
		}
		got, want := Normalizer(users, "example.edu"), full(users, "example.edu")
		for i := 0; i < 200; i++ {
			s := word()
			if r.IntN(2) == 0 {
				s = strings.ToLower(s)
			}
			g, gk := got(s)
			w, wk := want(s)
			if g != w || gk != wk {
				t.Fatalf("directory %v: %q gives %q %v, the full search %q %v", users, s, g, gk, w, wk)
			}
		}
	}
}

func TestRotationOrder(t *testing.T) {
	dir := t.TempDir()
	names := []string{"dovecot.log", "dovecot.log.1", "dovecot.log.2.gz", "dovecot.log.10.gz", "other.log-20250301.gz", "other.log-20250215", "other.log"}
	for _, n := range names {
		tree(t, dir, map[string]string{n: ""})
	}
	streams, _, err := FindLogs([]string{filepath.Join(dir, "*")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range streams {
		var fs []string
		for _, f := range s.Files {
			fs = append(fs, filepath.Base(f.Name))
		}
		got = append(got, filepath.Base(s.Name)+": "+strings.Join(fs, " "))
	}
	want := []string{
		"dovecot.log: dovecot.log.10.gz dovecot.log.2.gz dovecot.log.1 dovecot.log",
		"other.log: other.log-20250215 other.log-20250301.gz other.log",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("streams:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := FindLogs([]string{filepath.Join(dir, "nothing*")}); err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Errorf("a glob matching nothing: err = %v", err)
	}
}

func TestSessionsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sessions.tsv")
	tree(t, dir, map[string]string{"sessions.tsv": "user\tstart\tend\n" +
		"alice\t2025-03-01T10:00:00Z\t2025-03-01T11:00:00Z\n" +
		"alice\t2025-03-01T10:30:00Z\t2025-03-01T12:00:00Z\n" +
		"# a comment\n" +
		"bob\t2025-03-01T10:00:00Z\n" +
		"carol\t2025-03-01T10:00:00Z\t2025-03-01T09:00:00Z\n" +
		"dave\tyesterday\t2025-03-01T09:00:00Z\n"})
	c := &cluster.Cluster{Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	res, err := Run(context.Background(), Options{Cluster: c, NoDisk: true, Sessions: []string{p},
		Entries: []directory.Entry{{User: "alice", Home: "/h/alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Users[0]
	if a.ConnectS != 7200 || a.Sessions != 2 || !a.LastLogin.Equal(time.Date(2025, 3, 1, 10, 30, 0, 0, time.UTC)) {
		t.Errorf("alice = %+v, want 7200 s in 2 sessions, last login 10:30", a)
	}
	if len(res.Problems) != 3 {
		t.Fatalf("problems = %v, want bob, carol and dave named", res.Problems)
	}
	for i, line := range []string{":5:", ":6:", ":7:"} {
		if !strings.Contains(res.Problems[i].Error(), "sessions.tsv"+line) {
			t.Errorf("problem %d = %v, want it to name sessions.tsv%s", i, res.Problems[i], line)
		}
	}
}

func TestUnreadableLogStopsTheSurvey(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"dovecot.log": "Sep 13 10:00:00 imap(a): Logged out\n"})
	if err := os.Chmod(filepath.Join(dir, "dovecot.log"), 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// root reads anything: make it a file that fails on read instead.
		if err := os.Remove(filepath.Join(dir, "dovecot.log")); err != nil {
			t.Fatal(err)
		}
		tree(t, dir, map[string]string{"dovecot.log.gz": "not gzip at all"})
	}
	c := &cluster.Cluster{Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	_, err := Run(context.Background(), Options{Cluster: c, NoDisk: true, Logs: []string{filepath.Join(dir, "dovecot.log*")},
		Entries: []directory.Entry{{User: "alice", Home: "/h/alice"}}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "dovecot.log")) {
		t.Fatalf("err = %v, want one naming the log", err)
	}
	var pe *os.PathError
	_ = errors.As(err, &pe)
}

func gzipFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Two hosts' logs, each rotated and partly compressed: sessions open in
// one file and end in the next, and a user's sessions on both hosts make
// one union.
func TestRotatedCompressedLogsOfTwoHosts(t *testing.T) {
	dir := t.TempDir()
	login := func(ts, user, sid string) string {
		return "Mar  1 " + ts + " imap-login: Info: Login: user=<" + user + ">, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, mpid=1, TLS, session=<" + sid + ">\n"
	}
	logout := func(ts, user, sid string) string {
		return "Mar  1 " + ts + " imap(" + user + ")<1><" + sid + ">: Info: Logged out in=1 out=2\n"
	}
	// host a: .2.gz (oldest) → .1 → live
	gzipFile(t, filepath.Join(dir, "a.log.2.gz"), login("08:00:00", "alice@example.edu", "a1"))
	tree(t, dir, map[string]string{
		"a.log.1": logout("09:00:00", "alice", "a1") + login("10:00:00", "bob", "a2"),
		"a.log":   logout("10:30:00", "bob", "a2"),
		// host b: alice again, overlapping her first session on a
		"b.log.1.gz": "", // replaced below
		"b.log":      logout("08:40:00", "alice", "b1"),
	})
	gzipFile(t, filepath.Join(dir, "b.log.1.gz"), login("08:30:00", "ALICE", "b1"))
	ref := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, n := range []string{"a.log.2.gz", "a.log.1", "a.log", "b.log.1.gz", "b.log"} {
		if err := os.Chtimes(filepath.Join(dir, n), ref, ref); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster.Cluster{Domain: "example.edu", Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	res, err := Run(context.Background(), Options{Cluster: c, NoDisk: true, Loc: time.UTC,
		Logs:    []string{filepath.Join(dir, "a.log*"), filepath.Join(dir, "b.log*")},
		Entries: []directory.Entry{{User: "alice", Home: "/h/alice"}, {User: "bob", Home: "/h/bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Streams != 2 || res.Log.Files != 5 {
		t.Errorf("%d streams, %d files read; want 2 and 5", res.Streams, res.Log.Files)
	}
	want := map[string][3]int64{"alice": {3600, 2, 0}, "bob": {1800, 1, 0}}
	for _, u := range res.Users {
		w := want[u.Name]
		if u.ConnectS != w[0] || u.Sessions != w[1] {
			t.Errorf("%s: connect_s %d sessions %d, want %d %d", u.Name, u.ConnectS, u.Sessions, w[0], w[1])
		}
	}
	if res.Users[0].LastLogin != time.Date(2025, 3, 1, 8, 30, 0, 0, time.UTC) {
		t.Errorf("alice's last login %v", res.Users[0].LastLogin)
	}
	if res.Pairing.Paired() != 3 || res.Pairing.Unmatched != 0 {
		t.Errorf("pairing %+v", res.Pairing)
	}
}

// Whether a log is gzip is told by its first bytes, not its name, and
// what is wrong with one is said once, with its name once.
func TestLogFormatByContent(t *testing.T) {
	const text = "Mar  1 10:00:00 imap-login: Info: Login: user=<alice>, method=PLAIN, mpid=1, session=<a1>\n" +
		"Mar  1 10:30:00 imap(alice)<1><a1>: Info: Logged out in=1 out=2\n"
	c := &cluster.Cluster{Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: t.TempDir()}}}
	entries := []directory.Entry{{User: "alice", Home: "/h/alice"}}
	survey := func(path string) (*Result, error) {
		ref := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(path, ref, ref); err != nil {
			t.Fatal(err)
		}
		return Run(context.Background(), Options{Cluster: c, NoDisk: true, Loc: time.UTC, Logs: []string{path}, Entries: entries})
	}
	dir := t.TempDir()

	// gzip data under a plain name is unpacked.
	gzipFile(t, filepath.Join(dir, "dovecot.log.1"), text)
	res, err := survey(filepath.Join(dir, "dovecot.log.1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Users[0].ConnectS != 1800 || res.Log.ByKind[dovelog.Malformed] != 0 {
		t.Errorf("gzip named dovecot.log.1: connect_s %d, %d malformed lines; want 1800 and none",
			res.Users[0].ConnectS, res.Log.ByKind[dovelog.Malformed])
	}

	// gzip cut short, a .gz that is plain text, and other compressors.
	var whole bytes.Buffer
	zw := gzip.NewWriter(&whole)
	zw.Write([]byte(strings.Repeat(text, 200)))
	zw.Close()
	for name, c := range map[string]struct {
		data []byte
		why  string
	}{
		"plain.log.gz":  {[]byte(text), "not gzip data"},
		"short.log.gz":  {whole.Bytes()[:whole.Len()/2], "gzip data cut short"},
		"head.log.gz":   {whole.Bytes()[:5], "gzip data cut short"},
		"short.log.1":   {whole.Bytes()[:whole.Len()-4], "gzip data cut short"},
		"dovecot.log.2": {append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz data"...), "xz data"},
		"dovecot.log.3": {append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"...), "zstd data"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := survey(p)
		if err == nil {
			t.Errorf("%s: no error, want %q", name, c.why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.why) || strings.Count(msg, p) != 1 || strings.Contains(msg, "unexpected EOF") {
			t.Errorf("%s: error %q, want %q naming the file once", name, msg, c.why)
		}
	}

	// A plain log that starts with "BZh" is still a log.
	p := filepath.Join(dir, "bz.log")
	if err := os.WriteFile(p, []byte("BZh is not a timestamp\n"+text), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := survey(p); err != nil || res.Users[0].ConnectS != 1800 {
		t.Errorf("a log starting with BZh: %v", err)
	}
}

func hasWarning(res *Result, parts ...string) bool {
	for _, w := range res.Warnings {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(w, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// A log path that reads nothing is said, naming it; a folder named as a
// log is an error; a window no line falls in is said.
func TestLogsThatReadNothing(t *testing.T) {
	const text = "Mar  1 10:00:00 imap-login: Info: Login: user=<alice>, method=PLAIN, mpid=1, session=<a1>\n" +
		"Mar  1 10:30:00 imap(alice)<1><a1>: Info: Logged out in=1 out=2\n"
	dir := t.TempDir()
	tree(t, dir, map[string]string{
		"logs/dovecot.log":       text,
		"logs/old/":              "",
		"only/sub1/":             "",
		"only/sub2/":             "",
		"empty/dovecot.log":      "",
		"empty/dovecot.log.1.gz": "",
		"noise/dovecot.log":      "Mar  1 10:00:00 auth: Info: passwd-file(x,1.2.3.4): unknown user\n",
	})
	gzipFile(t, filepath.Join(dir, "empty/dovecot.log.2.gz"), "")
	ref := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{"logs/dovecot.log", "noise/dovecot.log"} {
		if err := os.Chtimes(filepath.Join(dir, p), ref, ref); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster.Cluster{Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	run := func(opt Options) (*Result, error) {
		opt.Cluster, opt.NoDisk, opt.Loc = c, true, time.UTC
		opt.Entries = []directory.Entry{{User: "alice", Home: "/h/alice"}}
		return Run(context.Background(), opt)
	}
	j := func(p string) string { return filepath.Join(dir, p) }

	// A glob that matches a folder beside the log: the folder is named.
	res, err := run(Options{Logs: []string{j("logs/*")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users[0].ConnectS != 1800 || !hasWarning(res, j("logs/old"), "not read") || len(res.Warnings) != 1 {
		t.Errorf("logs/*: connect_s %d, warnings %q", res.Users[0].ConnectS, res.Warnings)
	}

	// A glob that matches only folders.
	res, err = run(Options{Logs: []string{j("only/*")}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(res, j("only/*"), "only folders", j("only/sub1")) || !hasWarning(res, "no log line was read", "connect time is 0 for everyone") {
		t.Errorf("only/*: warnings %q", res.Warnings)
	}

	// A folder named as a log, not by a pattern, is an error naming it.
	for _, p := range []string{j("logs"), j("logs/old")} {
		if _, err := run(Options{Logs: []string{p}}); err == nil || !strings.Contains(err.Error(), p+" is a folder") {
			t.Errorf("--log %s: err = %v, want one saying it is a folder", p, err)
		}
	}

	// Empty files, plain and .gz, read nothing and say so.
	res, err = run(Options{Logs: []string{j("empty/dovecot.log*")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"empty/dovecot.log", "empty/dovecot.log.1.gz", "empty/dovecot.log.2.gz"} {
		if !hasWarning(res, "log file "+j(f)+" is empty") {
			t.Errorf("no warning for the empty %s: %q", f, res.Warnings)
		}
	}
	if !hasWarning(res, "no log line was read", "connect time is 0 for everyone") || res.Log.Files != 3 {
		t.Errorf("empty logs: %d files read, warnings %q", res.Log.Files, res.Warnings)
	}

	// Lines, but no login.
	res, err = run(Options{Logs: []string{j("noise/dovecot.log")}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(res, "no IMAP or POP3 login", "connect time is 0 for everyone") {
		t.Errorf("a log without logins: warnings %q", res.Warnings)
	}

	// Windows: after the log, before it, around a session but no line,
	// and one that holds lines.
	day := func(h, m int) time.Time { return time.Date(2025, 3, 1, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		since, until time.Time
		want         []string // nil: no warning
		connect      int64
	}{
		{since: day(12, 0), want: []string{"no log line falls in the window from 2025-03-01T12:00:00Z on", "the logs run from 2025-03-01T10:00:00Z to 2025-03-01T10:30:00Z", "connect time is 0 for everyone"}},
		{until: day(9, 0), want: []string{"no log line falls in the window up to 2025-03-01T09:00:00Z", "connect time is 0 for everyone"}},
		{since: day(10, 10), until: day(10, 20), want: []string{"2025-03-01T10:10:00Z – 2025-03-01T10:20:00Z", "only sessions that span it count"}, connect: 600},
		{since: day(10, 20), until: day(11, 0), connect: 600},
	} {
		res, err := run(Options{Logs: []string{j("logs/dovecot.log")}, Since: tc.since, Until: tc.until})
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil && len(res.Warnings) > 0 || tc.want != nil && !hasWarning(res, tc.want...) || res.Users[0].ConnectS != tc.connect {
			t.Errorf("window %v – %v: connect_s %d, warnings %q; want %d and %q", tc.since, tc.until, res.Users[0].ConnectS, res.Warnings, tc.connect, tc.want)
		}
	}
}

// The log names the directory lacks are kept, the most sessions first.
func TestLogUserNames(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i, u := range []string{"alice", "zed@other.org", "bob@other.org", "zed@other.org", "amy@other.org", "zed@other.org", "bob@other.org"} {
		ts := fmt.Sprintf("Mar  1 10:%02d:00 ", i)
		fmt.Fprintf(&b, "%simap-login: Info: Login: user=<%s>, method=PLAIN, mpid=%d, session=<s%d>\n", ts, u, i+1, i)
		fmt.Fprintf(&b, "%simap(%s)<%d><s%d>: Info: Logged out in=1 out=2\n", ts, u, i+1, i)
	}
	tree(t, dir, map[string]string{"dovecot.log": b.String()})
	c := &cluster.Cluster{Domain: "example.edu", Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	for keep, want := range map[int]string{0: "", 2: "zed@other.org:3 bob@other.org:2", 50: "zed@other.org:3 bob@other.org:2 amy@other.org:1"} {
		res, err := Run(context.Background(), Options{Cluster: c, NoDisk: true, Loc: time.UTC, KeepLogUsers: keep,
			Logs: []string{filepath.Join(dir, "dovecot.log")}, Entries: []directory.Entry{{User: "alice", Home: "/h/alice"}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range res.LogUserNames {
			got = append(got, fmt.Sprintf("%s:%d", u.Name, u.Sessions))
		}
		if strings.Join(got, " ") != want || res.LogUsers != 3 {
			t.Errorf("keep %d: %d names, %q; want 3, %q", keep, res.LogUsers, got, want)
		}
	}
}

func TestLogUserHeapKeepsTheFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		n, keep := r.IntN(300), 1+r.IntN(60)
		var all []LogUser
		var h logUserHeap
		for i := 0; i < n; i++ {
			u := LogUser{Name: fmt.Sprintf("u%d", r.IntN(1000)), Sessions: int64(r.IntN(8))}
			all = append(all, u)
			h.offer(u, keep)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].before(all[j]) })
		want := all[:min(keep, len(all))]
		if got := h.sorted(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("keep %d of %d:\n got %v\nwant %v", keep, n, got, want)
		}
	}
}

// A large plain log is mapped into memory and cut into blocks where it
// lies: the survey says the same as when it is read.
func TestMappedLogsReadTheSame(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		ts := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.Stamp)
		u := fmt.Sprintf("u%d", i%500)
		fmt.Fprintf(&b, "%s imap-login: Info: Login: user=<%s>, method=PLAIN, mpid=%d, session=<s%d>\n", ts, u, i+1, i)
		fmt.Fprintf(&b, "%s imap(%s)<%d><s%d>: Info: Logged out in=1 out=2\n", ts, u, i+1, i)
		if i%7 == 0 {
			b.WriteString("no timestamp here\n")
		}
	}
	b.WriteString("Mar  1 23:00:00 imap(u1): Logged out") // no newline at the end
	p := filepath.Join(dir, "dovecot.log")
	tree(t, dir, map[string]string{"dovecot.log": b.String()})
	ref := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	os.Chtimes(p, ref, ref)
	c := &cluster.Cluster{Hosts: []*cluster.Host{{Name: "h", Root: "/h", FSRoot: dir}}}
	var entries []directory.Entry
	for i := 0; i < 500; i++ {
		entries = append(entries, directory.Entry{User: fmt.Sprintf("u%d", i), Home: fmt.Sprintf("/h/u%d", i)})
	}
	survey := func(mapFrom int64) (*Result, *Progress) {
		old := mapAtLeast
		mapAtLeast = mapFrom
		defer func() { mapAtLeast = old }()
		prog := &Progress{}
		res, err := Run(context.Background(), Options{Cluster: c, NoDisk: true, Loc: time.UTC, Logs: []string{p}, Entries: entries, Progress: prog})
		if err != nil {
			t.Fatal(err)
		}
		return res, prog
	}
	read, _ := survey(1 << 62)
	mapped, prog := survey(1)
	if fmt.Sprint(read.Users) != fmt.Sprint(mapped.Users) || read.Pairing != mapped.Pairing || read.Log.Lines != mapped.Log.Lines ||
		read.Log.ByKind != mapped.Log.ByKind || fmt.Sprint(read.Log.Malformed) != fmt.Sprint(mapped.Log.Malformed) {
		t.Errorf("mapped:\n%+v\n%+v\nread:\n%+v\n%+v", mapped.Pairing, mapped.Log, read.Pairing, read.Log)
	}
	if read.Pairing.Paired() == 0 || read.Log.ByKind[dovelog.Malformed] == 0 {
		t.Errorf("the log paired nothing or had no malformed line: %+v %+v", read.Pairing, read.Log.ByKind)
	}
	if got := prog.LogRead.Load(); got != int64(b.Len()) {
		t.Errorf("progress says %d bytes read, the file has %d", got, b.Len())
	}
}

// A mapped log that shrinks while it is read (a copytruncate rotation)
// stops the scan with an error naming it, whether it shrank before the
// scan or in the middle of it; nothing crashes.
func TestMappedLogThatShrinks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dovecot.log")
	var b strings.Builder
	for i := 0; b.Len() < 2<<20; i++ {
		// mpid comes back every 100 logins: the pairer closes sessions
		fmt.Fprintf(&b, "Mar  1 10:%02d:%02d imap-login: Info: Login: user=<user%d@example.edu>, method=PLAIN, mpid=%d, session=<s%d>\n", i/60%60, i%60, i, i%100+1, i)
	}
	for _, tc := range []struct {
		when, block int
		paired      bool // shrink when the pairer closes a session, not when a name is normalised
	}{
		{0, 8192, false},       // before the scan: cutting the first block faults
		{1000, 8192, false},    // while blocks are cut, parsed and paired
		{1000, 8 << 20, false}, // in one block, while it is parsed
		{1000, 8 << 20, true},  // in one block, parsed already: the pairer copying a new name faults
	} {
		when := tc.when
		tree(t, dir, map[string]string{"dovecot.log": b.String()})
		old := mapAtLeast
		mapAtLeast = 1
		var read atomic.Int64
		rc, err := opener(p, &read)()
		mapAtLeast = old
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rc.(dovelog.Mapped); !ok {
			t.Fatalf("%T is not mapped", rc)
		}
		shrink := func() {
			if err := os.Truncate(p, 0); err != nil {
				t.Error(err)
			}
		}
		if when == 0 {
			shrink()
		}
		var names atomic.Int64 // Normalize is called by the parsers too, at once
		sessions := 0
		pr := dovelog.NewPairer(dovelog.PairOptions{Normalize: func(s string) (string, bool) {
			if names.Add(1) == int64(when) && !tc.paired {
				shrink()
			}
			return s, false // the pairer copies the name from the file
		}, OnSession: func(dovelog.Session) {
			if sessions++; sessions == when && tc.paired {
				shrink()
			}
		}})
		f := dovelog.File{Name: p, Open: func() (io.ReadCloser, error) { return rc, nil }}
		_, err = dovelog.Scan(context.Background(), []dovelog.Stream{{Name: p, Files: []dovelog.File{f}}}, pr,
			dovelog.ScanOptions{Workers: 2, BlockSize: tc.block, Loc: time.UTC})
		if err == nil || !strings.Contains(err.Error(), p+": the file shrank while it was read") {
			t.Errorf("shrunk after %d names or sessions (%v), blocks of %d: err = %v, want one saying %s shrank", when, tc.paired, tc.block, err, p)
		}
	}
}
