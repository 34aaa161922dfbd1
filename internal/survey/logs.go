package survey

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
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
// read.
func FindLogs(globs []string) ([]dovelog.Stream, []int64, error) {
	seen := map[string]bool{}
	var files []logFile
	var errs []error
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
		for _, m := range matches {
			if seen[m] {
				continue
			}
			seen[m] = true
			fi, err := os.Stat(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("read log %s: %w", m, err))
				continue
			}
			if fi.IsDir() {
				continue
			}
			f := logFile{path: m, size: fi.Size(), mtime: fi.ModTime()}
			f.base, f.order, f.date = rotation(m)
			files = append(files, f)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
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
	return streams, sizes, nil
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

type gzFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzFile) Close() error {
	err := g.Reader.Close()
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

// opener opens a log file, decompressing .gz, counting bytes read in n.
func opener(path string, n *atomic.Int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		r := counted{f, n}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bufio.NewReaderSize(r, 256<<10))
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return gzFile{zr, f}, nil
		}
		return plainFile{r, f}, nil
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
