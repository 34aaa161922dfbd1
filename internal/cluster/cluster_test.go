package cluster

import (
	"errors"
	"testing"
)

func TestHostOf(t *testing.T) {
	c := &Cluster{Hosts: []*Host{
		{Name: "bp04", Root: "/bp04"},
		{Name: "bp040", Root: "/bp040"},
		{Name: "deep", Root: "/bp04/d22"},
		{Name: "all", Root: "/srv/mail/"},
	}}
	for _, tc := range []struct {
		home, want string
	}{
		{"/bp04/alice", "bp04"},
		{"/bp040/alice", "bp040"},
		{"/bp04/d22/u1235", "deep"},
		{"/bp04/d221/u", "bp04"},
		{"/srv/mail/x", "all"},
		{"/srv/mail", ""},
		{"/bp04", ""},
		{"/elsewhere/x", ""},
		{"/bp04/../etc/x", ""},
	} {
		h, ok := c.HostOf(tc.home)
		got := ""
		if ok {
			got = h.Name
		}
		if got != tc.want {
			t.Errorf("HostOf(%q) = %q, want %q", tc.home, got, tc.want)
		}
	}
}

func TestHomeFor(t *testing.T) {
	h := &Host{Root: "/bp17/"}
	c := &Cluster{HomeLayout: "{root}/d{hash2}/{user}"}
	got := c.HomeFor("alice", h)
	want := "/bp17/d" + Hash2("alice") + "/alice"
	if got != want {
		t.Fatalf("HomeFor = %q, want %q", got, want)
	}
	c.HomeLayout = ""
	if got := c.HomeFor("bob", h); got != "/bp17/bob" {
		t.Fatalf("default layout gave %q", got)
	}
	if len(Hash2("anyone")) != 2 {
		t.Fatal("hash2 must be two digits")
	}
}

func TestCheckUser(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "-rf", "a\x00b", "a:b", "a\nb", "a b", "\xff", ".maildist-trash", ".hidden"} {
		if err := CheckUser(bad); !errors.Is(err, ErrBadUser) {
			t.Errorf("CheckUser(%q) = %v, want ErrBadUser", bad, err)
		}
	}
	for _, good := range []string{"alice", "a.b", "alice@example.edu", "u1235", "x-y_z"} {
		if err := CheckUser(good); err != nil {
			t.Errorf("CheckUser(%q) = %v", good, err)
		}
	}
}
