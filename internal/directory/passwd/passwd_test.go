package passwd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/directory/directorytest"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	for _, marker := range []bool{false, true} {
		t.Run(fmt.Sprintf("marker=%v", marker), func(t *testing.T) {
			directorytest.Run(t, func(t *testing.T, es []directory.Entry) directory.Directory {
				var b strings.Builder
				b.WriteString("# users\n\n")
				for _, e := range es {
					fmt.Fprintf(&b, "%s:x:%d:%d:A User:%s:/bin/false\n", e.User, e.UID, e.GID, e.Home)
				}
				f, err := Open(write(t, b.String()), Options{HoldMarker: marker})
				if err != nil {
					t.Fatal(err)
				}
				return f
			})
		})
	}
}

// Only the home changes: comments, blank lines, odd spacing, extra fields
// with colons, a missing final newline all survive byte for byte.
func TestSwitchKeepsEverythingElse(t *testing.T) {
	body := "# managed by hand\n" +
		"alice:{PLAIN}pw:5000:5000::/bp04/alice::userdb_mail=maildir:~/Maildir  quota=1G\n" +
		"\n" +
		"   # indented comment\n" +
		"bob:x:5001:5001:Bob, Room 1:/bp04/bob:/bin/sh"
	p := write(t, body)
	f, _ := Open(p, Options{})
	ctx := context.Background()
	if err := f.Switch(ctx, "alice", "/bp04/alice", "/bp17/alice"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := strings.Replace(body, "/bp04/alice", "/bp17/alice", 1)
	if string(got) != want {
		t.Fatalf("file after switch:\n%q\nwant\n%q", got, want)
	}
	bak, _ := os.ReadFile(p + ".bak")
	if string(bak) != body {
		t.Fatalf("backup = %q", bak)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode changed to %v", fi.Mode())
	}
}

func TestBadLinesNamed(t *testing.T) {
	p := write(t, "alice:x:1:1::/a/alice:\nshort:x:1\nbob:x:one:1::/a/bob:\ncarol:x:1:1::relative:\n:x:1:1::/a/x:\n")
	f, _ := Open(p, Options{})
	es, err := f.List(context.Background())
	if len(es) != 1 || es[0].User != "alice" {
		t.Fatalf("entries = %+v", es)
	}
	for _, w := range []string{p + ":2: 3 fields", p + ":3: user \"bob\": uid/gid", p + ":4: user \"carol\": home", p + ":5: empty user"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
	// A user whose line is bad is not "not found": the error names the line.
	if _, err := f.Lookup(context.Background(), "bob"); err == nil || errors.Is(err, directory.ErrNotFound) || !strings.Contains(err.Error(), ":3:") {
		t.Errorf("Lookup(bob) = %v", err)
	}
	// A bad line elsewhere does not stop a switch, and survives it.
	if err := f.Switch(context.Background(), "alice", "/a/alice", "/b/alice"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !strings.Contains(string(got), "bob:x:one:1::/a/bob:") {
		t.Fatal("bad line was not kept")
	}
}

func TestDuplicateUserRefused(t *testing.T) {
	p := write(t, "alice:x:1:1::/a/alice:\nalice:x:1:1::/b/alice:\n")
	f, _ := Open(p, Options{})
	if _, err := f.Lookup(context.Background(), "alice"); !errors.Is(err, directory.ErrDuplicate) {
		t.Fatalf("Lookup = %v", err)
	}
	if err := f.Switch(context.Background(), "alice", "/a/alice", "/c/alice"); !errors.Is(err, directory.ErrDuplicate) {
		t.Fatalf("Switch = %v", err)
	}
}

func TestHoldMarkerDovecotFormat(t *testing.T) {
	p := write(t, "alice@example.test:{PLAIN}pw:5000:5000::/h/alice::\nbob:x:1:1::/h/bob:/bin/sh\ncarol:x:1:1::/h/carol::nologin reason=Expired\n")
	f, _ := Open(p, Options{HoldMarker: true})
	ctx := context.Background()
	for _, u := range []string{"alice@example.test", "bob", "carol"} {
		if err := f.SetHold(ctx, u, directory.HoldReason); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(p)
	want := "alice@example.test:{PLAIN}pw:5000:5000::/h/alice::nologin reason=" + directory.HoldReason + "\n" +
		"bob:x:1:1::/h/bob:/bin/sh:nologin reason=" + directory.HoldReason + "\n" +
		"carol:x:1:1::/h/carol::nologin reason=Expired\n"
	if string(got) != want {
		t.Fatalf("held file:\n%s\nwant\n%s", got, want)
	}
	for _, u := range []string{"alice@example.test", "bob", "carol"} {
		if err := f.ClearHold(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = os.ReadFile(p)
	// The site's own nologin stays; ours go.
	want = "alice@example.test:{PLAIN}pw:5000:5000::/h/alice::\nbob:x:1:1::/h/bob:/bin/sh\ncarol:x:1:1::/h/carol::nologin reason=Expired\n"
	if string(got) != want {
		t.Fatalf("released file:\n%s\nwant\n%s", got, want)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("alice:x:1:1::/a:/bin/sh:extra:with:colons")
	f.Add("#c")
	f.Add("a:b")
	f.Fuzz(func(t *testing.T, s string) {
		p := parse("f", []byte(s), nil)
		for _, l := range p.lines {
			if l.fields != nil && strings.Join(l.fields, ":") != l.raw {
				t.Fatalf("fields do not rebuild the line: %q", l.raw)
			}
		}
	})
}

// Dovecot re-reads a passwd-file only when its mtime (whole seconds) or
// size changed: writes in quick succession that keep the size (a switch
// between homes of the same length, a marker set and cleared) must still
// each give the file a new mtime second.
func TestEveryWriteChangesTheMtimeSecond(t *testing.T) {
	p := write(t, "alice:{PLAIN}pw:5000:5000::/bp01/alice::\nbob:{PLAIN}pw:5001:5001::/bp01/bob::\n")
	f, err := Open(p, Options{HoldMarker: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stat := func() (int64, int64) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime().Unix(), fi.Size()
	}
	lastM, lastS := stat()
	steps := []func() error{
		func() error { return f.SetHold(ctx, "alice", directory.HoldReason) },
		func() error { return f.Switch(ctx, "alice", "/bp01/alice", "/bp02/alice") },
		func() error { return f.Switch(ctx, "bob", "/bp01/bob", "/bp03/bob") },
		func() error { return f.ClearHold(ctx, "alice") },
		func() error { return f.Switch(ctx, "alice", "/bp02/alice", "/bp01/alice") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		m, s := stat()
		if m <= lastM {
			t.Fatalf("write %d: mtime %d, was %d (size %d, was %d): Dovecot would not see it", i, m, lastM, s, lastS)
		}
		lastM, lastS = m, s
	}
	if lastM > time.Now().Unix()+int64(len(steps))+1 {
		t.Errorf("mtime %d runs too far ahead of now %d", lastM, time.Now().Unix())
	}
}
