package tree

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mountSmall mounts a 1 MiB tmpfs at a new folder and unmounts it when the
// test ends; it skips the test where mounting is not permitted.
func mountSmall(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the full-disk case is not tested", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestCopyDiskFull(t *testing.T) {
	for _, mode := range []string{"copy_file_range", "read-write"} {
		t.Run(mode, func(t *testing.T) {
			small := mountSmall(t)
			src := filepath.Join(t.TempDir(), "src")
			part := strings.Repeat("x", 300<<10)
			build(t, src, []node{
				F("Maildir/cur/1:2,S", part),
				F("Maildir/cur/2:2,S", part),
				F("Maildir/cur/3:2,S", part),
				F("Maildir/cur/4:2,S", part),
				F("Maildir/new/5", part),
			})
			before := mustScan(t, src)
			dst := filepath.Join(small, "staging")
			_, err := Copy(context.Background(), src, dst, Options{noCopyFileRange: mode == "read-write"})
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Copy: %v, want ENOSPC", err)
			}
			if !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "Maildir/") {
				t.Errorf("error %q should name the file and say the disk is full", err)
			}
			t.Logf("Copy: %v", err)
			if diffs := Compare(before, mustScan(t, src), CompareOptions{}); len(diffs) > 0 {
				t.Errorf("source changed: %v", diffs)
			}
			if err := os.RemoveAll(dst); err != nil {
				t.Errorf("staging cannot be removed: %v", err)
			}
		})
	}
}

// TestNonRoot runs the nonRoot cases as the user nobody in a child process
// (the test binary again), since a process cannot drop root for one
// goroutine.
func TestNonRoot(t *testing.T) {
	if os.Getenv("TREE_TEST_NONROOT") != "" {
		nonRoot(t)
		return
	}
	if !isRoot() {
		nonRoot(t) // already not root: run the cases here
		return
	}
	dir := t.TempDir()
	// t.TempDir makes its folders 0700 for root alone.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tree.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestNonRoot$", "-test.v")
	cmd.Env = append(os.Environ(), "TREE_TEST_NONROOT=1", "TMPDIR="+dir, "GOCOVERDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestNonRoot") {
		t.Fatalf("the child ran no test:\n%s", out)
	}
	t.Logf("as nobody:\n%s", out)
}

func nonRoot(t *testing.T) {
	if isRoot() {
		t.Fatal("still root")
	}
	t.Run("copies without owners", func(t *testing.T) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		nodes := []node{
			F("Maildir/cur/1:2,S", msg).Mode(0o400),
			D("Maildir/cur").Mode(0o500),
			D("Maildir").Mode(0o2700),
			F("Maildir/new/2", msg),
			H("Maildir/new/2-again", "Maildir/new/2"),
			L("Maildir/escape", "../../etc/passwd"),
			D("Maildir/.Sent").Mode(0o1700),
		}
		build(t, src, nodes)
		t.Cleanup(func() { removable(dir) })
		st, err := Copy(context.Background(), src, dst, Options{})
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if st.HardLinks != 1 {
			t.Errorf("hard links %d, want 1", st.HardLinks)
		}
		sameTree(t, src, dst)
		checkLstat(t, src, dst, nodes)

		// Sync into read-only folders of the copy.
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.Chmod(filepath.Join(src, "Maildir/cur"), 0o700))
		must(os.WriteFile(filepath.Join(src, "Maildir/cur/3:2,S"), []byte(msg), 0o600))
		must(os.Chmod(filepath.Join(src, "Maildir/cur"), 0o500))
		if _, err := Sync(context.Background(), src, dst, Options{Hash: true}); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		sameTree(t, src, dst)

		if _, err := Copy(context.Background(), src, filepath.Join(dir, "owned"), Options{Owners: OwnersOn}); err != nil {
			t.Errorf("Copy with owners of one's own files: %v", err)
		}
		// The copy can be removed by its owner.
		must(removable(dst))
		must(os.RemoveAll(dst))
	})
	t.Run("unreadable file", func(t *testing.T) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		build(t, src, []node{F("Maildir/cur/locked:2,S", msg).Mode(0), F("Maildir/cur/ok:2,S", msg)})
		_, err := Copy(context.Background(), src, dst, Options{})
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "copy Maildir/cur/locked:2,S: open: permission denied") {
			t.Errorf("Copy: %v, want a permission error naming the file", err)
		}
		_, err = Scan(context.Background(), src, ScanOptions{Hash: true})
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "Maildir/cur/locked:2,S") {
			t.Errorf("Scan: %v, want a permission error naming the file", err)
		}
	})
}

// removable gives every folder below root u+rwx, which a user needs to
// remove a tree that has read-only folders.
func removable(root string) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return err
	})
}
