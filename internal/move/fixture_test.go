package move

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/directory/passwd"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/tree"
)

// fixture is a small cluster in a temp folder: hosts h1, h2, h3, each with
// its own fsroot dir/cluster/hN, root /hN, homes /hN/USER, a Dovecot-style
// passwd file and Maildirs.
type fixture struct {
	dir     string
	cluster *cluster.Cluster
	passwd  string
	uids    map[string]int
	// active is what the fake activity source reports, by user.
	mu     sync.Mutex
	active map[string]bool
	events []runstate.Event
}

var isRoot = os.Geteuid() == 0

// openFixture describes the fixture laid out in dir, without changing it.
func openFixture(dir string) *fixture {
	f := &fixture{dir: dir, uids: map[string]int{}, active: map[string]bool{}}
	f.cluster = &cluster.Cluster{Domain: "example.edu", HomeLayout: "{root}/{user}"}
	for _, n := range []string{"h1", "h2", "h3"} {
		fsroot := filepath.Join(dir, "cluster", n)
		f.cluster.Hosts = append(f.cluster.Hosts, &cluster.Host{Name: n, Pool: "p", Root: "/" + n, FSRoot: fsroot, Weight: 1, AcceptNew: true})
	}
	f.passwd = filepath.Join(dir, "passwd")
	if d, err := passwd.Open(f.passwd, passwd.Options{}); err == nil {
		es, _ := d.List(context.Background())
		for _, e := range es {
			f.uids[e.User] = e.UID
		}
	}
	return f
}

func newFixture(t testing.TB, placement map[string]string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := openFixture(dir)
	for _, h := range f.cluster.Hosts {
		root := filepath.Join(h.FSRoot, h.Root)
		if err := os.MkdirAll(root, 0o711); err != nil {
			t.Fatal(err)
		}
		os.Chmod(root, 0o711)
	}
	users := make([]string, 0, len(placement))
	for u := range placement {
		users = append(users, u)
	}
	sort.Strings(users)
	var b strings.Builder
	b.WriteString("# test users\n")
	for i, u := range users {
		uid := 5000 + i
		f.uids[u] = uid
		fmt.Fprintf(&b, "%s:{PLAIN}pw:%d:%d::/%s/%s::\n", u, uid, uid, placement[u], u)
	}
	if err := os.WriteFile(f.passwd, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// real is where a host-absolute path of a host is on this machine.
func (f *fixture) real(hostName, p string) string {
	return filepath.Join(f.dir, "cluster", hostName, p)
}

func (f *fixture) home(user string) string {
	d, _ := passwd.Open(f.passwd, passwd.Options{HoldMarker: true})
	e, err := d.Lookup(context.Background(), user)
	if err != nil {
		return ""
	}
	return e.Home
}

// makeMaildir writes a small realistic Maildir home for user on hostName
// and returns the names of its messages.
func (f *fixture) makeMaildir(t testing.TB, user, hostName string, messages int) {
	t.Helper()
	home := f.real(hostName, "/"+hostName+"/"+user)
	spec := map[string]string{
		"Maildir/dovecot-uidlist":  "3 V1234 N1\n",
		"Maildir/subscriptions":    "Sent\n",
		"Maildir/.Sent/cur/1.a:2,": "sent body",
		".forward.keep":            "not a forward",
	}
	for i := 0; i < messages; i++ {
		flags := []string{"S", "RS", "FS", ""}[i%4]
		name := fmt.Sprintf("Maildir/cur/%d.M%dP1.host,S=%d:2,%s", 1700000000+i, i, 100+i, flags)
		if i%5 == 4 {
			name = fmt.Sprintf("Maildir/new/%d.M%dP1.host,S=%d", 1700000000+i, i, 100+i)
		}
		spec[name] = strings.Repeat(fmt.Sprintf("line %d of message %d\n", i, i), 1+i%7)
	}
	for _, d := range []string{"Maildir/cur", "Maildir/new", "Maildir/tmp", "Maildir/.Sent/cur", "Maildir/.Sent/new", "Maildir/.Sent/tmp"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	for name, body := range spec {
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1600000000+int64(i)*3600, int64(i)*1234567)
		os.Chtimes(p, mt, mt)
		i++
	}
	f.chownTree(t, home, f.uids[user])
}

func (f *fixture) chownTree(t testing.TB, root string, uid int) {
	if !isRoot {
		return
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// engine wires an engine over the fixture, as the CLI would.
func (f *fixture) engine(t testing.TB) *Engine {
	t.Helper()
	d, err := passwd.Open(f.passwd, passwd.Options{HoldMarker: true})
	if err != nil {
		t.Fatal(err)
	}
	// One cache for the copier and the hosts' scans, as wire.Engine has.
	cache := tree.NewCache()
	hosts := map[string]host.Host{}
	for _, h := range f.cluster.Hosts {
		l := host.NewLocal(h, f.cluster)
		l.Cache = cache
		hosts[h.Name] = l
	}
	return &Engine{
		Cluster:   f.cluster,
		Directory: d,
		Host: func(n string) (host.Host, error) {
			if h, ok := hosts[n]; ok {
				return h, nil
			}
			return nil, fmt.Errorf("no host %q", n)
		},
		Copier:     &host.LocalCopier{Options: tree.Options{Cache: cache}},
		Hold:       &delivery.Rename{},
		Activity:   fakeActivity{f},
		Stub:       true,
		Marker:     true,
		JournalDir: filepath.Join(f.dir, "state", "journal"),
		LockDir:    filepath.Join(f.dir, "state", "locks"),
		Settle:     2 * time.Second,
		PreCopy:    os.Getenv(envNoPreCopy) == "",
		Margin:     0,
		Events: func(ev runstate.Event) {
			f.mu.Lock()
			f.events = append(f.events, ev)
			f.mu.Unlock()
		},
	}
}

// envNoPreCopy, when set, turns the precopy off in fixture engines (the
// crash test's child reads it).
const envNoPreCopy = "MAILDIST_TEST_NO_PRECOPY"

type fakeActivity struct{ f *fixture }

func (a fakeActivity) Active(ctx context.Context, user string, uid int, hosts []string) ([]activity.Session, error) {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	if a.f.active[user] {
		return []activity.Session{{User: user, Service: "imap", PID: 42}}, nil
	}
	return nil, nil
}

// snapshot is a manifest of a home with hashes, for comparing before and
// after a move.
func snapshot(t testing.TB, realHome string) *tree.Manifest {
	t.Helper()
	m, err := tree.Scan(context.Background(), realHome, tree.ScanOptions{Hash: true})
	if err != nil {
		t.Fatalf("scan %s: %v", realHome, err)
	}
	return m
}

// settled checks the promise of the move package for one user: the mail
// is complete in exactly one home, the one the directory points to, on
// wantHost; nothing is held, staged or locked; the hold marker is clear.
func (f *fixture) settled(t testing.TB, user, wantHost string, before *tree.Manifest) {
	t.Helper()
	d, _ := passwd.Open(f.passwd, passwd.Options{HoldMarker: true})
	e, err := d.Lookup(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if e.Held {
		t.Errorf("%s: hold marker still set", user)
	}
	h, ok := f.cluster.HostOf(e.Home)
	if !ok || h.Name != wantHost {
		t.Fatalf("%s: directory says %s, want a home on %s", user, e.Home, wantHost)
	}
	got := snapshot(t, f.real(h.Name, e.Home))
	if diffs := tree.Compare(before, got, tree.CompareOptions{IgnoreOwners: !isRoot}); len(diffs) > 0 {
		t.Fatalf("%s: home differs from before the move: %v", user, diffs)
	}
	for _, hh := range f.cluster.Hosts {
		for _, p := range []string{"/" + hh.Name + "/" + user + ".moving", "/" + hh.Name + "/" + stagingDir} {
			ents, err := os.ReadDir(f.real(hh.Name, p))
			if err == nil && (strings.HasSuffix(p, ".moving") || len(ents) > 0) {
				t.Errorf("%s: left behind on %s: %s %v", user, hh.Name, p, ents)
			}
		}
		if hh.Name == wantHost {
			continue
		}
		// The only thing at the user's home path elsewhere may be a stub.
		other := f.real(hh.Name, "/"+hh.Name+"/"+user)
		if _, err := os.Lstat(other); err == nil {
			t.Errorf("%s: a home is still at %s", user, other)
		}
	}
	if e.Home != "/"+wantHost+"/"+user {
		t.Errorf("%s: home %s", user, e.Home)
	}
	// No lock is held.
	l, err := (&Engine{LockDir: filepath.Join(f.dir, "state", "locks")}).lockUser(user)
	if err != nil {
		t.Errorf("%s: still locked: %v", user, err)
	} else {
		l.Unlock()
	}
}
