package runstate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/maildist/maildist/internal/fsutil"
)

// LineError is one bad line of a run file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Row is one data line of a TSV file.
type Row struct {
	Line   int
	Fields []string
}

// ReadTSV reads a TSV file whose header must be exactly columns. It returns
// every good row; bad lines (wrong field count, bad escapes) are returned
// joined in err as *LineError values, alongside the good rows. A missing
// file or a wrong header is an error with no rows.
func ReadTSV(path string, columns []string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseTSV(path, f, columns)
}

// ParseTSV is ReadTSV over a reader; name is used in messages.
func ParseTSV(name string, r io.Reader, columns []string) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var rows []Row
	var bad []error
	line := 0
	header := false
	for sc.Scan() {
		line++
		text := sc.Text()
		if !header {
			header = true
			got := strings.Split(strings.TrimSuffix(text, "\r"), "\t")
			if strings.Join(got, "\t") != strings.Join(columns, "\t") {
				return nil, &LineError{name, line, fmt.Sprintf("header is %q, want %q", strings.Join(got, " "), strings.Join(columns, " "))}
			}
			continue
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) != len(columns) {
			bad = append(bad, &LineError{name, line, fmt.Sprintf("%d fields, want %d (%s)", len(fields), len(columns), strings.Join(columns, " "))})
			continue
		}
		ok := true
		for i, fl := range fields {
			u, err := Unescape(fl)
			if err != nil {
				bad = append(bad, &LineError{name, line, fmt.Sprintf("column %s: %v", columns[i], err)})
				ok = false
				break
			}
			fields[i] = u
		}
		if ok {
			rows = append(rows, Row{Line: line, Fields: fields})
		}
	}
	if err := sc.Err(); err != nil {
		return rows, fmt.Errorf("read %s: %w", name, err)
	}
	if !header {
		return nil, &LineError{name, 1, "empty file: no header line"}
	}
	return rows, errors.Join(bad...)
}

// WriteTSV atomically writes a TSV file with a header of columns.
func WriteTSV(path string, columns []string, rows [][]string) error {
	return fsutil.WriteWith(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		writeRow(bw, columns)
		for _, r := range rows {
			if len(r) != len(columns) {
				return fmt.Errorf("row %q has %d fields, want %d", r, len(r), len(columns))
			}
			writeRow(bw, r)
		}
		return bw.Flush()
	})
}

func writeRow(w *bufio.Writer, fields []string) {
	for i, f := range fields {
		if i > 0 {
			w.WriteByte('\t')
		}
		w.WriteString(Escape(f))
	}
	w.WriteByte('\n')
}

// Escape makes a field safe for one TSV column.
func Escape(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		switch s[i] {
		case '\t', '\n', '\r', '\\':
			clean = false
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Unescape reverses Escape.
func Unescape(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("trailing backslash")
		}
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}
