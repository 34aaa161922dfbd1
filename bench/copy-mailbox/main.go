// Command copy-mailbox builds the sandbox that bench/copy and bench/hold
// move: two hosts, "src" holding one user ("enron") whose Maildir INBOX
// holds every message of the Enron corpus (about 45,000 files), and "dst",
// empty. It prints the sandbox's config file.
//
// The corpus's messages belong to 137 users; they are renamed into one
// user's inbox through a temporary tar beside the sandbox (removed
// afterwards), and internal/sandbox lays that user out as Dovecot would:
// cur/new/tmp, names with S= and W= and flags, mtimes from the Date
// headers, dovecot-uidlist.
package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/maildist/maildist/internal/sandbox"
)

// User is the one user of the sandbox.
const User = "enron"

func main() {
	dir := flag.String("dir", "", "folder to build in (must be empty or absent)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "copy-mailbox: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "copy-mailbox:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	corpus, err := sandbox.FindCorpus()
	if err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dir), "copy-mailbox-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := oneUser(corpus, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "copy-mailbox: %d messages into one inbox, building %s…\n", n, dir)
	sb, err := sandbox.Build(context.Background(), sandbox.Options{
		Dir:          dir,
		Corpus:       tmp.Name(),
		Users:        1,
		MissingHomes: -1,
		Seed:         7,
		Hosts: []sandbox.HostSpec{
			{Name: "src", Weight: 1, AcceptNew: true, Share: 1},
			{Name: "dst", Weight: 1, AcceptNew: true},
		},
	})
	if err != nil {
		return err
	}
	fmt.Println(sb.Config)
	return nil
}

// oneUser copies the messages of the corpus archive into a plain tar as
// maildir/enron/inbox/<n>, and returns how many it wrote.
func oneUser(corpus string, out io.Writer) (int, error) {
	f, err := os.Open(corpus)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", corpus, err)
	}
	tr := tar.NewReader(zr)
	tw := tar.NewWriter(out)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", corpus, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		n++
		nh := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     fmt.Sprintf("maildir/%s/inbox/%d", User, n),
			Size:     h.Size,
			Mode:     0o644,
			ModTime:  h.ModTime,
		}
		if err := tw.WriteHeader(nh); err != nil {
			return n, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return n, fmt.Errorf("%s: %s: %w", corpus, h.Name, err)
		}
	}
	return n, tw.Close()
}
