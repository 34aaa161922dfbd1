package sql_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/maildist/maildist/internal/directory"
	dirsql "github.com/maildist/maildist/internal/directory/sql"
	"github.com/maildist/maildist/internal/directory/sql/sqltest"
)

// users makes n entries spread over 20 hosts.
func users(n int) []directory.Entry {
	es := make([]directory.Entry, n)
	for i := range es {
		u := fmt.Sprintf("user%06d", i)
		es[i] = directory.Entry{User: u, Home: fmt.Sprintf("/bp%02d/%s", i%20, u), UID: 10000 + i, GID: 100}
	}
	return es
}

// BenchmarkList100k reads a directory of 100,000 users in one pass, as
// the survey does.
//
//	go test -run XXX -bench List100k ./internal/directory/sql/
func BenchmarkList100k(b *testing.B) {
	const n = 100_000
	for _, driver := range drivers {
		b.Run(driver, func(b *testing.B) {
			dsn := sqltest.Database(b, driver)
			sqltest.Fill(b, driver, dsn, users(n), hostOf)
			d, err := dirsql.Open(context.Background(), dirsql.Options{Driver: driver, DSN: dsn, HostOf: hostOf})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.ResetTimer()
			for b.Loop() {
				es, err := d.List(context.Background())
				if err != nil || len(es) != n {
					b.Fatalf("List: %d entries, %v", len(es), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
		})
	}
}

// BenchmarkSwitch is one compare-and-swap switch in a table of 100,000.
func BenchmarkSwitch(b *testing.B) {
	const n = 100_000
	for _, driver := range drivers {
		b.Run(driver, func(b *testing.B) {
			dsn := sqltest.Database(b, driver)
			sqltest.Fill(b, driver, dsn, users(n), hostOf)
			d, err := dirsql.Open(context.Background(), dirsql.Options{Driver: driver, DSN: dsn, HostOf: hostOf})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			homes := map[bool]string{false: "/bp00/user000000", true: "/bp01/user000000"}
			i := 0
			for b.Loop() {
				if err := d.Switch(context.Background(), "user000000", homes[i%2 == 1], homes[i%2 == 0]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
