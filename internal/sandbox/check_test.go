package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory/passwd"
)

// build makes a sandbox in a fresh temp folder.
func build(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = filepath.Join(t.TempDir(), "sandbox")
	}
	c, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return c
}

// stats is what checkCluster saw, for tests that want variety.
type stats struct {
	messages   int
	bytes      int64
	flags      map[string]int // "new", ":2,", ":2,S", ":2,RS", …
	folders    map[string]int // ".Sent" → users having it
	keywords   int            // messages with a keyword letter
	noMsgID    int
	multipart  int
	noDate     int // messages dated by the seed, not their Date header
	empty      int // users whose Maildir holds no message
	perHost    map[string]int
	perUser    map[string]int
	contentSum map[string][]string // user → sorted sha256 of every message
}

// checkCluster checks everything a sandbox promises: the config loads,
// the directory lists every user with the right home, every home is where
// RealPath says with the right owner and a proper Maildir, every message
// is named, sized and dated right, and dovecot-uidlist matches the files.
func checkCluster(t *testing.T, c *Cluster) stats {
	t.Helper()
	st := stats{flags: map[string]int{}, folders: map[string]int{}, perHost: map[string]int{},
		perUser: map[string]int{}, contentSum: map[string][]string{}}

	cfg, err := config.Load(c.Config)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if cfg.Directory.Type != "passwd" || cfg.Directory.Path != c.Passwd {
		t.Errorf("config directory = %+v, want passwd at %s", cfg.Directory, c.Passwd)
	}
	if cfg.Activity.Source != "none" || cfg.Delivery.Hold != "rename" || cfg.Delivery.Stub != "forward" || len(cfg.Delivery.Flush) != 0 {
		t.Errorf("config activity/delivery = %+v / %+v", cfg.Activity, cfg.Delivery)
	}
	if !slices.Equal(cfg.Survey.Logs, []string{c.Log}) {
		t.Errorf("config survey logs = %q, want [%s]", cfg.Survey.Logs, c.Log)
	}
	if cfg.StateDir != filepath.Join(c.Dir, "state") || cfg.Domain != c.Domain || cfg.HomeLayout != c.Layout {
		t.Errorf("config state_dir/domain/layout = %s %s %s", cfg.StateDir, cfg.Domain, cfg.HomeLayout)
	}
	if fi, err := os.Stat(cfg.StateDir); err != nil || !fi.IsDir() {
		t.Errorf("state dir: %v", err)
	}
	if len(cfg.Hosts) != len(c.Hosts) {
		t.Fatalf("config has %d hosts, want %d", len(cfg.Hosts), len(c.Hosts))
	}
	for i, h := range cfg.Hosts {
		want := c.Hosts[i]
		pool := want.Pool
		if pool == "" {
			pool = "default"
		}
		if h.Name != want.Name || h.Pool != pool || h.Root != "/"+want.Name || h.FSRoot != c.FSRoot(want.Name) ||
			h.Weight != want.Weight || h.AcceptNew != want.AcceptNew || h.Drain != want.Drain || !h.Local() {
			t.Errorf("config host %d = %+v, want %+v", i, *h, want)
		}
		checkOwner(t, filepath.Join(h.FSRoot, h.Name), 0, 0, 0o711)
	}
	cc := cfg.Cluster()

	dir, err := passwd.Open(c.Passwd, passwd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := dir.List(context.Background())
	if err != nil {
		t.Fatalf("passwd List: %v", err)
	}
	if len(entries) != len(c.Users) {
		t.Fatalf("passwd has %d entries, cluster %d users", len(entries), len(c.Users))
	}
	if !slices.IsSortedFunc(c.Users, func(a, b User) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Users are not sorted by name")
	}
	for i, u := range c.Users {
		e := entries[i]
		if e.User != u.Name || e.Home != u.Home || e.UID != u.UID || e.GID != u.GID {
			t.Errorf("passwd entry %+v, want %+v", e, u)
		}
		if u.UID != 5000+i && c.Users[0].UID == 5000 {
			t.Errorf("user %s has uid %d, want %d", u.Name, u.UID, 5000+i)
		}
		if got, _ := c.User(u.Name); got.Name != u.Name {
			t.Errorf("User(%q) not found", u.Name)
		}
		h, ok := cc.HostOf(u.Home)
		if !ok || h.Name != u.Host {
			t.Errorf("user %s: home %s is on %v, want %s", u.Name, u.Home, h, u.Host)
			continue
		}
		if want := cc.HomeFor(u.Name, h); want != u.Home {
			t.Errorf("user %s: home %s, layout says %s", u.Name, u.Home, want)
		}
		real := c.RealPath(u.Home)
		if want := filepath.Join(h.FSRoot, u.Home); real != want {
			t.Errorf("RealPath(%s) = %s, want %s", u.Home, real, want)
		}
		st.perHost[u.Host]++
		_, err := os.Lstat(real)
		if u.Status == cluster.StatusMissingHome {
			if err == nil {
				t.Errorf("user %s should have no home, but %s exists", u.Name, real)
			}
			continue
		}
		if u.Status != cluster.StatusOK {
			t.Errorf("user %s: status %q", u.Name, u.Status)
		}
		if err != nil {
			t.Errorf("user %s: %v", u.Name, err)
			continue
		}
		for d := filepath.Dir(real); d != filepath.Join(h.FSRoot, h.Name); d = filepath.Dir(d) {
			checkOwner(t, d, 0, 0, 0o711) // {hash2} folders
		}
		checkHome(t, real, u, &st)
	}
	return st
}

// checkOwner checks a folder's mode, and its owner when running as root.
func checkOwner(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Error(err)
		return
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
	if os.Geteuid() != 0 {
		uid, gid = os.Geteuid(), os.Getegid()
	}
	s := fi.Sys().(*syscall.Stat_t)
	if int(s.Uid) != uid || int(s.Gid) != gid {
		t.Errorf("%s: owned by %d:%d, want %d:%d", p, s.Uid, s.Gid, uid, gid)
	}
}

var (
	msgName = regexp.MustCompile(`^(\d+)\.M(\d+)P(\d+)\.([a-z0-9]+),S=(\d+),W=(\d+)(:2,([A-Za-z]*))?$`)
	uidHead = regexp.MustCompile(`^3 V\d+ N(\d+) G[0-9a-f]{32}$`)
	uidLine = regexp.MustCompile(`^(\d+) :(\S+)$`)
)

// checkHome checks one home: owners, Maildir shape, every message.
func checkHome(t *testing.T, home string, u User, st *stats) {
	t.Helper()
	uid, gid := u.UID, u.GID
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		checkOwner(t, p, uid, gid, want)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	md := filepath.Join(home, "Maildir")
	ents, err := os.ReadDir(md)
	if err != nil {
		t.Errorf("user %s: %v", u.Name, err)
		return
	}
	folders := []string{""}
	for _, e := range ents {
		switch name := e.Name(); {
		case name == "cur" || name == "new" || name == "tmp":
		case name == "dovecot-uidlist" || name == "dovecot-keywords" || name == "subscriptions":
		case strings.HasPrefix(name, ".") && e.IsDir():
			folders = append(folders, name)
			st.folders[name]++
			if _, err := os.Stat(filepath.Join(md, name, "maildirfolder")); err != nil {
				t.Errorf("user %s: folder %s: %v", u.Name, name, err)
			}
		default:
			t.Errorf("user %s: unexpected %s in Maildir", u.Name, name)
		}
	}
	if len(folders)-1 != u.Folders {
		t.Errorf("user %s: %d folders, User says %d", u.Name, len(folders)-1, u.Folders)
	}
	if len(folders) > 1 {
		subs, err := os.ReadFile(filepath.Join(md, "subscriptions"))
		if err != nil {
			t.Errorf("user %s: %v", u.Name, err)
		}
		var want []string
		for _, f := range folders[1:] {
			want = append(want, strings.TrimPrefix(f, "."))
		}
		slices.Sort(want)
		if got := strings.Fields(string(subs)); !slices.Equal(got, want) {
			t.Errorf("user %s: subscriptions %q, want %q", u.Name, got, want)
		}
	}
	msgs := 0
	var size int64
	for _, f := range folders {
		n, b := checkFolder(t, filepath.Join(md, f), u.Name, st)
		msgs += n
		size += b
	}
	if msgs != u.Messages || size != u.Bytes {
		t.Errorf("user %s: %d messages, %d bytes; User says %d, %d", u.Name, msgs, size, u.Messages, u.Bytes)
	}
	if msgs == 0 {
		st.empty++
	}
	st.messages += msgs
	st.bytes += size
	st.perUser[u.Name] = msgs
	slices.Sort(st.contentSum[u.Name])
}

// checkFolder checks one Maildir folder against its dovecot-uidlist.
func checkFolder(t *testing.T, dir, user string, st *stats) (int, int64) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("user %s: %s/%s: not a folder (%v)", user, dir, sub, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) > 0 {
		t.Errorf("user %s: %s/tmp is not empty", user, dir)
	}
	_, kwErr := os.Stat(filepath.Join(dir, "dovecot-keywords"))
	bases := map[string]bool{}
	var n int
	var total int64
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, sub, e.Name())
			m := msgName.FindStringSubmatch(e.Name())
			if m == nil {
				t.Errorf("user %s: %s: not a Dovecot Maildir name", user, p)
				continue
			}
			// Times first: reading the file moves its atime.
			fi, err := os.Lstat(p)
			if err != nil {
				t.Error(err)
				continue
			}
			sys := fi.Sys().(*syscall.Stat_t)
			atime := time.Unix(sys.Atim.Unix())
			data, err := os.ReadFile(p)
			if err != nil {
				t.Error(err)
				continue
			}
			n++
			total += int64(len(data))
			sum := sha256.Sum256(data)
			st.contentSum[user] = append(st.contentSum[user], hex.EncodeToString(sum[:]))

			secs, _ := strconv.ParseInt(m[1], 10, 64)
			sz, _ := strconv.Atoi(m[5])
			vs, _ := strconv.Atoi(m[6])
			if sz != len(data) || int64(sz) != fi.Size() {
				t.Errorf("user %s: %s: S=%d, file has %d bytes", user, p, sz, len(data))
			}
			crlf := len(data) + bytes.Count(data, []byte("\n")) - bytes.Count(data, []byte("\r\n"))
			if vs != crlf {
				t.Errorf("user %s: %s: W=%d, want %d", user, p, vs, crlf)
			}
			mt := fi.ModTime()
			if !mt.Equal(atime) {
				t.Errorf("user %s: %s: atime %v, mtime %v", user, p, atime, mt)
			}
			if mt.Unix() != secs || mt.Nanosecond() != 0 {
				t.Errorf("user %s: %s: mtime %v, name says %d", user, p, mt, secs)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(data))
			var date time.Time
			if err == nil {
				date, err = msg.Header.Date()
				if msg.Header.Get("Message-Id") == "" {
					st.noMsgID++
				}
				if strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/") {
					st.multipart++
				}
			}
			if err == nil && date.Year() >= 1980 && date.Year() < 2100 {
				if !mt.Equal(date) {
					t.Errorf("user %s: %s: mtime %v, Date header %v", user, p, mt, date)
				}
			} else {
				st.noDate++
			}

			info := m[7]
			switch {
			case sub == "new" && info != "":
				t.Errorf("user %s: %s: a message in new/ has flags", user, p)
			case sub == "cur" && info == "":
				t.Errorf("user %s: %s: a message in cur/ has no :2, part", user, p)
			case sub == "new":
				st.flags["new"]++
			default:
				st.flags[info]++
				flags := m[8]
				if !slices.IsSorted([]byte(flags)) || strings.Trim(flags, "DFPRSTab") != "" {
					t.Errorf("user %s: %s: flags %q", user, p, flags)
				}
				if strings.ContainsAny(flags, "ab") {
					st.keywords++
					if kwErr != nil {
						t.Errorf("user %s: %s has a keyword but the folder has no dovecot-keywords", user, p)
					}
				}
			}
			base := strings.SplitN(e.Name(), ":2,", 2)[0]
			if bases[base] {
				t.Errorf("user %s: %s: two messages named %s", user, dir, base)
			}
			bases[base] = true
		}
	}

	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		t.Errorf("user %s: %v", user, err)
		return n, total
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Errorf("user %s: %s: empty dovecot-uidlist", user, dir)
		return n, total
	}
	head := uidHead.FindStringSubmatch(sc.Text())
	if head == nil {
		t.Errorf("user %s: %s: dovecot-uidlist header %q", user, dir, sc.Text())
		return n, total
	}
	listed := 0
	for sc.Scan() {
		m := uidLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("user %s: %s: dovecot-uidlist line %q", user, dir, sc.Text())
			continue
		}
		listed++
		if m[1] != strconv.Itoa(listed) {
			t.Errorf("user %s: %s: dovecot-uidlist uid %s, want %d", user, dir, m[1], listed)
		}
		if !bases[m[2]] {
			t.Errorf("user %s: %s: dovecot-uidlist names %s, which is not a message", user, dir, m[2])
		}
	}
	if listed != n || head[1] != strconv.Itoa(n+1) {
		t.Errorf("user %s: %s: dovecot-uidlist lists %d (next %s), folder has %d messages", user, dir, listed, head[1], n)
	}
	return n, total
}

// listing describes every file and folder under dir: path, type, mode,
// owner, size, mtime and a hash of the contents.
func listing(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d:%d %d %d", rel, fi.Mode(), s.Uid, s.Gid, fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:8])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
