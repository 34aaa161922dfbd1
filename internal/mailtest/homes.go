package mailtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Password is the password Homes gives every user.
const Password = "secret"

// Homes lays out a small site for tests that need only a few users: a
// host root dir/root (root-owned, 0711, as a careful site keeps it), an
// empty home in it for each user (uid and gid 6000, 6001, …, mode 0700)
// and a passwd-file dir/passwd listing them. It returns the file and the
// homes by user.
func Homes(t testing.TB, dir string, users ...string) (string, map[string]string) {
	t.Helper()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := OpenPath(root); err != nil {
		t.Fatal(err)
	}
	homes := map[string]string{}
	var pw strings.Builder
	for i, u := range users {
		home := filepath.Join(root, u)
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(home, 6000+i, 6000+i); err != nil {
			t.Fatal(err)
		}
		homes[u] = home
		fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s::\n", u, Password, 6000+i, 6000+i, home)
	}
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(pw.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return passwd, homes
}
