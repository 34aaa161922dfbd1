package e2e

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
	"github.com/maildist/maildist/internal/mailtest"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
	"github.com/maildist/maildist/internal/wire"
)

// The end-to-end tests with real servers (mail_*_test.go) run a sandbox
// cluster as a site does: one Dovecot serves every host's homes, Postfix
// accepts mail over SMTP and delivers it over LMTP, and maildist manages
// the passwd-file Dovecot reads. For Dovecot to find a home, the home in
// the passwd-file must be a real path here, so the hosts of these sites
// have their roots where the sandbox put them (DIR/cluster/<h>/<h>) and
// fsroot "/": all hosts share this machine's file system, so stubs are
// off (stub = "none"); mail still queued is held in Postfix's queue
// instead, or deferred by Dovecot and retried by Postfix.

const mailDomain = "example.test"

// siteOptions say what a mail site is like.
type siteOptions struct {
	users int
	hosts []sandbox.HostSpec
	// rootMode is the mode of every host root: 0711 keeps users from
	// recreating a home; 0777 is the misconfiguration.
	rootMode os.FileMode
	// sql, if set, keeps the directory in an SQL table of that driver
	// (sqlite or postgres), which Dovecot's passdb and userdb read too.
	sql string
}

// mailSite is a sandbox cluster served by a real Dovecot and Postfix.
type mailSite struct {
	t      *testing.T
	dir    string
	c      *sandbox.Cluster
	config string
	passwd string
	roots  map[string]string // host → real root
	dc     *mailtest.Dovecot
	pf     *mailtest.Postfix
	users  []sandbox.User // with homes
	pass   map[string]string
	sess   *sessionLog
	sql    string // driver, when the directory is an SQL table
	dsn    string
}

func newMailSite(t *testing.T, opt siteOptions) *mailSite {
	t.Helper()
	mailtest.Require(t)
	dir := t.TempDir()
	if err := mailtest.OpenPath(dir); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := sandbox.Build(context.Background(), sandbox.Options{Dir: filepath.Join(dir, "cluster"), Users: opt.users,
		MissingHomes: -1, Hosts: opt.hosts, Seed: 17, Domain: mailDomain, LogDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := &mailSite{t: t, dir: dir, c: c, config: filepath.Join(dir, "maildist.toml"), passwd: filepath.Join(dir, "passwd"),
		roots: map[string]string{}, pass: map[string]string{}, sess: &sessionLog{spans: map[string][][2]time.Time{}}}
	for _, h := range opt.hosts {
		root := c.RealPath(sandbox.HostRoot(h.Name))
		if root == "" {
			root = filepath.Join(c.FSRoot(h.Name), h.Name)
		}
		if err := os.MkdirAll(root, 0o711); err != nil {
			t.Fatal(err)
		}
		if opt.rootMode != 0 {
			os.Chmod(root, opt.rootMode)
		}
		s.roots[h.Name] = root
	}
	// The passwd-file Dovecot reads, with real homes.
	var pw strings.Builder
	for _, u := range c.Users {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s::\n", u.Name, u.Password, u.UID, u.GID, c.RealPath(u.Home))
		s.pass[u.Name] = u.Password
		if u.Status == "ok" {
			s.users = append(s.users, u)
		}
	}
	if err := os.WriteFile(s.passwd, []byte(pw.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	dopt := mailtest.DovecotOptions{Dir: filepath.Join(dir, "dovecot"), Passwd: s.passwd, Domain: mailDomain}
	if opt.sql != "" {
		s.toSQL(opt.sql, &dopt)
	}
	s.dc = mailtest.StartDovecot(t, dopt)
	s.pf = mailtest.StartPostfix(t, mailtest.PostfixOptions{Dir: filepath.Join(dir, "postfix"), Domain: mailDomain, LMTP: s.dc.LMTP})
	t.Logf("site of %d users on %d hosts, Dovecot and Postfix up in %v", len(s.users), len(opt.hosts), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log (end):\n%s", lastLines(s.dc.LogText(), 40))
			t.Logf("postfix log (end):\n%s", lastLines(s.pf.LogText(), 40))
		}
	})
	return s
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// siteConfig says how maildist is set up on the site.
type siteConfig struct {
	hold      string // postfix | rename
	marker    bool
	drain     string // a host being emptied
	settle    string
	surveyLog string // default Dovecot's log
}

// writeConfig writes the site's maildist.toml.
func (s *mailSite) writeConfig(sc siteConfig) {
	s.t.Helper()
	q := func(xs ...string) string {
		var b []string
		for _, x := range xs {
			b = append(b, fmt.Sprintf("%q", x))
		}
		return "[" + strings.Join(b, ", ") + "]"
	}
	if sc.settle == "" {
		sc.settle = "20s"
	}
	if sc.surveyLog == "" {
		sc.surveyLog = s.dc.Log
	}
	var b strings.Builder
	fmt.Fprintf(&b, `domain = %q
state_dir = "state"
home_layout = "{root}/{user}"

%s
[activity]
source = "doveadm"
doveadm = %s

[delivery]
hold = %q
stub = "none"
postfix_config_dir = %q
transport_map = %q
queue = %s
flush = %s
settle = %q
margin = 0

[survey]
logs = [%q]
`, mailDomain, s.directoryTOML(sc.marker), q(s.dc.Doveadm()...), sc.hold, s.pf.ConfigDir, "hash:"+s.pf.TransportMap,
		q(s.pf.Argv("postqueue", "-j")...), q(s.pf.Argv("postqueue", "-f")...), sc.settle, sc.surveyLog)
	for _, h := range s.c.Hosts {
		fmt.Fprintf(&b, "\n[[host]]\nname = %q\npool = \"bp\"\nroot = %q\nfsroot = \"/\"\ndrain = %t\n", h.Name, s.roots[h.Name], h.Name == sc.drain)
	}
	if err := os.WriteFile(s.config, []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if _, err := config.Load(s.config); err != nil {
		s.t.Fatalf("the site's config: %v", err)
	}
}

// directoryTOML is the config's [directory] table.
func (s *mailSite) directoryTOML(marker bool) string {
	if s.sql != "" {
		return sqltest.DirectoryTOML(s.sql, s.dsn)
	}
	return fmt.Sprintf("[directory]\ntype = \"passwd\"\npath = %q\nhold_marker = %t\n", s.passwd, marker)
}

// toSQL moves the site's users into a table of the default schema, and
// has Dovecot read them from there.
func (s *mailSite) toSQL(driver string, dopt *mailtest.DovecotOptions) {
	s.t.Helper()
	module := map[string]string{"sqlite": "sqlite", "postgres": "pgsql"}[driver]
	if m, _ := filepath.Glob("/usr/lib/dovecot/modules/*driver_" + module + "*"); len(m) == 0 {
		if os.Getenv(mailtest.RequiredEnv) != "" {
			s.t.Fatalf("Dovecot has no %s driver (apt-get install dovecot-%s)", module, module)
		}
		s.t.Skipf("Dovecot has no %s driver (apt-get install dovecot-%s)", module, module)
	}
	var es []directory.Entry
	for _, u := range s.c.Users {
		es = append(es, directory.Entry{User: u.Name, Home: s.c.RealPath(u.Home), UID: u.UID, GID: u.GID})
		s.pass[u.Name] = "password" // sqltest's Dovecot queries give every user this one
	}
	s.sql, s.dsn = driver, sqltest.Database(s.t, driver)
	sqltest.Fill(s.t, driver, s.dsn, es, func(home string) string {
		for name, root := range s.roots {
			if strings.HasPrefix(home, root+"/") {
				return name
			}
		}
		return ""
	})
	if driver == "sqlite" {
		// Dovecot's auth processes do not run as root.
		db := strings.TrimPrefix(strings.SplitN(s.dsn, "?", 2)[0], "file:")
		if err := mailtest.OpenPath(filepath.Dir(db)); err != nil {
			s.t.Fatal(err)
		}
		os.Chmod(db, 0o644)
	}
	conf, err := sqltest.DovecotSQL(driver, s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	dopt.Passwd, dopt.SQL = "", conf
}

// home is where the directory says user lives now.
func (s *mailSite) home(user string) string {
	s.t.Helper()
	if s.sql != "" {
		cfg, err := config.Load(s.config)
		if err != nil {
			s.t.Fatal(err)
		}
		d, err := wire.Directory(cfg)
		if err != nil {
			s.t.Fatal(err)
		}
		defer d.Close()
		e, err := d.Lookup(context.Background(), user)
		if err != nil {
			s.t.Fatal(err)
		}
		return e.Home
	}
	b, err := os.ReadFile(s.passwd)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 6 && f[0] == user {
			return f[5]
		}
	}
	s.t.Fatalf("%s is not in %s", user, s.passwd)
	return ""
}

// hostOf is the host whose root holds user's home now.
func (s *mailSite) hostOf(user string) string {
	h := s.home(user)
	for name, root := range s.roots {
		if strings.HasPrefix(h, root+"/") {
			return name
		}
	}
	s.t.Fatalf("%s's home %s is under no root", user, h)
	return ""
}

// otherHost is a host user is not on.
func (s *mailSite) otherHost(user string) string {
	cur := s.hostOf(user)
	for _, h := range s.c.Hosts {
		if h.Name != cur && !h.Drain {
			return h.Name
		}
	}
	return ""
}

func (s *mailSite) names() []string {
	var out []string
	for _, u := range s.users {
		out = append(out, u.Name)
	}
	return out
}

// sessionLog keeps the span of every session the test opens, by user:
// what `maildist survey` must find in Dovecot's log.
type sessionLog struct {
	mu    sync.Mutex
	spans map[string][][2]time.Time
}

func (l *sessionLog) add(user string, from, to time.Time) {
	l.mu.Lock()
	l.spans[user] = append(l.spans[user], [2]time.Time{from, to})
	l.mu.Unlock()
}

// union is the length of the union of user's spans, and their number.
func (l *sessionLog) union(user string) (time.Duration, int) {
	l.mu.Lock()
	spans := slices.Clone(l.spans[user])
	l.mu.Unlock()
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, sp := range spans {
		switch {
		case i == 0:
			cur = sp
		case sp[0].After(cur[1]):
			total += cur[1].Sub(cur[0])
			cur = sp
		case sp[1].After(cur[1]):
			cur[1] = sp[1]
		}
	}
	if len(spans) > 0 {
		total += cur[1].Sub(cur[0])
	}
	return total, len(spans)
}

// imapSession is an IMAP login the test keeps track of.
type imapSession struct {
	*client.Client
	s     *mailSite
	user  string
	start time.Time
}

// login opens an IMAP session as user; a refused login is an error.
func (s *mailSite) login(user string) (*imapSession, error) {
	start := time.Now()
	c, err := mailtest.LoginIMAP(s.dc.IMAP, user, s.pass[user])
	if err != nil {
		return nil, err
	}
	return &imapSession{Client: c, s: s, user: user, start: start}, nil
}

func (s *mailSite) mustLogin(user string) *imapSession {
	s.t.Helper()
	c, err := s.login(user)
	if err != nil {
		s.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// logout ends the session and records its span.
func (c *imapSession) logout() {
	c.Client.Logout()
	c.s.sess.add(c.user, c.start, time.Now())
}

// ended records the span of a session the server ended, as the client
// saw it end.
func (c *imapSession) ended(at time.Time) { c.s.sess.add(c.user, c.start, at) }

// view is everything a client sees of one user: the IMAP snapshot and the
// POP3 UIDLs of the INBOX.
type view struct {
	snap  *mailtest.Snapshot
	uidls []string
}

func (s *mailSite) view(user string) view {
	s.t.Helper()
	c := s.mustLogin(user)
	snap, err := mailtest.Take(c.Client)
	c.logout()
	if err != nil {
		s.t.Fatalf("snapshot of %s: %v", user, err)
	}
	start := time.Now()
	uidls, err := mailtest.POP3UIDLs(s.dc.POP3, user, s.pass[user])
	s.sess.add(user, start, time.Now())
	if err != nil {
		s.t.Fatalf("pop3 of %s: %v", user, err)
	}
	return view{snap: snap, uidls: uidls}
}

func (s *mailSite) views(users []string) map[string]view {
	out := map[string]view{}
	for _, u := range users {
		out[u] = s.view(u)
	}
	return out
}

// maildist runs the binary on the site's config.
func (s *mailSite) maildist(codes []int, args ...string) result {
	s.t.Helper()
	return must(s.t, s.config, codes, args...)
}

// start runs maildist in the background.
func (s *mailSite) start(args ...string) (*exec.Cmd, *strings.Builder) {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAILDIST_CONFIG="+s.config)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd, &out
}

// heldNow lists what the hold map holds.
func (s *mailSite) heldNow() []string {
	s.t.Helper()
	h, err := (&delivery.Postfix{ConfigDir: s.pf.ConfigDir, TransportMap: s.pf.TransportMap}).Held()
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

// drained waits until Postfix's queue is empty and the hold map holds
// no one.
func (s *mailSite) drained(within time.Duration) {
	s.t.Helper()
	left, err := s.pf.WaitEmpty(context.Background(), within)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(left) > 0 {
		s.t.Errorf("%d message(s) left in Postfix's queue, e.g. %+v", len(left), left[0])
	}
	if h := s.heldNow(); len(h) > 0 {
		s.t.Errorf("the hold map still holds %q", h)
	}
}

// enronMessages are the first n messages of the Enron corpus under 64 KB,
// read once per test binary. Their contents are never printed.
func enronMessages(t *testing.T, n int) [][]byte {
	t.Helper()
	enronOnce.Do(func() {
		path, err := sandbox.FindCorpus()
		if err != nil {
			enronErr = err
			return
		}
		f, err := os.Open(path)
		if err != nil {
			enronErr = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			enronErr = err
			return
		}
		tr := tar.NewReader(zr)
		for len(enronMsgs) < 2000 {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				enronErr = err
				return
			}
			if h.Typeflag != tar.TypeReg || h.Size > 64<<10 || !strings.Contains(h.Name, "/inbox/") {
				continue
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				enronErr = err
				return
			}
			enronMsgs = append(enronMsgs, b)
		}
	})
	if enronErr != nil {
		t.Fatalf("the Enron corpus is needed: %v", enronErr)
	}
	if n > len(enronMsgs) {
		t.Fatalf("want %d Enron messages, have %d", n, len(enronMsgs))
	}
	return enronMsgs[:n]
}

var (
	enronOnce sync.Once
	enronMsgs [][]byte
	enronErr  error
)

// deliverEnron sends n Enron messages over SMTP, each to two of users in
// turn, so each user gets about 2n/len(users), and waits until Postfix
// has delivered them all.
func (s *mailSite) deliverEnron(users []string, n int) {
	s.t.Helper()
	start := time.Now()
	snd, err := mailtest.Dial(s.pf.SMTP)
	if err != nil {
		s.t.Fatal(err)
	}
	for i, m := range enronMessages(s.t, n) {
		to := []string{users[i%len(users)] + "@" + mailDomain, users[(i+1)%len(users)] + "@" + mailDomain}
		if err := snd.Send("enron@example.org", to, m); err != nil {
			s.t.Fatalf("send Enron message %d: %v", i, err)
		}
	}
	snd.Close()
	left, err := s.pf.WaitEmpty(context.Background(), 2*time.Minute)
	if err != nil || len(left) > 0 {
		s.t.Fatalf("Enron mail not delivered: %d left, %v", len(left), err)
	}
	s.t.Logf("delivered %d Enron messages (%d deliveries) over SMTP and LMTP in %v", n, 2*n, time.Since(start).Round(time.Millisecond))
}

// script is what a user's IMAP client does before the moves: folders,
// subscriptions, copies, flags and keywords, expunges. It differs from
// user to user by k.
func (s *mailSite) script(user string, k int) {
	s.t.Helper()
	c := s.mustLogin(user)
	defer c.logout()
	fail := func(what string, err error) {
		if err != nil {
			s.t.Fatalf("%s: %s: %v", user, what, err)
		}
	}
	for _, f := range []string{"Projects", "Projects.2001", "Receipts"} {
		fail("CREATE "+f, c.Create(f))
	}
	fail("SUBSCRIBE", c.Subscribe("Projects"))
	fail("SUBSCRIBE", c.Subscribe("Projects.2001"))
	st, err := c.Select("INBOX", false)
	fail("SELECT", err)
	if st.Messages < 60 {
		s.t.Fatalf("%s has only %d messages in INBOX", user, st.Messages)
	}
	set := func(from, to uint32) *imap.SeqSet { ss := new(imap.SeqSet); ss.AddRange(from, to); return ss }
	fail("COPY", c.Copy(set(1, 20), "Projects"))
	fail("COPY", c.Copy(set(21, 30), "Projects.2001"))
	fail("COPY", c.Copy(set(31, 35), "Receipts"))
	store := func(seqs *imap.SeqSet, flags ...string) {
		fail("STORE", c.Store(seqs, imap.FormatFlagsOp(imap.AddFlags, true), mailtest.Flags(flags...), nil))
	}
	every := func(n, from uint32) *imap.SeqSet {
		ss := new(imap.SeqSet)
		for i := from; i <= st.Messages; i += n {
			ss.AddNum(i)
		}
		return ss
	}
	store(set(1, 40+uint32(k)), imap.SeenFlag)
	store(every(7, 1+uint32(k)), imap.FlaggedFlag)
	store(every(5, 2), "$Forwarded")
	store(every(9, 3), "Maildist_Project", "$Label"+fmt.Sprint(k%5+1))
	store(every(11, 4+uint32(k)), imap.DeletedFlag)
	fail("EXPUNGE", c.Expunge(nil))
	_, err = c.Select("Projects", false)
	fail("SELECT Projects", err)
	store(set(1, 20), imap.SeenFlag)
	store(set(3, 4), imap.DeletedFlag)
	fail("EXPUNGE", c.Expunge(nil))
}

// sent is one message the sender sent while moves ran.
type sent struct {
	id     string
	user   string
	at     time.Time // Postfix said 250 after DATA
	moving bool      // the user was being moved then
}

// sender keeps sending small messages to users while moves run.
type sender struct {
	mu     sync.Mutex
	moving map[string]bool
	sent   []sent
	stop   chan struct{}
	done   chan error
}

// startSender sends a message every `every` to the next of users.
func (s *mailSite) startSender(users []string, every time.Duration) *sender {
	sd := &sender{moving: map[string]bool{}, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		snd, err := mailtest.Dial(s.pf.SMTP)
		if err != nil {
			sd.done <- err
			return
		}
		defer snd.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-sd.stop:
				sd.done <- nil
				return
			case <-tick.C:
			}
			u := users[i%len(users)]
			id := fmt.Sprintf("during-%05d-%s", i, u)
			sd.mu.Lock()
			moving := sd.moving[u]
			sd.mu.Unlock()
			if err := snd.Send("sender@example.org", []string{u + "@" + mailDomain}, mailtest.NewMessage(id, u+"@"+mailDomain)); err != nil {
				sd.done <- fmt.Errorf("send %s: %w", id, err)
				return
			}
			sd.mu.Lock()
			sd.sent = append(sd.sent, sent{id: id, user: u, at: time.Now(), moving: moving || sd.moving[u]})
			sd.mu.Unlock()
		}
	}()
	return sd
}

// setMoving marks users as being moved (or not) from now on.
func (sd *sender) setMoving(on bool, users ...string) {
	sd.mu.Lock()
	for _, u := range users {
		sd.moving[u] = on
	}
	sd.mu.Unlock()
}

func (sd *sender) finish(t *testing.T) []sent {
	t.Helper()
	close(sd.stop)
	if err := <-sd.done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	return sd.sent
}

var savedLine = regexp.MustCompile(`^(\w{3} +\d+ \d\d:\d\d:\d\d) lmtp\(([^)]+)\)<[^>]*><[^>]*>: Info: msgid=<([^@>]+)@mailtest>: saved mail to (.+)$`)

// checkSent checks that every message sent during the moves is in its
// user's INBOX exactly once and nowhere else, and that no message to a
// user who was not being moved waited in a queue more than a few
// seconds (Dovecot's log says when it was saved).
func (s *mailSite) checkSent(all []sent, after map[string]view) {
	s.t.Helper()
	where := map[string][]string{}
	for user, v := range after {
		for id, folders := range v.snap.IDs() {
			for _, f := range folders {
				where[id] = append(where[id], user+"/"+f)
			}
		}
	}
	for _, m := range all {
		if got := where[m.id]; len(got) != 1 || got[0] != m.user+"/INBOX" {
			s.t.Errorf("%s (to %s at %s) is in %q, want once in %s/INBOX", m.id, m.user, m.at.Format("15:04:05.000"), got, m.user)
		}
	}
	saved := map[string]time.Time{}
	year := time.Now().Year()
	for _, l := range strings.Split(s.dc.LogText(), "\n") {
		mm := savedLine.FindStringSubmatch(l)
		if mm == nil {
			continue
		}
		at, err := time.ParseInLocation("Jan _2 15:04:05", strings.Join(strings.Fields(mm[1]), " "), time.Local)
		if err != nil {
			continue
		}
		saved[mm[3]] = at.AddDate(year, 0, 0)
	}
	var worst time.Duration
	var worstID string
	for _, m := range all {
		if m.moving {
			continue
		}
		at, ok := saved[m.id]
		if !ok {
			s.t.Errorf("no LMTP delivery of %s in Dovecot's log", m.id)
			continue
		}
		// The log has whole seconds: the delivery was before at+1s.
		d := at.Add(time.Second).Sub(m.at)
		if d > worst {
			worst, worstID = d, m.id
		}
	}
	const bound = 5 * time.Second
	if worst > bound {
		s.t.Errorf("%s, to a user not being moved, waited up to %v (bound %v)", worstID, worst, bound)
	}
	s.t.Logf("%d messages sent during the moves, each delivered once; mail to users not being moved waited at most %v", len(all), worst.Round(time.Millisecond))
}

// checkViews compares what clients see after the moves with what they saw
// before: identical, but for the messages sent meanwhile.
func (s *mailSite) checkViews(before, after map[string]view, all []sent) {
	s.t.Helper()
	expected := map[string]string{}
	for _, m := range all {
		expected[m.id] = m.user
	}
	for user, b := range before {
		a := after[user]
		isNew := func(folder string, m mailtest.Message) bool { return folder == "INBOX" && expected[m.ID] == user }
		for _, d := range mailtest.Compare(b.snap, a.snap, isNew) {
			s.t.Errorf("%s: %s", user, d)
		}
		if len(a.uidls) < len(b.uidls) || !slices.Equal(a.uidls[:len(b.uidls)], b.uidls) {
			s.t.Errorf("%s: POP3 UIDLs changed: %d before, %d after", user, len(b.uidls), len(a.uidls))
		}
	}
}

// checkSurvey runs `maildist survey` on Dovecot's log and checks that it
// gives every user the connect time the test measured, within a second
// a session.
func (s *mailSite) checkSurvey() {
	s.t.Helper()
	rd := filepath.Join(s.t.TempDir(), "survey")
	s.maildist(nil, "survey", rd, "--no-disk")
	rows, err := runstate.ReadRaw(filepath.Join(rd, runstate.RawFile))
	if err != nil {
		s.t.Fatal(err)
	}
	checked := 0
	for _, r := range rows {
		want, n := s.sess.union(r.Name)
		got := time.Duration(r.ConnectS) * time.Second
		diff := got - want
		if diff < 0 {
			diff = -diff
		}
		if diff > time.Duration(n)*time.Second+time.Second/2 || r.Sessions != int64(n) {
			s.t.Errorf("survey: %s connected %v in %d sessions; the test measured %v in %d", r.Name, got, r.Sessions, want.Round(time.Millisecond), n)
		}
		if n > 0 {
			checked++
		}
	}
	s.t.Logf("survey: connect time of %d users as measured (within a second a session)", checked)
}
