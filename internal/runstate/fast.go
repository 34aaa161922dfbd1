package runstate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
)

// The big run files (raw.tsv, sort.tsv, todo.tsv) reach millions of rows.
// They are read whole into one string and cut into fields in place, so a
// row costs no allocation of its own: the fields of the rows returned are
// substrings of the file (or unescaped copies, for the rare field with an
// escape). Writing goes through one reused row.

// readAll reads a file into one string without copying it twice.
func readAll(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		b.Grow(int(fi.Size()) + 1)
	}
	if _, err := io.Copy(&b, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return b.String(), nil
}

// eachRow walks the data rows of TSV text as ParseTSV does, calling fn
// with each good row's line number and fields (a slice reused between
// calls). Bad lines and fn's errors are joined in err, in line order. A
// missing or wrong header is returned alone with headerOK false.
func eachRow(name, data string, columns []string, fn func(line int, fields []string) error) (headerOK bool, err error) {
	var bad []error
	fields := make([]string, len(columns))
	line := 0
	for len(data) > 0 {
		var text string
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			text, data = data, ""
		}
		text = strings.TrimSuffix(text, "\r")
		line++
		if line == 1 {
			if text != strings.Join(columns, "\t") {
				got := strings.Split(text, "\t")
				return false, &LineError{name, line, fmt.Sprintf("header is %q, want %q", strings.Join(got, " "), strings.Join(columns, " "))}
			}
			continue
		}
		if text == "" || text[0] == '#' {
			continue
		}
		if n := strings.Count(text, "\t") + 1; n != len(columns) {
			bad = append(bad, &LineError{name, line, fmt.Sprintf("%d fields, want %d (%s)", n, len(columns), strings.Join(columns, " "))})
			continue
		}
		ok := true
		for i := range fields {
			f := text
			if j := strings.IndexByte(text, '\t'); j >= 0 {
				f, text = text[:j], text[j+1:]
			}
			u, err := Unescape(f)
			if err != nil {
				bad = append(bad, &LineError{name, line, fmt.Sprintf("column %s: %v", columns[i], err)})
				ok = false
				break
			}
			fields[i] = u
		}
		if !ok {
			continue
		}
		if err := fn(line, fields); err != nil {
			bad = append(bad, err)
		}
	}
	if line == 0 {
		return false, &LineError{name, 1, "empty file: no header line"}
	}
	return true, errors.Join(bad...)
}

// parseTime reads an RFC 3339 time. The form the survey writes,
// 2006-01-02T15:04:05Z, is read directly; anything else, or a date that
// does not exist, goes to time.Parse for its verdict.
func parseTime(s string) (time.Time, error) {
	if len(s) == 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == 'Z' {
		num := func(a, b int) int {
			n := 0
			for i := a; i < b; i++ {
				c := s[i]
				if c < '0' || c > '9' {
					return -1
				}
				n = n*10 + int(c-'0')
			}
			return n
		}
		y, mo, d, h, mi, se := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
		if y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && h >= 0 && h < 24 && mi >= 0 && mi < 60 && se >= 0 && se < 60 {
			t := time.Date(y, time.Month(mo), d, h, mi, se, 0, time.UTC)
			if t.Day() == d { // not normalised from 31 April
				return t, nil
			}
		}
	}
	return time.Parse(time.RFC3339, s)
}

// classNames spells every class once, so that writing a million rows
// does not format a million class names.
var classNames = func() (n [5][5]string) {
	for c := range 5 {
		for d := range 5 {
			n[c][d] = cluster.Class{C: c, D: d}.String()
		}
	}
	return n
}()

func className(c cluster.Class) string {
	if c.C >= 0 && c.C < 5 && c.D >= 0 && c.D < 5 {
		return classNames[c.C][c.D]
	}
	return c.String()
}

// writeRows atomically writes a TSV file of n rows, each filled by fill
// into a reused slice of len(columns) fields.
func writeRows(path string, columns []string, n int, fill func(i int, row []string)) error {
	return fsutil.WriteWith(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		writeRow(bw, columns)
		row := make([]string, len(columns))
		for i := range n {
			fill(i, row)
			writeRow(bw, row)
		}
		return bw.Flush()
	})
}
