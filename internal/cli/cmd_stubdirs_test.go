package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
	"github.com/maildist/maildist/internal/runstate"
	"github.com/maildist/maildist/internal/sandbox"
	"github.com/maildist/maildist/internal/stubdir"
)

func TestStubdirs(t *testing.T) {
	ctx := context.Background()
	sb, err := sandbox.Build(ctx, sandbox.Options{Dir: t.TempDir(), Users: 6, MissingHomes: 2, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	var rows []cluster.User
	var missing []sandbox.User
	var present sandbox.User
	for _, u := range sb.Users {
		rows = append(rows, cluster.User{Name: u.Name, Host: u.Host, Home: u.Home, Status: u.Status})
		if u.Status == cluster.StatusMissingHome {
			missing = append(missing, u)
		} else {
			present = u
		}
	}
	if len(missing) != 2 {
		t.Fatalf("the sandbox has %d missing homes, want 2", len(missing))
	}
	// More users the survey found without a home:
	extra := []struct{ name, home string }{
		{"newbie", "/bp01/deep/er/newbie"}, // its parents are missing too
		{"nohost", "/elsewhere/nohost"},    // under no host's root: refused
		{"held", "/bp02/held"},             // held for a move: HOME.moving exists
		{"locked", "/bp03/locked"},         // being moved by another process
	}
	passwd, err := os.OpenFile(sb.Passwd, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range extra {
		uid := 7001 + i
		if _, err := passwd.WriteString(e.name + ":{PLAIN}x:" + strconv.Itoa(uid) + ":" + strconv.Itoa(uid) + "::" + e.home + "::\n"); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, cluster.User{Name: e.name, Home: e.home, Status: cluster.StatusMissingHome})
	}
	passwd.Close()
	// A user whose home was made since the survey, and one who is gone.
	rows = append(rows,
		cluster.User{Name: present.Name, Host: present.Host, Home: present.Home, Status: cluster.StatusMissingHome},
		cluster.User{Name: "ghost", Home: "/bp01/ghost", Status: cluster.StatusMissingHome})
	if err := os.Mkdir(sb.RealPath("/bp02/held.moving"), 0o700); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "runs", "07")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runstate.WriteRaw(filepath.Join(run, "raw.tsv"), rows); err != nil {
		t.Fatal(err)
	}
	lockDir := filepath.Join(sb.Dir, "state", "locks")
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := fsutil.TryLock(filepath.Join(lockDir, "locked.lock"))
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(run, stubdir.FileName)
	toMake := []string{missing[0].Home, missing[1].Home, "/bp01/deep/er/newbie"}

	// --dry-run makes nothing.
	code, out, errs := runMain("--config", sb.Config, "stubdirs", "--dry-run", run)
	if code != ExitPartial {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "dry run: 3 homes would be made, 4 skipped, 1 cannot be made; nothing was changed") ||
		!strings.Contains(out, "with /bp01/deep, /bp01/deep/er (root, 0711)") {
		t.Errorf("dry run stdout:\n%s", out)
	}
	for _, h := range toMake {
		if _, err := os.Lstat(sb.RealPath(h)); err == nil {
			t.Errorf("dry run made %s", h)
		}
	}
	if _, err := os.Stat(record); err == nil {
		t.Error("dry run wrote " + record)
	}

	code, out, errs = runMain("--config", sb.Config, "stubdirs", run)
	if code != ExitPartial {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"failed   no-host: home /elsewhere/nohost is under no host's root",
		"skipped  moving: /bp02/held.moving exists on bp02",
		"skipped  moving: locked is being moved by another process",
		"skipped  exists: " + present.Home + " exists on " + present.Host + ": a folder",
		"skipped  not-in-directory",
		"3 homes made, 4 skipped, 1 could not be made; recorded in " + record,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "1 of 8 missing homes could not be made") {
		t.Errorf("stderr:\n%s", errs)
	}
	owners := map[string][2]int{missing[0].Home: {missing[0].UID, missing[0].GID}, missing[1].Home: {missing[1].UID, missing[1].GID}, "/bp01/deep/er/newbie": {7001, 7001}}
	for home, own := range owners {
		checkFolder(t, sb.RealPath(home), 0o700, own[0], own[1])
	}
	checkFolder(t, sb.RealPath("/bp01/deep"), 0o711, 0, 0)
	checkFolder(t, sb.RealPath("/bp01/deep/er"), 0o711, 0, 0)
	for _, p := range []string{"/bp02/held", "/bp03/locked", "/bp01/ghost"} {
		if _, err := os.Lstat(sb.RealPath(p)); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	if ents, _ := os.ReadDir(sb.RealPath(present.Home)); len(ents) == 0 {
		t.Errorf("the existing home %s was emptied", present.Home)
	}
	recorded := readRecord(t, record)
	if len(recorded) != 3 || !strings.Contains(strings.Join(recorded, "\n"), "newbie\tbp01\t/bp01/deep/er/newbie") {
		t.Errorf("record:\n%s", strings.Join(recorded, "\n"))
	}

	// Again, with the lock free: only locked is made; the record keeps
	// the first run's rows.
	lock.Unlock()
	code, out, errs = runMain("--config", sb.Config, "--json", "stubdirs", run)
	var rep stubdirsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitPartial {
		t.Fatalf("exit %d %v\n%s\n%s", code, err, out, errs)
	}
	if rep.Counts[stubdir.Created] != 1 || rep.Counts[stubdir.Skipped] != 6 || rep.Counts[stubdir.Failed] != 1 {
		t.Errorf("second run: %+v", rep.Counts)
	}
	for _, r := range rep.Results {
		if r.User == "locked" && (r.Outcome != stubdir.Created || r.UID != 7004 || len(r.Made) != 1) {
			t.Errorf("locked: %+v", r)
		}
	}
	if got := readRecord(t, record); len(got) != 4 || got[3] != "locked\tbp03\t/bp03/locked" {
		t.Errorf("record after the second run:\n%s", strings.Join(got, "\n"))
	}

	// No raw.tsv: named, with what to do.
	code, _, errs = runMain("--config", sb.Config, "stubdirs", t.TempDir())
	if code != ExitError || !strings.Contains(errs, "raw.tsv") || !strings.Contains(errs, "hint: run `maildist survey") {
		t.Errorf("no raw.tsv: exit %d\n%s", code, errs)
	}
}

func checkFolder(t *testing.T, p string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	if !fi.IsDir() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a folder %v", p, fi.Mode(), mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if os.Geteuid() == 0 && (int(st.Uid) != uid || int(st.Gid) != gid) {
		t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
}

func readRecord(t *testing.T, p string) []string {
	t.Helper()
	rows, err := runstate.ReadTSV(p, stubdir.Columns)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, strings.Join(r.Fields, "\t"))
	}
	return out
}
