package survey_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/directory/passwd"
	"github.com/maildist/maildist/internal/sandbox"
	"github.com/maildist/maildist/internal/survey"
)

// surveySandbox builds a sandbox and surveys it through its own config
// and passwd file, as `maildist survey` would.
func surveySandbox(t *testing.T, opt sandbox.Options) (*sandbox.Cluster, *survey.Result) {
	t.Helper()
	opt.Dir = t.TempDir()
	sb, err := sandbox.Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(sb.Config)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := passwd.Open(cfg.Directory.Path, passwd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := dir.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := survey.Run(context.Background(), survey.Options{Cluster: cfg.Cluster(), Entries: entries,
		Logs: []string{sb.Log}, Loc: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	return sb, res
}

// checkAgainst compares every row with du, find and the sandbox's truth.
func checkAgainst(t *testing.T, sb *sandbox.Cluster, res *survey.Result) {
	t.Helper()
	if len(res.Users) != len(sb.Users) {
		t.Fatalf("%d rows, the sandbox has %d users", len(res.Users), len(sb.Users))
	}
	var homes []string
	byName := map[string]cluster.User{}
	for _, u := range res.Users {
		byName[u.Name] = u
	}
	for _, want := range sb.Users {
		got, ok := byName[want.Name]
		if !ok {
			t.Errorf("%s: no row", want.Name)
			continue
		}
		if got.Host != want.Host || got.Home != want.Home || got.Status != want.Status {
			t.Errorf("%s: host %s home %s status %s, want %s %s %s", want.Name, got.Host, got.Home, got.Status, want.Host, want.Home, want.Status)
		}
		if got.Sessions != want.Sessions || got.ConnectS != want.ConnectS || !got.LastLogin.Equal(want.LastLogin) {
			t.Errorf("%s: sessions %d connect_s %d last_login %v, the log's truth is %d %d %v",
				want.Name, got.Sessions, got.ConnectS, got.LastLogin, want.Sessions, want.ConnectS, want.LastLogin)
		}
		if want.Status != cluster.StatusOK {
			continue
		}
		if got.Messages != int64(want.Messages) {
			t.Errorf("%s: %d messages, the sandbox made %d", want.Name, got.Messages, want.Messages)
		}
		homes = append(homes, sb.RealPath(want.Home))
	}
	// One du and one find for every home at once.
	du := runLines(t, append([]string{"du", "--block-size=1", "-s"}, homes...))
	for _, h := range homes {
		out, err := exec.Command("sh", "-c", `find "$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l`, "sh", h).Output()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		u := byHome(res, sb, h)
		if u.Messages != n {
			t.Errorf("%s: %d messages, find counts %d", u.Name, u.Messages, n)
		}
		if u.Bytes != du[h] {
			t.Errorf("%s: %d bytes, du --block-size=1 -s says %d", u.Name, u.Bytes, du[h])
		}
	}
}

func runLines(t *testing.T, argv []string) map[string]int64 {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", argv[0], err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(l, "\t", 2)
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || len(f) != 2 {
			t.Fatalf("%s: %q", argv[0], l)
		}
		m[f[1]] = n
	}
	return m
}

func byHome(res *survey.Result, sb *sandbox.Cluster, real string) cluster.User {
	for _, u := range res.Users {
		if sb.RealPath(u.Home) == real {
			return u
		}
	}
	return cluster.User{}
}

func TestSurveyGeneratedSandbox(t *testing.T) {
	sb, res := surveySandbox(t, sandbox.Options{Users: 60, MissingHomes: 3, Seed: 11})
	checkAgainst(t, sb, res)
	if res.Missing != 3 {
		t.Errorf("%d missing homes, want 3", res.Missing)
	}
	if res.Pairing.Unmatched != 0 || res.Pairing.Closed[1] != 0 {
		t.Errorf("pairing %+v: every session of the sandbox's log ends inside it", res.Pairing)
	}
}

// TestSurveyEnronSandbox surveys the whole Enron corpus laid out as a
// cluster. The corpus is part of the project's data: the test fails,
// never skips, without it.
func TestSurveyEnronSandbox(t *testing.T) {
	corpus, err := sandbox.FindCorpus()
	if err != nil {
		t.Fatal(err)
	}
	sb, res := surveySandbox(t, sandbox.Options{Corpus: corpus, Seed: 7})
	if len(sb.Users) != 137 {
		t.Fatalf("the Enron sandbox has %d users, want 137", len(sb.Users))
	}
	checkAgainst(t, sb, res)
}
