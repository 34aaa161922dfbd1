package scanbench

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/survey/dovelog"
)

func TestScanFile(t *testing.T) {
	path := os.Getenv("LOG")
	st, _ := os.Stat(path)
	pr := dovelog.NewPairer(dovelog.PairOptions{})
	t0 := time.Now()
	rep, err := dovelog.Scan(context.Background(), []dovelog.Stream{{Name: path, Files: []dovelog.File{{Name: path, Ref: st.ModTime(), Open: func() (io.ReadCloser, error) { return os.Open(path) }}}}}, pr, dovelog.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(t0)
	t.Logf("%d lines %v, %.0f MB/s, stats %+v, kinds %v", rep.Lines, d, float64(st.Size())/1e6/d.Seconds(), pr.Stats(), rep.ByKind)
}
