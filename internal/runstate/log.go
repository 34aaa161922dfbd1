package runstate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Event is one line of log.jsonl.
type Event struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Step    string    `json:"step"`
	Outcome string    `json:"outcome"` // ok | refused | failed | undone | info
	Reason  string    `json:"reason,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	HeldMS  int64     `json:"held_ms,omitempty"`
	Runner  string    `json:"runner,omitempty"`
}

// Log appends events to a log.jsonl.
type Log struct {
	f *os.File
}

// OpenLog opens (creating) a log.jsonl for appending.
func OpenLog(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &Log{f: f}, nil
}

// Append writes one event as one line with a single write, then fsyncs.
// Writers in other processes never interleave inside a line.
func (l *Log) Append(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("append to %s: %w", l.f.Name(), err)
	}
	return l.f.Sync()
}

// Close closes the log.
func (l *Log) Close() error { return l.f.Close() }

// ReadLog reads every event of a log.jsonl. Lines that are not JSON (a torn
// last line after a crash) are returned joined in err as *LineError values.
func ReadLog(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []Event
	var bad []error
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = append(bad, &LineError{path, line, fmt.Sprintf("not a JSON event: %v", err)})
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read %s: %w", path, err)
	}
	return out, errors.Join(bad...)
}
