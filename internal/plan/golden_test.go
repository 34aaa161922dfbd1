package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/runstate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGoldenSmall plans testdata/small (two pools of four hosts: one
// drains, one takes no new users, one is new and twice the size; two
// users are not ok) and compares every output with the files beside it.
func TestGoldenSmall(t *testing.T) {
	dir := filepath.Join("testdata", "small")
	users, err := runstate.ReadRaw(filepath.Join(dir, runstate.RawFile))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := config.LoadHosts(filepath.Join(dir, "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"random", Options{Seed: 42}},
		{"idle-tolerance", Options{Seed: 42, Pick: "idle", Tolerance: 1}},
		{"across-pools", Options{Seed: 7, Pick: "small", AcrossPools: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(users, hosts, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := runstate.WriteMoves(filepath.Join(out, "moves.tsv"), p.Moves); err != nil {
				t.Fatal(err)
			}
			if err := runstate.WriteSort(filepath.Join(out, "sort.tsv"), p.Sort); err != nil {
				t.Fatal(err)
			}
			if err := runstate.WriteTodo(filepath.Join(out, "todo.tsv"), p.Todo); err != nil {
				t.Fatal(err)
			}
			var table bytes.Buffer
			if err := p.WriteText(&table); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(out, "table.txt"), table.Bytes(), 0o644)
			js, _ := json.MarshalIndent(p.Summary(), "", "  ")
			os.WriteFile(filepath.Join(out, "summary.json"), append(js, '\n'), 0o644)

			for _, name := range []string{"moves.tsv", "sort.tsv", "todo.tsv", "table.txt", "summary.json"} {
				got, _ := os.ReadFile(filepath.Join(out, name))
				golden := filepath.Join(dir, tc.name, name)
				if *update {
					os.MkdirAll(filepath.Dir(golden), 0o755)
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to write it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", name, golden, firstDiff(got, want))
				}
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b []byte
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if !bytes.Equal(a, b) {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + string(a) + "\nwant: " + string(b)
		}
	}
	return ""
}
