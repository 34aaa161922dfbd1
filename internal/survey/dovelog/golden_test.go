package dovelog

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sharedData finds ../shared/data beside the module root (the folder with
// go.mod). The samples are part of the project's inputs: a test that
// cannot find them fails.
func sharedData(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = up
	}
	data := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(data, "logs")); err != nil {
		t.Fatalf("the log samples are missing: %v", err)
	}
	return data
}

// goldenRef anchors the samples' syslog dates: they have no year.
var goldenRef = time.Date(2025, 12, 31, 12, 0, 0, 0, time.UTC)

func openFile(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// describe scans files as one stream and writes what came out.
func describe(t *testing.T, files []File, opt PairOptions) string {
	t.Helper()
	var sessions []Session
	opt.OnSession = func(s Session) { sessions = append(sessions, s) }
	pr := NewPairer(opt)
	rep, err := Scan(context.Background(), []Stream{{Name: "x", Files: files}}, pr, ScanOptions{Loc: time.UTC, Workers: 2, BlockSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lines %d\n", rep.Lines)
	for k := Kind(0); k < NumKinds; k++ {
		if rep.ByKind[k] > 0 {
			fmt.Fprintf(&b, "  %-13s %d\n", k, rep.ByKind[k])
		}
	}
	st := pr.Stats()
	fmt.Fprintf(&b, "logins %d, unmatched ends %d\n", st.Logins, st.Unmatched)
	b.WriteString("sessions\n")
	for _, s := range sessions {
		fmt.Fprintf(&b, "  %-22s %-4s %s %s %6.0fs %s\n", s.User, s.Service, s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), s.End.Sub(s.Start).Seconds(), s.Closed)
	}
	b.WriteString("users\n")
	tot := pr.Totals()
	names := make([]string, 0, len(tot))
	for n := range tot {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := tot[n]
		last := "-"
		if !u.LastLogin.IsZero() {
			last = u.LastLogin.Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "  %-22s connect_s=%d sessions=%d last_login=%s\n", n, int64(u.Connect.Seconds()), u.Sessions, last)
	}
	if len(rep.Malformed) > 0 {
		b.WriteString("malformed\n")
		for _, m := range rep.Malformed {
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	return b.String()
}

func TestGoldenSamples(t *testing.T) {
	logs := filepath.Join(sharedData(t), "logs")
	want := []string{"crowdsec_hub_dovecot-logs.log", "itlinux_qmail-grafical-stats_dovecot.log", "logcrux_dovecot.log", "lograptor_dovecot_v1x.log"}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(logs, name)
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			got := describe(t, []File{{Name: name, Open: openFile(path), Ref: goldenRef}}, PairOptions{})
			golden := filepath.Join("testdata", strings.TrimSuffix(name, ".log")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(w, []byte(got)) {
				t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, golden, got, w)
			}
		})
	}
}
