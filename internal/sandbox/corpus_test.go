package sandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

func TestFindCorpus(t *testing.T) {
	top := t.TempDir()
	mod := filepath.Join(top, "main")
	cwd := filepath.Join(mod, "internal", "x")
	data := filepath.Join(top, "shared", "data")
	for _, d := range []string{cwd, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module x\n"), 0o644)
	t.Chdir(cwd)

	t.Setenv("MAILDIST_CORPUS", "")
	want := filepath.Join(data, CorpusFile)
	if _, err := FindCorpus(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("FindCorpus with no archive = %v, want an error naming %s", err, want)
	}
	os.WriteFile(want, nil, 0o644)
	if got, err := FindCorpus(); err != nil || got != want {
		t.Errorf("FindCorpus = %q, %v; want %s", got, err, want)
	}

	other := filepath.Join(top, "other.tar.gz")
	t.Setenv("MAILDIST_CORPUS", other)
	if _, err := FindCorpus(); err == nil || !strings.Contains(err.Error(), "MAILDIST_CORPUS") {
		t.Errorf("FindCorpus with a missing $MAILDIST_CORPUS = %v", err)
	}
	os.WriteFile(other, nil, 0o644)
	if got, err := FindCorpus(); err != nil || got != other {
		t.Errorf("FindCorpus = %q, %v; want $MAILDIST_CORPUS %s", got, err, other)
	}
}

// smallCorpus is a corpus in the Enron layout with the awkward cases:
// no Date, a Date in year 1, a header that net/mail refuses, CRLF lines,
// nested inbox folders (one with a dot in its name), a folder beside the
// inbox.
var smallCorpus = map[string]string{
	"maildir/alice/inbox/1":          "Date: Mon, 14 May 2001 16:39:00 -0700 (PDT)\nSubject: one\n\nbody one\n",
	"maildir/alice/inbox/2":          "Subject: no date\n\nbody two\n",
	"maildir/alice/inbox/10":         "Date: Sun, 27 Nov 0001 13:27:14 -0800 (PST)\nSubject: year one\n\nbody\n",
	"maildir/alice/inbox/proj/x.y/3": "Date: Tue, 2 Oct 2001 09:00:00 -0500\r\nSubject: crlf\r\n\r\nline\r\nline\r\n",
	"maildir/bob/inbox/1":            "Date: Wed, 3 Jan 2001 10:00:00 +0000\nbroken header line\n\nbody\n",
	"maildir/bob/sent/1":             "Date: Thu, 4 Jan 2001 11:00:00 +0000\nSubject: sent\n\nbody\n",
	"maildir/carol/inbox/7":          "Date: Fri, 5 Jan 2001 12:00:00 +0100\nSubject: x\n\n" + strings.Repeat("long line of text\n", 5000),
}

func writeSmallCorpusDir(t *testing.T) string {
	dir := t.TempDir()
	for name, body := range smallCorpus {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeSmallCorpusTar writes the corpus as a tar.gz, users in the order
// given (an archive need not be sorted).
func writeSmallCorpusTar(t *testing.T, order []string) string {
	p := filepath.Join(t.TempDir(), "corpus.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "maildir/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, user := range order {
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range smallCorpus {
				if strings.HasPrefix(n, "maildir/"+user+"/") && !yield(n) {
					return
				}
			}
		}) {
			body := smallCorpus[name]
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
			tw.Write([]byte(body))
		}
	}
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	return p
}

// corpusSums is every user's sorted message hashes, from the corpus map.
func corpusSums(users ...string) map[string][]string {
	out := map[string][]string{}
	for name, body := range smallCorpus {
		user := strings.Split(name, "/")[1]
		if slices.Contains(users, user) {
			sum := sha256.Sum256([]byte(body))
			out[user] = append(out[user], hex.EncodeToString(sum[:]))
		}
	}
	for _, s := range out {
		slices.Sort(s)
	}
	return out
}

func TestCorpusSmall(t *testing.T) {
	dir := writeSmallCorpusDir(t)
	archive := writeSmallCorpusTar(t, []string{"carol", "alice", "bob"})
	for _, tc := range []struct {
		name      string
		corpus    string
		users     int
		missing   int
		wantUsers []string
	}{
		{"folder", dir, 0, 0, []string{"alice", "bob", "carol"}},
		{"folder maildir", filepath.Join(dir, "maildir"), 2, 0, []string{"alice", "bob"}},
		{"archive", archive, 0, 2, []string{"alice", "bob", "carol"}},
		{"archive first two", archive, 2, 0, []string{"alice", "carol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, Options{Corpus: tc.corpus, Users: tc.users, MissingHomes: tc.missing, Seed: 4})
			st := checkCluster(t, c)
			var got []string
			missing := 0
			for _, u := range c.Users {
				if u.Status == cluster.StatusMissingHome {
					missing++
					continue
				}
				got = append(got, u.Name)
			}
			if !slices.Equal(got, tc.wantUsers) || missing != tc.missing {
				t.Errorf("users %v and %d without a home, want %v and %d", got, missing, tc.wantUsers, tc.missing)
			}
			want := corpusSums(tc.wantUsers...)
			for _, u := range tc.wantUsers {
				if !slices.Equal(st.contentSum[u], want[u]) {
					t.Errorf("user %s: messages are not the corpus's, byte for byte", u)
				}
			}
			if slices.Contains(tc.wantUsers, "alice") {
				a, _ := c.User("alice")
				if _, err := os.Stat(filepath.Join(c.RealPath(a.Home), "Maildir", ".proj.x_y", "cur")); err != nil {
					t.Errorf("inbox/proj/x.y is not the folder .proj.x_y: %v", err)
				}
			}
			if slices.Contains(tc.wantUsers, "bob") {
				b, _ := c.User("bob")
				if _, err := os.Stat(filepath.Join(c.RealPath(b.Home), "Maildir", ".sent", "cur")); err != nil {
					t.Errorf("sent/ is not the folder .sent: %v", err)
				}
			}
		})
	}
}

// TestCorpusEnron builds the whole Enron corpus. CI has the archive, so a
// missing one fails the test (only -short skips it).
func TestCorpusEnron(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building the Enron corpus")
	}
	archive, err := FindCorpus()
	if err != nil {
		t.Fatal(err)
	}

	// What the archive holds, counted here rather than trusted.
	want := map[string][]string{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	messages := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.FileInfo().Mode().IsRegular() {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(h.Name, "./"), "/")
		if len(parts) < 4 || parts[0] != "maildir" {
			t.Fatalf("archive entry %s is not maildir/<user>/<folder>/<n>", h.Name)
		}
		hash := sha256.New()
		if _, err := io.Copy(hash, tr); err != nil {
			t.Fatal(err)
		}
		want[parts[1]] = append(want[parts[1]], hex.EncodeToString(hash.Sum(nil)))
		messages++
	}
	f.Close()
	for _, s := range want {
		slices.Sort(s)
	}
	t.Logf("the archive holds %d users, %d messages", len(want), messages)

	start := time.Now()
	c := build(t, Options{Corpus: archive, Seed: 1})
	t.Logf("built the corpus cluster in %v", time.Since(start))
	st := checkCluster(t, c)
	if len(c.Users) != len(want) || st.messages != messages {
		t.Errorf("cluster has %d users, %d messages; the archive %d, %d", len(c.Users), st.messages, len(want), messages)
	}
	for user, sums := range want {
		if !slices.Equal(st.contentSum[user], sums) {
			t.Errorf("user %s: messages are not the corpus's, byte for byte", user)
		}
	}
	t.Logf("%d bytes; flags %v; per host %v; %d messages dated by the seed", st.bytes, st.flags, st.perHost, st.noDate)
}

func FuzzCorpusPath(f *testing.F) {
	for name := range smallCorpus {
		f.Add(name)
	}
	for _, s := range []string{"maildir/../x/inbox/1", "./maildir/a/inbox/b/../../c/1", "a/b", "maildir/-x/inbox/1", "maildir/a/.../1", "u/INBOX/x y/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		user, folder, kind, err := corpusPath(name)
		if err != nil {
			return
		}
		if cluster.CheckUser(user) != nil {
			t.Fatalf("corpusPath(%q) gave user %q", name, user)
		}
		if folder == "" {
			if kind != kindInbox {
				t.Fatalf("corpusPath(%q): inbox of kind %v", name, kind)
			}
			return
		}
		if !strings.HasPrefix(folder, ".") || kind != kindOther {
			t.Fatalf("corpusPath(%q) gave folder %q of kind %v", name, folder, kind)
		}
		for _, part := range strings.Split(folder[1:], ".") {
			if part == "" || strings.Trim(part, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
				t.Fatalf("corpusPath(%q) gave folder %q", name, folder)
			}
		}
	})
}

func TestCorpusRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"symlink", tar.Header{Name: "maildir/a/inbox/1", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "maildir/a/inbox/1: not a regular file"},
		{"bad user", tar.Header{Name: "maildir/-rf/inbox/1", Typeflag: tar.TypeReg}, "maildir/-rf/inbox/1"},
		{"no folder", tar.Header{Name: "maildir/a/1", Typeflag: tar.TypeReg}, "not in a mail folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.tar")
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tc.hdr)
			tw.Close()
			os.WriteFile(p, buf.Bytes(), 0o644)
			_, err := Build(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "s"), Corpus: p})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
