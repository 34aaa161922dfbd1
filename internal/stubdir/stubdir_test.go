package stubdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/directory"
	"github.com/maildist/maildist/internal/host"
)

type fakeDir map[string]directory.Entry

func (d fakeDir) Lookup(ctx context.Context, user string) (directory.Entry, error) {
	e, ok := d[user]
	if !ok {
		return e, directory.ErrNotFound
	}
	return e, nil
}

// The refusals that need no sandbox: no uid, a host root that is not
// there (not mounted), a file where a parent folder should be.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	c := &cluster.Cluster{Hosts: []*cluster.Host{
		{Name: "a", Root: "/a", FSRoot: filepath.Join(dir, "a")},
		{Name: "b", Root: "/b", FSRoot: filepath.Join(dir, "b")},
	}}
	if err := os.MkdirAll(filepath.Join(dir, "a", "a"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "a", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]host.Host{"a": host.NewLocal(c.Hosts[0], c), "b": host.NewLocal(c.Hosts[1], c)}
	opt := Options{
		Cluster: c,
		Directory: fakeDir{
			"nouid":  {User: "nouid", Home: "/a/nouid", UID: -1, GID: -1},
			"nomnt":  {User: "nomnt", Home: "/b/nomnt", UID: 5, GID: 5},
			"infile": {User: "infile", Home: "/a/file/infile", UID: 5, GID: 5},
			"fine":   {User: "fine", Home: "/a/x/fine", UID: 5, GID: 5},
		},
		Host: func(n string) (host.Host, error) { return hosts[n], nil },
	}
	users := []cluster.User{{Name: "nouid"}, {Name: "nomnt"}, {Name: "infile"}, {Name: "fine", Home: "/a/fine"}, {Name: "-x"}}
	rs := Make(context.Background(), opt, users)
	want := []struct{ outcome, reason, detail string }{
		{Failed, ReasonNoOwner, "no uid or gid"},
		{Failed, ReasonNoRoot, "host b has no folder at its root /b (not mounted?)"},
		{Failed, ReasonError, "not a directory"},
		{Created, "", "the survey saw /a/fine; the directory now says /a/x/fine"},
		{Failed, ReasonBadName, "starts with '-'"},
	}
	for i, w := range want {
		r := rs[i]
		if r.Outcome != w.outcome || r.Reason != w.reason || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s: %+v, want %+v", r.User, r, w)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "b")); err == nil {
		t.Error("a missing host root was made")
	}
	if got := strings.Join(rs[3].Made, " "); got != "/a/x /a/x/fine" {
		t.Errorf("made %q", got)
	}

	// A record with a line it cannot read is not rewritten.
	rec := filepath.Join(dir, FileName)
	bad := "user\thost\thome\nshort\n"
	if err := os.WriteFile(rec, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Record(rec, rs); err == nil {
		t.Error("a record with a bad line was rewritten")
	}
	if b, _ := os.ReadFile(rec); string(b) != bad {
		t.Errorf("record changed: %q", b)
	}
}
