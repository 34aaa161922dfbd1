package sandbox

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/maildist/maildist/internal/cluster"
)

// CorpusFile is the name of the Enron archive in ../shared/data.
const CorpusFile = "enron-inbox.tar.gz"

// FindCorpus locates the Enron archive: $MAILDIST_CORPUS if set, else
// ../shared/data/enron-inbox.tar.gz beside the folder holding go.mod,
// found by walking up from the working folder. Its error says where it
// looked.
func FindCorpus() (string, error) {
	if p := os.Getenv("MAILDIST_CORPUS"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("corpus: $MAILDIST_CORPUS: %w", err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(filepath.Dir(d), "shared", "data", CorpusFile)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("corpus: not at %s (beside the module root %s); set $MAILDIST_CORPUS", p, d)
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("corpus: no go.mod in %s or any folder above it, so no ../shared/data/%s to look at; set $MAILDIST_CORPUS", wd, CorpusFile)
		}
	}
}

// corpusEntry is one message of a corpus, as read.
type corpusEntry struct {
	user   string
	folder string     // Maildir++ folder: "" for the inbox, ".a.b" for inbox/a/b
	kind   folderKind // kindInbox or kindOther
	data   []byte     // nil: read it from file
	file   string
}

// corpusPath maps a corpus path (maildir/<user>/<folder…>/<file>, with or
// without the leading maildir/) to a user and a Maildir++ folder. Folder
// names keep letters, digits, '_' and '-'; anything else (the '.' that
// Maildir++ uses as separator among it) becomes '_'.
func corpusPath(name string) (user, folder string, kind folderKind, err error) {
	parts := strings.Split(strings.Trim(path.Clean("/"+name), "/"), "/")
	if len(parts) > 0 && parts[0] == "maildir" {
		parts = parts[1:]
	}
	if len(parts) < 3 {
		return "", "", 0, fmt.Errorf("not in a mail folder (want maildir/<user>/<folder>/<message>)")
	}
	user = parts[0]
	if err := cluster.CheckUser(user); err != nil {
		return "", "", 0, err
	}
	dirs := parts[1 : len(parts)-1]
	if strings.EqualFold(dirs[0], "inbox") {
		dirs = dirs[1:]
	}
	if len(dirs) == 0 {
		return user, "", kindInbox, nil
	}
	clean := make([]string, len(dirs))
	for i, d := range dirs {
		clean[i] = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
				return r
			}
			return '_'
		}, d)
	}
	return user, "." + strings.Join(clean, "."), kindOther, nil
}

// readCorpus streams a corpus into staging: a gzip'd or plain tar is read
// once, front to back, and never unpacked; a folder is walked. Users=N
// takes the first N users in the corpus's order.
func (b *builder) readCorpus(ctx context.Context) error {
	st, err := os.Stat(b.o.Corpus)
	if err != nil {
		return fmt.Errorf("sandbox: corpus: %w", err)
	}
	// Messages go to the writers a user at a time (split if a user is
	// huge): writers creating files in different folders run in parallel,
	// while creations in one folder wait on each other in the kernel.
	p := newPool(ctx, workers())
	next := map[string]int{} // per user: the number of its next message
	type item struct {
		e corpusEntry
		n int
	}
	var batch []item
	var batchBytes int
	var batchBox *mbox
	flush := func() {
		if len(batch) == 0 {
			return
		}
		m, items := batchBox, batch
		batch, batchBytes = nil, 0
		p.Go(func() error {
			for _, it := range items {
				data := it.e.data
				if data == nil {
					var err error
					if data, err = os.ReadFile(it.e.file); err != nil {
						return fmt.Errorf("sandbox: corpus: %w", err)
					}
				}
				if err := m.add(it.e.folder, it.e.kind, it.n, data); err != nil {
					return fmt.Errorf("sandbox: user %s: %w", m.name, err)
				}
			}
			return nil
		})
	}
	send := func(e corpusEntry) error {
		m := b.boxes[e.user]
		if m == nil {
			if b.o.Users > 0 && len(b.boxes) >= b.o.Users {
				return nil
			}
			var err error
			if m, err = b.newMbox(e.user); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			b.boxes[e.user] = m
		}
		if m != batchBox || batchBytes > 32<<20 || len(batch) >= 4096 {
			flush()
			batchBox = m
		}
		batch = append(batch, item{e, next[e.user]})
		batchBytes += len(e.data)
		next[e.user]++
		return p.ctx.Err()
	}
	if st.IsDir() {
		err = b.walkCorpus(p.ctx, send)
	} else {
		err = b.streamCorpus(p.ctx, send)
	}
	if err == nil {
		flush()
	}
	werr := p.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if werr != nil {
		return werr
	}
	return err
}

// streamCorpus reads a tar archive, gzip'd or not.
func (b *builder) streamCorpus(ctx context.Context, send func(corpusEntry) error) error {
	name := b.o.Corpus
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("sandbox: corpus: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sandbox: corpus: %w", err)
	}
	counted := &countingReader{r: f, report: func(n int64) { b.progress.set(int(n), int(st.Size())) }}
	br := bufio.NewReaderSize(counted, 1<<20)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("sandbox: corpus %s: %w", name, err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sandbox: corpus %s: %w", name, err)
		}
		mode := h.FileInfo().Mode()
		if mode.IsDir() {
			continue
		}
		if !mode.IsRegular() {
			return fmt.Errorf("sandbox: corpus %s: %s: not a regular file", name, h.Name)
		}
		user, folder, kind, err := corpusPath(h.Name)
		if err != nil {
			return fmt.Errorf("sandbox: corpus %s: %s: %w", name, h.Name, err)
		}
		if h.Size > 64<<20 {
			return fmt.Errorf("sandbox: corpus %s: %s: %d bytes is too large for a message", name, h.Name, h.Size)
		}
		if m := b.boxes[user]; m == nil && b.o.Users > 0 && len(b.boxes) >= b.o.Users {
			continue // not one of the first Users users
		}
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return fmt.Errorf("sandbox: corpus %s: %s: %w", name, h.Name, err)
		}
		if err := send(corpusEntry{user: user, folder: folder, kind: kind, data: data}); err != nil {
			return err
		}
	}
}

// walkCorpus reads an unpacked corpus: DIR/maildir/<user>/… or
// DIR/<user>/…, users in name order, files in name order.
func (b *builder) walkCorpus(ctx context.Context, send func(corpusEntry) error) error {
	top := b.o.Corpus
	if st, err := os.Stat(filepath.Join(top, "maildir")); err == nil && st.IsDir() {
		top = filepath.Join(top, "maildir")
	}
	ents, err := os.ReadDir(top)
	if err != nil {
		return fmt.Errorf("sandbox: corpus: %w", err)
	}
	var users []string
	for _, e := range ents {
		if e.IsDir() {
			users = append(users, e.Name())
		}
	}
	slices.Sort(users)
	if b.o.Users > 0 && len(users) > b.o.Users {
		users = users[:b.o.Users]
	}
	for i, user := range users {
		err := filepath.WalkDir(filepath.Join(top, user), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(top, p)
			if !d.Type().IsRegular() {
				return fmt.Errorf("%s: not a regular file", rel)
			}
			u, folder, kind, err := corpusPath(filepath.ToSlash(rel))
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			return send(corpusEntry{user: u, folder: folder, kind: kind, file: p})
		})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			return fmt.Errorf("sandbox: corpus %s: %w", top, err)
		}
		b.progress.set(i+1, len(users))
	}
	return nil
}

// countingReader reports how far a file has been read, every MiB.
type countingReader struct {
	r      io.Reader
	n, at  int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.at >= 1<<20 {
		c.at = c.n
		c.report(c.n)
	}
	return n, err
}
