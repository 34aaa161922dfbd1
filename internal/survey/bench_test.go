package survey

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/directory"
)

// BenchmarkLogFile surveys the log $MAILDIST_BENCH_LOG (bench/survey-log
// makes one) as `maildist survey --no-disk` does, the file mapped as the
// command maps it; MB/s is of the file. For a profile of the survey's log
// reading: go test -run '^$' -bench LogFile -cpuprofile cpu.out.
func BenchmarkLogFile(b *testing.B) {
	path := os.Getenv("MAILDIST_BENCH_LOG")
	if path == "" {
		b.Skip("set MAILDIST_BENCH_LOG to a log file")
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	c := &cluster.Cluster{Domain: "example.edu", Hosts: []*cluster.Host{{Name: "bp01", Root: "/bp01", FSRoot: b.TempDir()}}}
	entries := []directory.Entry{{User: "user1", Home: "/bp01/user1"}}
	b.SetBytes(st.Size())
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), Options{Cluster: c, Entries: entries, NoDisk: true, Loc: time.UTC, Logs: []string{path}})
		if err != nil {
			b.Fatal(err)
		}
		if res.Log.ByKind[0]+res.Pairing.Logins == 0 {
			b.Fatal("nothing read")
		}
	}
}
