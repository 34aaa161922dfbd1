package pki

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIssueAndVerify(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := Init(dir, "", KeyECDSA, now); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, "", KeyECDSA, now); !errors.Is(err, ErrExists) {
		t.Fatalf("init twice: %v", err)
	}
	for _, f := range []string{CAKey} {
		fi, _ := os.Stat(filepath.Join(dir, f))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", f, fi.Mode().Perm())
		}
	}
	crt, key, err := Issue(dir, IssueOptions{Name: "bp04", Role: RoleAgent, IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyType: KeyEd25519})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %o", fi.Mode().Perm())
	}
	if _, _, err := Issue(dir, IssueOptions{Name: "bp04", Role: RoleAgent}); !errors.Is(err, ErrExists) {
		t.Errorf("issue twice: %v", err)
	}
	l, err := Load(Files{CA: filepath.Join(dir, CACert), Cert: crt, Key: key}, RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	if l.Self != (Identity{"bp04", RoleAgent}) {
		t.Errorf("identity %+v", l.Self)
	}
	if _, ok := l.Pair.PrivateKey.(ed25519.PrivateKey); !ok {
		t.Errorf("key type %T", l.Pair.PrivateKey)
	}
	left := l.Leaf.NotAfter.Sub(now)
	if left < 364*24*time.Hour || left > 366*24*time.Hour {
		t.Errorf("valid for %v", left)
	}
	if _, err := Load(Files{CA: filepath.Join(dir, CACert), Cert: crt, Key: key}, RoleCoordinator); err == nil {
		t.Error("an agent certificate loaded as a coordinator's")
	}
	// The agent's name is checked, not the address.
	if err := VerifyAgent([]*x509.Certificate{l.Leaf}[0:1], l.Pool, "bp04", now); err != nil {
		t.Error(err)
	}
	if err := VerifyAgent([]*x509.Certificate{l.Leaf}, l.Pool, "bp05", now); err == nil || !strings.Contains(err.Error(), "not of bp05") {
		t.Errorf("wrong name: %v", err)
	}
	// A coordinator cannot be a server.
	ccrt, ckey, err := Issue(dir, IssueOptions{Name: "runner", Role: RoleCoordinator})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(Files{CA: filepath.Join(dir, CACert), Cert: ccrt, Key: ckey}, RoleCoordinator)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAgent([]*x509.Certificate{c.Leaf}, l.Pool, "runner", now); err == nil {
		t.Error("a coordinator certificate passed as an agent's")
	}
	// Another CA's agent is refused.
	other := t.TempDir()
	Init(other, "", "", now)
	ocrt, okey, err := Issue(other, IssueOptions{Name: "bp04", Role: RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	o, err := Load(Files{CA: filepath.Join(other, CACert), Cert: ocrt, Key: okey}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAgent([]*x509.Certificate{o.Leaf}, l.Pool, "bp04", now); err == nil {
		t.Error("another CA's agent passed")
	}
	if _, _, err := Issue(dir, IssueOptions{Name: "../x", Role: RoleAgent}); err == nil {
		t.Error("a name with / issued")
	}
}
