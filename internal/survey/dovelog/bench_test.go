package dovelog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// benchLog makes a mixed Dovecot 2.3 log of about size bytes: logins and
// their ends by session id, failed logins, deliveries and noise.
func benchLog(size, users int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	t := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	type open struct{ user, pid int }
	var live []open
	pid := 100
	for b.Len() < size {
		t = t.Add(time.Duration(r.IntN(400)) * time.Millisecond)
		ts := t.Format(time.Stamp)
		switch k := r.IntN(100); {
		case k < 27 || len(live) == 0:
			pid++
			o := open{r.IntN(users), pid}
			live = append(live, o)
			fmt.Fprintf(&b, "%s imap-login: Info: Login: user=<user%d@example.edu>, method=PLAIN, rip=10.1.2.3, lip=192.0.2.10, mpid=%d, TLS, session=<S%015d>\n", ts, o.user, o.pid, o.pid)
		case k < 52:
			i := r.IntN(len(live))
			o := live[i]
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			fmt.Fprintf(&b, "%s imap(user%d@example.edu)<%d><S%015d>: Info: Logged out in=1402 out=38851 deleted=0 expunged=0 trashed=0 hdr_count=2 hdr_bytes=911 body_count=1 body_bytes=4211\n", ts, o.user, o.pid, o.pid)
		case k < 80:
			fmt.Fprintf(&b, "%s lmtp(user%d@example.edu)<%d><qL2bFk4Qh2YsIAAMN0Uqg>: Info: msgid=<20250301.4711@mx.example.org>: saved mail to INBOX\n", ts, r.IntN(users), pid)
		case k < 90:
			fmt.Fprintf(&b, "%s imap-login: Info: Disconnected: Aborted login (auth failed, 1 attempts in 2 secs): user=<user%d@example.edu>, method=PLAIN, rip=10.1.2.3, lip=192.0.2.10, TLS, session=<Zm9vYmFyYmF6cXV4>\n", ts, r.IntN(users))
		default:
			fmt.Fprintf(&b, "%s auth: Info: passwd-file(unknown,10.9.8.7): unknown user\n", ts)
		}
	}
	return b.Bytes()
}

func BenchmarkParseLine(b *testing.B) {
	data := benchLog(8<<20, 100_000)
	lines := bytes.Split(data, []byte("\n"))
	p := NewParser(time.UTC, time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC))
	var ev Event
	b.SetBytes(int64(len(data)) / int64(len(lines)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Parse(lines[i%len(lines)], &ev)
	}
}

// BenchmarkPair pairs the events of a log (100k users) from the start
// each round; ns/op is per event.
func BenchmarkPair(b *testing.B) {
	data := benchLog(32<<20, 100_000)
	p := NewParser(time.UTC, time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC))
	var evs []Event
	for _, l := range bytes.Split(data, []byte("\n")) {
		var ev Event
		p.Parse(l, &ev)
		if ev.Kind == Login || ev.Kind == End {
			evs = append(evs, ev)
		}
	}
	b.ResetTimer()
	for n := 0; n < b.N; {
		pr := NewPairer(PairOptions{UsersHint: 100_000})
		for i := range evs {
			pr.Add(0, &evs[i])
		}
		n += len(evs)
	}
}

func BenchmarkScan(b *testing.B) {
	data := benchLog(64<<20, 1_000_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pr := NewPairer(PairOptions{})
		f := File{Name: "bench", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
		if _, err := Scan(context.Background(), []Stream{{Name: "bench", Files: []File{f}}}, pr, ScanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanFile scans the file $MAILDIST_BENCH_LOG (bench/survey-log
// makes one) as one stream, read with plain reads; MB/s is of the file.
func BenchmarkScanFile(b *testing.B) {
	path := os.Getenv("MAILDIST_BENCH_LOG")
	if path == "" {
		b.Skip("set MAILDIST_BENCH_LOG to a log file")
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for i := 0; i < b.N; i++ {
		pr := NewPairer(PairOptions{})
		f := File{Name: path, Ref: st.ModTime(), Open: func() (io.ReadCloser, error) { return os.Open(path) }}
		if _, err := Scan(context.Background(), []Stream{{Name: path, Files: []File{f}}}, pr, ScanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
