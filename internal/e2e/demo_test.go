package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's first command works, and running it again replaces its own
// folder but never one that is not a demo.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for i := 0; i < 2; i++ {
		r := must(t, "", nil, "demo", dir)
		for _, w := range []string{"$ maildist survey", "$ maildist run", "After:", "report.html"} {
			if !strings.Contains(r.stdout, w) {
				t.Fatalf("demo output lacks %q:\n%s", w, r.stdout)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "runs", "01", "report.html")); err != nil {
			t.Fatal(err)
		}
		st := must(t, filepath.Join(dir, "maildist.toml"), nil, "status", filepath.Join(dir, "runs", "01"))
		if !strings.Contains(st.stdout, "done has run") {
			t.Fatalf("status after the demo:\n%s", st.stdout)
		}
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	r := maildist(t, "", "demo", other)
	if r.code != 2 || !strings.Contains(r.stderr, "not an earlier demo") {
		t.Fatalf("demo into a foreign folder: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
		t.Fatal("demo removed a foreign file")
	}
}
