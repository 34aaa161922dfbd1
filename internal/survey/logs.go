package survey

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maildist/maildist/internal/survey/dovelog"
)

// logFile is one file a glob matched.
type logFile struct {
	path  string
	base  string // the live file's name: rotations share it
	order int    // within a base: larger is older
	date  string // dateext rotation (dovecot.log-20250301)
	size  int64
	mtime time.Time
}

// FindLogs expands the globs into streams, one for each live log file
// and its rotations, each stream's files oldest first: dovecot.log.2.gz,
// dovecot.log.1, dovecot.log (and dateext's dovecot.log-20250301.gz). A
// glob that matches no file is an error, and so is a match that cannot be
// read, and a folder named as such (not by a glob pattern). Folders a
// pattern matches are skipped; FindLogsWarn says so.
func FindLogs(globs []string) ([]dovelog.Stream, []int64, error) {
	streams, sizes, _, err := FindLogsWarn(globs)
	return streams, sizes, err
}

// FindLogsWarn is FindLogs that also returns warnings: the folders a glob
// matched, which are not read.
func FindLogsWarn(globs []string) ([]dovelog.Stream, []int64, []string, error) {
	seen := map[string]bool{}
	var files []logFile
	var errs []error
	var warnings []string
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			errs = append(errs, fmt.Errorf("log glob %q: %w", g, err))
			continue
		}
		if len(matches) == 0 {
			errs = append(errs, fmt.Errorf("log glob %q matches no file", g))
			continue
		}
		var dirs []string
		nfiles := 0
		for _, m := range matches {
			if seen[m] {
				nfiles++
				continue
			}
			seen[m] = true
			fi, err := os.Stat(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("read log %s: %w", m, bare(err)))
				continue
			}
			if fi.IsDir() {
				if !hasMeta(g) {
					errs = append(errs, fmt.Errorf("log %s is a folder, not a log file: give the files in it, like %s", m, filepath.Join(m, "*.log*")))
				}
				dirs = append(dirs, m)
				continue
			}
			nfiles++
			f := logFile{path: m, size: fi.Size(), mtime: fi.ModTime()}
			f.base, f.order, f.date = rotation(m)
			files = append(files, f)
		}
		switch {
		case len(dirs) == 0 || !hasMeta(g):
		case nfiles == 0:
			warnings = append(warnings, fmt.Sprintf("log glob %q matches only folders (%s): no log is read from it", g, listSome(dirs, 3)))
		default:
			warnings = append(warnings, fmt.Sprintf("log glob %q matches folders, which are not read: %s", g, listSome(dirs, 3)))
		}
	}
	if len(errs) > 0 {
		return nil, nil, nil, errors.Join(errs...)
	}
	groups := map[string][]logFile{}
	var bases []string
	for _, f := range files {
		if _, ok := groups[f.base]; !ok {
			bases = append(bases, f.base)
		}
		groups[f.base] = append(groups[f.base], f)
	}
	sort.Strings(bases)
	var streams []dovelog.Stream
	var sizes []int64
	for _, b := range bases {
		fs := groups[b]
		sort.SliceStable(fs, func(i, j int) bool { return older(fs[i], fs[j]) })
		s := dovelog.Stream{Name: b}
		var size int64
		for _, f := range fs {
			s.Files = append(s.Files, dovelog.File{Name: f.path, Ref: f.mtime})
			size += f.size
		}
		streams = append(streams, s)
		sizes = append(sizes, size)
	}
	return streams, sizes, warnings, nil
}

// hasMeta says whether a glob has pattern characters, so that it may
// match what its author did not name.
func hasMeta(g string) bool { return strings.ContainsAny(g, `*?[\`) }

// listSome lists the first n names and how many more there are.
func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// older says whether a was written before b.
func older(a, b logFile) bool {
	switch {
	case a.order != b.order:
		return a.order > b.order // .2 before .1 before the live file (0)
	case a.date != b.date:
		if a.date == "" || b.date == "" {
			return b.date == "" // dated rotations before the live file
		}
		return a.date < b.date
	}
	return a.mtime.Before(b.mtime)
}

// rotation splits a log file name into the live file's name and its place
// among the rotations.
func rotation(path string) (base string, order int, date string) {
	p := strings.TrimSuffix(path, ".gz")
	if i := strings.LastIndexByte(p, '.'); i > 0 {
		if n, err := strconv.Atoi(p[i+1:]); err == nil && n >= 0 && !strings.ContainsAny(p[i+1:], "+-") {
			return p[:i], n + 1, ""
		}
	}
	// logrotate dateext: name-YYYYMMDD (optionally -HH or more digits)
	if i := strings.LastIndexByte(p, '-'); i > 0 && i < len(p)-1 {
		d := p[i+1:]
		if len(d) >= 8 && strings.Trim(d, "0123456789") == "" {
			return p[:i], 0, d
		}
	}
	return p, 0, ""
}

// counted counts the bytes read from the file itself (compressed, for a
// .gz), for progress against the files' sizes.
type counted struct {
	r io.Reader
	n *atomic.Int64
}

func (c counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// fileErr is a file's error without the file's name, for messages that
// name it already ("read log X: open: permission denied").
type fileErr struct{ *fs.PathError }

func (e fileErr) Error() string { return e.Op + ": " + e.Err.Error() }
func (e fileErr) Unwrap() error { return e.PathError }

func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fileErr{pe}
	}
	return err
}

// bareReader reads a file, its errors without the file's name.
type bareReader struct{ r io.Reader }

func (b bareReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bare(err)
	}
	return n, err
}

type gzFile struct {
	zr *gzip.Reader
	f  *os.File
}

// Read reads the unpacked text; what goes wrong is said in gzip's terms.
func (g gzFile) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	switch {
	case err == nil, err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = errors.New("gzip data cut short (the file ends inside it)")
	case errors.Is(err, gzip.ErrChecksum):
		err = errors.New("gzip data damaged (checksum mismatch)")
	case errors.Is(err, gzip.ErrHeader):
		err = errors.New("gzip data damaged (bad header after the first member)")
	default:
		err = bare(err)
	}
	return n, err
}

func (g gzFile) Close() error {
	err := g.zr.Close()
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	return err
}

type plainFile struct {
	io.Reader
	f *os.File
}

func (p plainFile) Close() error { return p.f.Close() }

// Compressed formats known by their first bytes. Only gzip is unpacked;
// the others are named so that the operator can unpack them.
var (
	gzipMagic  = []byte{0x1f, 0x8b}
	otherMagic = []struct {
		magic []byte
		name  string
	}{
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"},
		{[]byte("BZh"), "bzip2"},
	}
)

// opener opens a log file, counting bytes read from it in n. Whether it is
// gzip is told by its first bytes (a .gz name is not trusted): gzip data
// is unpacked whatever the name, and a .gz file that is not gzip is an
// error, as is a file in another compressed format. An empty file is
// empty whatever its name. A large plain file is mapped into memory
// (mappedLog). Errors do not repeat the file's name: the caller gives
// it.
func opener(path string, n *atomic.Int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, bare(err)
		}
		r := counted{bareReader{f}, n}
		var head [8]byte
		k, err := io.ReadFull(r, head[:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			f.Close()
			return nil, err
		}
		h := head[:k]
		rest := io.MultiReader(bytes.NewReader(h), r)
		switch {
		case bytes.HasPrefix(h, gzipMagic):
			zr, err := gzip.NewReader(bufio.NewReaderSize(rest, 256<<10))
			if err != nil {
				f.Close()
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return nil, errors.New("gzip data cut short (the file ends inside its header)")
				}
				return nil, fmt.Errorf("gzip data damaged: %w", bare(err))
			}
			return gzFile{zr, f}, nil
		case k == 0:
			return plainFile{rest, f}, nil
		}
		for _, m := range otherMagic {
			if bytes.HasPrefix(h, m.magic) && (m.name != "bzip2" || k > 3 && h[3] >= '1' && h[3] <= '9') {
				f.Close()
				return nil, fmt.Errorf("%s data: only gzip is unpacked; unpack it first", m.name)
			}
		}
		if strings.HasSuffix(path, ".gz") {
			f.Close()
			return nil, errors.New("not gzip data, though the name ends in .gz")
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() >= mapAtLeast {
			if m := mapLog(f, fi.Size(), n); m != nil {
				n.Add(-int64(k)) // counted again as the scan goes
				return m, nil
			}
		}
		return plainFile{rest, f}, nil
	}
}

// ReadSessions reads a sessions file: TSV lines "user start end" with
// RFC 3339 times, for sites whose logs are not Dovecot's. A header line
// ("user start end"), blank lines and # comments are skipped. The
// sessions come back as events in time order, with their count; bad
// lines come back in bad (file:line), and err is set only if the file
// cannot be read.
func ReadSessions(path string) (evs []dovelog.Event, n int, bad []error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("read sessions: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if text == "" || strings.HasPrefix(text, "#") || line == 1 && text == "user\tstart\tend" {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) != 3 {
			bad = append(bad, fmt.Errorf("%s:%d: %d fields, want 3 (user start end)", path, line, len(fields)))
			continue
		}
		start, err1 := time.Parse(time.RFC3339, fields[1])
		end, err2 := time.Parse(time.RFC3339, fields[2])
		switch {
		case fields[0] == "":
			bad = append(bad, fmt.Errorf("%s:%d: empty user", path, line))
			continue
		case err1 != nil || err2 != nil:
			bad = append(bad, fmt.Errorf("%s:%d: start and end must be RFC 3339 times (2025-03-01T08:00:00Z)", path, line))
			continue
		case end.Before(start):
			bad = append(bad, fmt.Errorf("%s:%d: ends before it starts", path, line))
			continue
		}
		n++
		id := []byte(strconv.Itoa(line))
		user := []byte(fields[0])
		evs = append(evs,
			dovelog.Event{Kind: dovelog.Login, Service: dovelog.IMAP, User: user, Session: id, Time: start.UnixNano()},
			dovelog.Event{Kind: dovelog.End, Service: dovelog.IMAP, User: user, Session: id, Time: end.UnixNano()})
	}
	if err := sc.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("read sessions %s: %w", path, err)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
	return evs, n, bad, nil
}
