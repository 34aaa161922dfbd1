package agent_test

import (
	"context"
	"crypto/rand"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/agent"
	"github.com/maildist/maildist/internal/agent/agentapi"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/host"
)

// freezer is a TCP proxy in front of an agent that, once after bytes
// have gone through towards it, stops forwarding anything, as a process
// stopped with SIGSTOP: its connections stay open, new ones are accepted
// by the kernel and never answered.
type freezer struct {
	ln     net.Listener
	to     string
	after  int64
	passed atomic.Int64
	frozen chan struct{}
	once   sync.Once
	gone   chan struct{}
	cut    bool // cut the connections once instead of freezing
}

func newFreezer(t *testing.T, to string, after int64) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, to: strings.TrimPrefix(to, "https://"), after: after, frozen: make(chan struct{}), gone: make(chan struct{})}
	t.Cleanup(func() { close(f.gone); ln.Close() })
	go f.serve()
	return f
}

func (f *freezer) url() string { return "https://" + f.ln.Addr().String() }

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b, err := net.Dial("tcp", f.to)
			if err != nil {
				return
			}
			defer b.Close()
			go f.pipe(b, c, true)
			f.pipe(c, b, false)
			<-f.gone
		}()
	}
}

func (f *freezer) pipe(dst, src net.Conn, toAgent bool) {
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-f.frozen:
			<-f.gone
			return
		default:
		}
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-f.frozen:
				<-f.gone
				return
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
			if toAgent && f.passed.Add(int64(n)) > f.after {
				if f.cut {
					cut := false
					f.once.Do(func() { cut = true })
					if cut {
						dst.Close()
						src.Close()
						return
					}
					continue
				}
				f.once.Do(func() { close(f.frozen) })
			}
		}
		if err != nil {
			return
		}
	}
}

// bigHome writes a home of n MiB that does not compress.
func bigHome(t *testing.T, dir string, mib int) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "cur"), 0o700)
	b := make([]byte, 1<<20)
	for i := 0; i < mib; i++ {
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, "cur", strings.Repeat("m", i+1)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A destination agent that freezes in the middle of a push (its process
// stopped) fails the copy once nothing has moved for the idle period,
// whether the coordinator notices (its progress lines carry no bytes)
// or the source does (the destination takes no byte).
func TestFrozenDestinationFailsTheCopy(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		agentIdle, coordinator time.Duration
		attempts               int
		want                   string
	}{
		{"coordinator", time.Hour, 2 * time.Second, 2, ""},
		{"source", time.Second, 4 * time.Second, 1, "took no byte"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newClusterIdle(t, tt.agentIdle, "bp01", "bp02")
			bigHome(t, tc.real("bp01", "/r1/alice"), 40)
			os.MkdirAll(tc.real("bp02", "/r2/.maildist-staging"), 0o700)
			fz := newFreezer(t, tc.url["bp02"], 1<<20)
			pool := agentapi.NewPool(agentapi.Options{TLS: tc.certs["runner"], RetryFor: 2 * time.Second, Attempts: tt.attempts, Idle: tt.coordinator})
			src := pool.Client(tc.hosts["bp01"])
			dst := pool.Client(&cluster.Host{Name: "bp02", Root: "/r2", Agent: fz.url()})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			_, err := src.CopyTree(ctx, host.Transfer{Src: src, SrcPath: "/r1/alice", Dst: dst, DstPath: "/r2/.maildist-staging/alice", Mode: host.CopyFresh})
			m, _ := os.ReadDir(tc.real("bp02", "/r2/.maildist-staging/alice/cur"))
			t.Logf("%d files at the destination", len(m))
			t.Logf("after %v (%d bytes through the proxy): %v", time.Since(start).Round(time.Millisecond), fz.passed.Load(), err)
			if err == nil {
				t.Fatal("the copy to a frozen agent succeeded")
			}
			if ctx.Err() != nil {
				t.Fatal("the copy to a frozen agent hung")
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			select {
			case <-fz.frozen:
			default:
				t.Error("the proxy never froze")
			}
		})
	}
}

// A push cut in the middle resumes, and reports the bytes of both
// attempts: what was copied, not only what the last attempt sent.
func TestResumedCopyCountsEveryAttempt(t *testing.T) {
	tc := newCluster(t, "bp01", "bp02")
	bigHome(t, tc.real("bp01", "/r1/alice"), 12)
	os.MkdirAll(tc.real("bp02", "/r2/.maildist-staging"), 0o700)
	fz := newFreezer(t, tc.url["bp02"], 6<<20)
	fz.cut = true
	pool := agentapi.NewPool(agentapi.Options{TLS: tc.certs["runner"], RetryFor: 5 * time.Second, Attempts: 3})
	src := pool.Client(tc.hosts["bp01"])
	dst := pool.Client(&cluster.Host{Name: "bp02", Root: "/r2", Agent: fz.url()})
	var progress atomic.Int64
	st, err := src.CopyTree(context.Background(), host.Transfer{Src: src, SrcPath: "/r1/alice", Dst: dst, DstPath: "/r2/.maildist-staging/alice",
		Mode: host.CopyFresh, Progress: func(n int64) { progress.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	if fz.passed.Load() < 12<<20 {
		t.Fatalf("the stream was not cut (%d bytes through)", fz.passed.Load())
	}
	if st.Bytes < 12<<20 || st.Bytes > 18<<20 {
		t.Errorf("bytes %d, want about %d (progress said %d)", st.Bytes, 12<<20, progress.Load())
	}
}

// A push that fails tells why without the ticket it was given, in its
// answer and in the agent's log.
func TestPushErrorsHideTheTicket(t *testing.T) {
	tc := newCluster(t, "bp01")
	var logged strings.Builder
	var mu sync.Mutex
	s, err := agent.New(agent.Options{TLS: tc.certs["bp01"], FSRoot: tc.fsroot["bp01"], Roots: []string{"/r1"}, Version: "test",
		Log: log.New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logged.Write(p) }), "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = tc.certs["bp01"].ServerConfig()
	srv.StartTLS()
	defer srv.Close()
	os.MkdirAll(tc.real("bp01", "/r1/alice"), 0o700)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	dead.Close()
	f := url.Values{"src": {"/r1/alice"}, "dst": {"/r1/x"}, "to": {"https://" + dead.Addr().String()}, "to_name": {"bp02"},
		"ticket": {"SECRETTICKET"}, "mode": {"fresh"}}
	resp, err := tc.as("runner", "bp01").PostForm(srv.URL+"/v1/push", f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(string(b), "error") {
		t.Fatalf("the push did not fail: %s", b)
	}
	if strings.Contains(string(b), "SECRETTICKET") || strings.Contains(logged.String(), "SECRETTICKET") {
		t.Errorf("the ticket shows:\nanswer: %s\nlog: %s", b, logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
