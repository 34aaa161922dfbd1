package agent_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/agent"
	"github.com/maildist/maildist/internal/agent/agentapi"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// testCluster is two or three agents on loopback, each with a file system
// of its own, and the certificates of a coordinator and of strangers.
type testCluster struct {
	ca      string
	certs   map[string]*pki.Loaded // by name: bp01..bp03, runner, and "other" from another CA
	fsroot  map[string]string
	url     map[string]string
	pool    *agentapi.Pool
	clients map[string]*agentapi.Client
	hosts   map[string]*cluster.Host
}

func issue(t *testing.T, dir, name, role string) *pki.Loaded {
	t.Helper()
	crt, key, err := pki.Issue(dir, pki.IssueOptions{Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	l, err := pki.Load(pki.Files{CA: filepath.Join(dir, pki.CACert), Cert: crt, Key: key}, "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newCluster(t *testing.T, names ...string) *testCluster {
	t.Helper()
	return newClusterIdle(t, 0, names...)
}

// newClusterIdle is newCluster with agents that give up a stream that
// moves nothing for idle (0: their default).
func newClusterIdle(t *testing.T, idle time.Duration, names ...string) *testCluster {
	t.Helper()
	tc := &testCluster{ca: t.TempDir(), certs: map[string]*pki.Loaded{}, fsroot: map[string]string{}, url: map[string]string{},
		clients: map[string]*agentapi.Client{}, hosts: map[string]*cluster.Host{}}
	if err := pki.Init(tc.ca, "", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	var roots []string
	for i := range names {
		roots = append(roots, "/r"+string(rune('1'+i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, n := range names {
		tc.certs[n] = issue(t, tc.ca, n, pki.RoleAgent)
		fsr := t.TempDir()
		os.MkdirAll(filepath.Join(fsr, roots[i]), 0o711)
		tc.fsroot[n] = fsr
		// r9 is the root of a host that is a folder of the coordinator.
		s, err := agent.New(agent.Options{TLS: tc.certs[n], FSRoot: fsr, Roots: append(roots, "/r9"), Version: "test", Log: log.New(io.Discard, "", 0),
			Idle: idle})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(ctx, ln)
		tc.url[n] = "https://" + ln.Addr().String()
		tc.hosts[n] = &cluster.Host{Name: n, Root: roots[i], Agent: tc.url[n]}
	}
	tc.certs["runner"] = issue(t, tc.ca, "runner", pki.RoleCoordinator)
	other := t.TempDir()
	pki.Init(other, "", "", time.Now())
	tc.certs["other"] = issue(t, other, "runner", pki.RoleCoordinator)
	tc.pool = agentapi.NewPool(agentapi.Options{TLS: tc.certs["runner"], RetryFor: 2 * time.Second, Attempts: 2})
	for _, n := range names {
		tc.clients[n] = tc.pool.Client(tc.hosts[n])
	}
	return tc
}

// as is an HTTP client presenting the certificate of who to the agent of
// host name.
func (tc *testCluster) as(who, name string) *http.Client {
	return &http.Client{Transport: proto.NewTransport(tc.certs[who], name)}
}

func (tc *testCluster) real(name, p string) string { return filepath.Join(tc.fsroot[name], p) }

// snapshot is every name under a host's file system with its metadata
// and content hash.
func (tc *testCluster) snapshot(t *testing.T, name string) *tree.Manifest {
	t.Helper()
	m, err := tree.Scan(context.Background(), tc.fsroot[name], tree.ScanOptions{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func unchanged(t *testing.T, what string, before, after *tree.Manifest) {
	t.Helper()
	if ds := tree.Compare(before, after, tree.CompareOptions{}); len(ds) > 0 {
		t.Errorf("%s changed the host: %v", what, ds[0])
	}
}

func makeHome(t *testing.T, dir string) {
	t.Helper()
	for p, body := range map[string]string{
		"cur/1.a:2,S": "From a\n", "cur/2.b:2,RS": strings.Repeat("x", 300000), "new/3 c\xff": "", ".Sent/cur/4.d:2,S": "sent",
	} {
		f := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Link(filepath.Join(dir, "cur/1.a:2,S"), filepath.Join(dir, "cur/1.link"))
	os.Symlink("cur", filepath.Join(dir, "link"))
}

func scanBoth(t *testing.T, a host.Host, ap string, b host.Host, bp string) []tree.Diff {
	t.Helper()
	ctx := context.Background()
	ma, err := a.Scan(ctx, ap, true)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.Scan(ctx, bp, true)
	if err != nil {
		t.Fatal(err)
	}
	return tree.Compare(ma, mb, tree.CompareOptions{IgnoreOwners: os.Geteuid() != 0})
}

// A tree goes from agent to agent, from here to an agent, and from an
// agent to here, exactly.
func TestCopyThroughAgents(t *testing.T) {
	tc := newCluster(t, "bp01", "bp02")
	ctx := context.Background()
	makeHome(t, tc.real("bp01", "/r1/alice"))
	c1, c2 := tc.clients["bp01"], tc.clients["bp02"]
	cp := &host.LocalCopier{}
	if _, err := c2.MkdirAll(ctx, "/r2/.maildist-staging", 0o700, 0, 0); err != nil {
		t.Fatal(err)
	}
	st, err := cp.Copy(ctx, c1, "/r1/alice", c2, "/r2/.maildist-staging/alice.1", host.CopyFresh)
	if err != nil {
		t.Fatal(err)
	}
	if ds := scanBoth(t, c1, "/r1/alice", c2, "/r2/.maildist-staging/alice.1"); len(ds) > 0 {
		t.Fatalf("agent to agent: %v", ds)
	}
	if st.Files != 4 || st.HardLinks != 1 || st.Symlinks != 1 {
		t.Errorf("stats %+v", st)
	}
	// A local host under a folder of this machine.
	lroot := t.TempDir()
	os.MkdirAll(filepath.Join(lroot, "r9/.maildist-staging"), 0o700)
	c := &cluster.Cluster{Hosts: []*cluster.Host{tc.hosts["bp01"], tc.hosts["bp02"], {Name: "bp03", Root: "/r9", FSRoot: lroot}}}
	l := host.NewLocal(c.Hosts[2], c)
	if _, err := cp.Copy(ctx, c1, "/r1/alice", l, "/r9/.maildist-staging/alice.2", host.CopyFresh); err != nil {
		t.Fatal(err)
	}
	if ds := scanBoth(t, c1, "/r1/alice", l, "/r9/.maildist-staging/alice.2"); len(ds) > 0 {
		t.Fatalf("agent to here: %v", ds)
	}
	if _, err := cp.Copy(ctx, l, "/r9/.maildist-staging/alice.2", c2, "/r2/.maildist-staging/alice.3", host.CopyFresh); err != nil {
		t.Fatal(err)
	}
	if ds := scanBoth(t, l, "/r9/.maildist-staging/alice.2", c2, "/r2/.maildist-staging/alice.3"); len(ds) > 0 {
		t.Fatalf("here to agent: %v", ds)
	}
	// Fresh onto an existing copy is refused, sync brings it up to date.
	os.WriteFile(tc.real("bp01", "/r1/alice/cur/5.e:2,"), []byte("more"), 0o600)
	if _, err := cp.Copy(ctx, c1, "/r1/alice", c2, "/r2/.maildist-staging/alice.1", host.CopyFresh); !errors.Is(err, fs.ErrExist) {
		t.Errorf("fresh onto a copy: %v", err)
	}
	if st, err := cp.Copy(ctx, c1, "/r1/alice", c2, "/r2/.maildist-staging/alice.1", host.CopySync); err != nil || st.Files != 1 {
		t.Errorf("sync: %+v %v", st, err)
	}
	// Errors keep their meaning across the network.
	if _, err := c2.Lstat(ctx, "/r2/nobody"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lstat of a missing path: %v", err)
	}
	if err := c2.Rename(ctx, "/r2/.maildist-staging/alice.1", "/r2/.maildist-staging/alice.3"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("rename onto an existing path: %v", err)
	}
}

// Requests without a certificate of the CA, or from an agent asking what
// only a coordinator may, or naming paths outside the roots, are refused
// and change nothing.
func TestRefusals(t *testing.T) {
	tc := newCluster(t, "bp01", "bp02", "bp03")
	ctx := context.Background()
	makeHome(t, tc.real("bp01", "/r1/alice"))
	os.MkdirAll(tc.real("bp02", "/r2/.maildist-staging"), 0o700)
	before1 := tc.snapshot(t, "bp01")

	call := func(who, method, target string, form url.Values) (int, proto.Error) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequestWithContext(ctx, method, tc.url["bp01"]+target, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := tc.as(who, "bp01").Do(req)
		if err != nil {
			return 0, proto.Error{Message: err.Error()}
		}
		defer resp.Body.Close()
		var e proto.Error
		b, _ := io.ReadAll(resp.Body)
		json := string(b)
		if resp.StatusCode != 200 {
			e.Message = json
			if i := strings.Index(json, `"code":"`); i >= 0 {
				e.Code = strings.SplitN(json[i+8:], `"`, 2)[0]
			}
		}
		return resp.StatusCode, e
	}

	t.Run("no client certificate", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(tc.url["bp01"] + "/v1/info")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("answered %s", resp.Status)
		}
	})
	t.Run("another CA", func(t *testing.T) {
		// The client trusts the agent; the agent must not trust it.
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true,
			Certificates: []tls.Certificate{tc.certs["other"].Pair}}}}
		resp, err := c.PostForm(tc.url["bp01"]+"/v1/fs/rename", url.Values{"path": {"/r1/alice"}, "to": {"/r1/alice.moving"}})
		if err == nil {
			resp.Body.Close()
			t.Fatalf("answered %s", resp.Status)
		}
	})
	t.Run("agent asks for a coordinator's work", func(t *testing.T) {
		for _, c := range []struct {
			target string
			form   url.Values
		}{
			{"/v1/hold", url.Values{"op": {"start"}, "kind": {"rename"}, "user": {"alice"}, "home": {"/r1/alice"}}},
			{"/v1/fs/rename", url.Values{"path": {"/r1/alice"}, "to": {"/r1/bob"}}}, // a commit is a rename
			{"/v1/fs/removeall", url.Values{"path": {"/r1/.maildist-trash/x"}}},     // a purge
			{"/v1/flush", url.Values{}},
			{"/v1/imports", url.Values{"from": {"bp02"}, "src": {"/r2/x"}, "dst": {"/r1/.maildist-staging/x"}, "mode": {"fresh"}}},
			{"/v1/push", url.Values{"src": {"/r1/alice"}}},
		} {
			if code, e := call("bp02", "POST", c.target, c.form); code != 403 || e.Code != proto.CodeForbidden {
				t.Errorf("%s by an agent: %d %v", c.target, code, e)
			}
		}
		if code, _ := call("bp02", "GET", "/v1/fs/scan?path=/r1/alice", nil); code != 403 {
			t.Errorf("scan by an agent: %d", code)
		}
	})
	t.Run("paths outside the roots", func(t *testing.T) {
		for _, p := range []string{"/r1/../etc", "/etc/passwd", "r1/alice", "/r1/alice/../../etc", "/", "/r1//alice", "/r10"} {
			code, e := call("runner", "GET", "/v1/fs/lstat?"+url.Values{"path": {p}}.Encode(), nil)
			if code != 400 || e.Code != proto.CodeOutside {
				t.Errorf("lstat %q: %d %v", p, code, e)
			}
		}
		if code, e := call("runner", "POST", "/v1/fs/rename", url.Values{"path": {"/r1/alice"}, "to": {"/tmp/alice"}}); code != 400 || e.Code != proto.CodeOutside {
			t.Errorf("rename out: %d %v", code, e)
		}
		if code, e := call("runner", "POST", "/v1/fs/removeall", url.Values{"path": {"/r1/alice"}}); code != 403 {
			t.Errorf("remove a home whole: %d %v", code, e)
		}
	})
	unchanged(t, "refused requests", before1, tc.snapshot(t, "bp01"))

	t.Run("tickets", func(t *testing.T) {
		announce := func(src, dst string) string {
			var tk proto.Ticket
			req := url.Values{"from": {"bp01"}, "src": {src}, "dst": {dst}, "mode": {"fresh"}}
			resp, err := tc.as("runner", "bp02").PostForm(tc.url["bp02"]+"/v1/imports", req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("announce: %v %v", resp, err)
			}
			defer resp.Body.Close()
			if err := jsonDecode(resp.Body, &tk); err != nil {
				t.Fatal(err)
			}
			return tk.Ticket
		}
		m, _ := tree.Scan(ctx, tc.real("bp01", "/r1/alice"), tree.ScanOptions{})
		var planned string // the data token of the last plan
		plan := func(who, tk, src, dst string) int {
			var b strings.Builder
			m.WriteTo(&b)
			q := url.Values{"ticket": {tk}, "src": {src}, "dst": {dst}}
			resp, err := tc.as(who, "bp02").Post(tc.url["bp02"]+"/v1/imports/plan?"+q.Encode(), "text/plain", strings.NewReader(b.String()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			planned = resp.Header.Get(proto.TokenHeader)
			return resp.StatusCode
		}
		data := func(who, tok string) int {
			resp, err := tc.as(who, "bp02").Post(tc.url["bp02"]+"/v1/imports/data?"+url.Values{"token": {tok}}.Encode(), "application/octet-stream", strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		tk := announce("/r1/alice", "/r2/.maildist-staging/alice.0")
		if code := plan("bp03", tk, "/r1/alice", "/r2/.maildist-staging/alice.0"); code != 403 {
			t.Errorf("another agent's push: %d", code)
		}
		// Another's refusal does not spend the ticket, nor the token.
		if code := plan("bp01", tk, "/r1/alice", "/r2/.maildist-staging/alice.0"); code != 200 {
			t.Errorf("the right push after another agent presented its ticket: %d", code)
		}
		if code := data("bp03", planned); code != 403 {
			t.Errorf("another agent's stream: %d", code)
		}
		if code := data("bp01", planned); code == 403 {
			t.Errorf("the planner's stream after another agent presented its token: %d", code)
		}
		tk = announce("/r1/alice", "/r2/.maildist-staging/alice.1")
		if code := plan("bp01", tk, "/r1/bob", "/r2/.maildist-staging/bob.1"); code != 403 {
			t.Errorf("a ticket for another user: %d", code)
		}
		if code := plan("bp01", tk, "/r1/alice", "/r2/.maildist-staging/alice.1"); code != 403 {
			t.Errorf("a ticket used twice (after a refusal): %d", code)
		}
		tk = announce("/r1/alice", "/r2/.maildist-staging/alice.1")
		if code := plan("bp01", tk, "/r1/alice", "/r2/.maildist-staging/alice.1"); code != 200 {
			t.Errorf("the right push: %d", code)
		}
		if code := plan("bp01", tk, "/r1/alice", "/r2/.maildist-staging/alice.1"); code != 403 {
			t.Errorf("a ticket used twice: %d", code)
		}
	})

	t.Run("symlinks planted in staging", func(t *testing.T) {
		outside := t.TempDir()
		os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o600)
		os.RemoveAll(tc.real("bp02", "/r2/.maildist-staging"))
		os.MkdirAll(tc.real("bp02", "/r2/.maildist-staging"), 0o700)
		os.Symlink(outside, tc.real("bp02", "/r2/.maildist-staging/alice.9"))
		os.Symlink(outside, tc.real("bp02", "/r2/.maildist-staging/via"))
		before := tc.snapshot(t, "bp02")
		c1, c2 := tc.clients["bp01"], tc.clients["bp02"]
		cp := &host.LocalCopier{}
		if _, err := cp.Copy(ctx, c1, "/r1/alice", c2, "/r2/.maildist-staging/alice.9", host.CopySync); !errors.Is(err, proto.ErrNotFolder) {
			t.Errorf("copy into a symlink: %v", err)
		}
		if _, err := cp.Copy(ctx, c1, "/r1/alice", c2, "/r2/.maildist-staging/via/alice.1", host.CopyFresh); !errors.Is(err, proto.ErrNotFolder) {
			t.Errorf("copy through a symlink: %v", err)
		}
		if err := c2.RemoveAll(ctx, "/r2/.maildist-staging/via/keep"); !errors.Is(err, proto.ErrNotFolder) {
			t.Errorf("remove through a symlink: %v", err)
		}
		if err := c2.WriteFile(ctx, "/r2/.maildist-staging/via/new", []byte("x"), 0o600, -1, -1); !errors.Is(err, proto.ErrNotFolder) {
			t.Errorf("write through a symlink: %v", err)
		}
		if _, err := c2.ReadFile(ctx, "/r2/.maildist-staging/alice.9"); err == nil {
			t.Error("read of a symlink")
		}
		unchanged(t, "symlinked staging", before, tc.snapshot(t, "bp02"))
		if ents, _ := os.ReadDir(outside); len(ents) != 1 {
			t.Errorf("written outside: %v", ents)
		}
	})
}

// Metrics are there for any certificate of the CA.
func TestMetrics(t *testing.T) {
	tc := newCluster(t, "bp01")
	resp, err := tc.as("bp01", "bp01").Get(tc.url["bp01"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "maildist_agent_held_users") {
		t.Fatalf("%s\n%s", resp.Status, b)
	}
}

// A GET of a path that is not there is how a move asks whether a stub,
// a held home or a leftover exists: the agent neither logs it nor counts
// it as an error. A request refused for its role is both.
func TestNotExistIsAnAnswer(t *testing.T) {
	tc := newCluster(t, "bp01")
	var logged strings.Builder
	s, err := agent.New(agent.Options{TLS: tc.certs["bp01"], FSRoot: tc.fsroot["bp01"], Roots: []string{"/r1"}, Version: "test",
		Log: log.New(&logged, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ctx, ln)
	u := "https://" + ln.Addr().String()
	c := agentapi.NewPool(agentapi.Options{TLS: tc.certs["runner"], RetryFor: time.Second, Attempts: 1}).
		Client(&cluster.Host{Name: "bp01", Root: "/r1", Agent: u})
	if _, err := c.Lstat(ctx, "/r1/nobody"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lstat of a missing path: %v", err)
	}
	// done removes the folders above a stub while they are empty.
	os.MkdirAll(filepath.Join(tc.fsroot["bp01"], "r1/nonempty/stub"), 0o755)
	if err := c.Remove(ctx, "/r1/nonempty"); err == nil {
		t.Fatal("removed a folder that is not empty")
	}
	tc.certs["bp02"] = issue(t, tc.ca, "bp02", pki.RoleAgent)
	resp, err := tc.as("bp02", "bp01").Get(u + "/v1/homes?root=/r1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an agent asking for homes: %s", resp.Status)
	}
	if strings.Contains(logged.String(), "nobody") || strings.Contains(logged.String(), "nonempty") {
		t.Errorf("the missing path was logged:\n%s", logged.String())
	}
	if !strings.Contains(logged.String(), "refused GET /v1/homes to bp02") {
		t.Errorf("the refusal was not logged:\n%s", logged.String())
	}
	resp, err = tc.as("runner", "bp01").Get(u + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{
		`maildist_agent_requests_total{code="not-exist",endpoint="lstat"} 1`,
		`maildist_agent_errors_total{code="forbidden",endpoint="homes"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `maildist_agent_errors_total{code="not-exist"`) || strings.Contains(m, `endpoint="remove"} 1`) && strings.Contains(m, `maildist_agent_errors_total{code="exist",endpoint="remove"`) {
		t.Errorf("a missing path counted as an error")
	}
}

// A cluster-wide check fails closed: an agent that cannot be reached or
// does not answer in time makes the answer an error.
func TestActivityFailsClosed(t *testing.T) {
	tc := newCluster(t, "bp01")
	ctx := context.Background()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, never answers
		}
	}()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "https://" + dead.Addr().String()
	dead.Close()
	a := &agentapi.Activity{Timeout: 500 * time.Millisecond, Agents: map[string]*agentapi.Client{
		"bp01": tc.clients["bp01"],
	}}
	if ss, err := a.Active(ctx, "alice", 5000, []string{"bp01"}); err != nil || len(ss) != 0 {
		t.Fatalf("a live agent: %v %v", ss, err)
	}
	a.Agents["slow"] = tc.pool.Client(&cluster.Host{Name: "slow", Root: "/r8", Agent: "https://" + silent.Addr().String()})
	a.Agents["dead"] = tc.pool.Client(&cluster.Host{Name: "dead", Root: "/r9", Agent: deadURL})
	start := time.Now()
	_, err = a.Active(ctx, "alice", 5000, []string{"bp01", "slow", "dead"})
	if err == nil || !strings.Contains(err.Error(), "slow") || !strings.Contains(err.Error(), "dead") {
		t.Fatalf("silent and dead agents: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// A coordinator's flush and queue run the agent's own commands; any other
// command is refused before it leaves the coordinator. The hold runs on
// the agent too.
func TestAgentRunsItsOwnCommands(t *testing.T) {
	ca := t.TempDir()
	pki.Init(ca, "", "", time.Now())
	me := issue(t, ca, "bp01", pki.RoleAgent)
	runner := issue(t, ca, "runner", pki.RoleCoordinator)
	fsr := t.TempDir()
	os.MkdirAll(filepath.Join(fsr, "r1/alice/cur"), 0o700)
	os.Chmod(filepath.Join(fsr, "r1"), 0o711)
	flushed := filepath.Join(t.TempDir(), "flushed")
	cfg := &config.Config{HomeLayout: "{root}/{user}", Activity: config.Activity{Source: "none"},
		Delivery: config.Delivery{Hold: "rename", Flush: []string{"sh", "-c", "echo here > " + flushed}, Queue: []string{"echo", "alice@example.edu"}},
		Hosts:    []*cluster.Host{{Name: "bp01", Root: "/r1"}}}
	s, err := agent.New(agent.Options{TLS: me, FSRoot: fsr, Config: cfg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)
	// The coordinator's config names other commands: they are the site's
	// words for "flush" and "queue", each host runs its own.
	pool := agentapi.NewPool(agentapi.Options{TLS: runner, Flush: []string{"sendmail", "-q"}, Queue: []string{"mailq"}})
	c := pool.Client(&cluster.Host{Name: "bp01", Root: "/r1", Agent: "https://" + ln.Addr().String()})
	if _, err := c.Run(ctx, []string{"sendmail", "-q"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(flushed); string(b) != "here\n" {
		t.Errorf("flush did not run: %q", b)
	}
	out, err := c.Run(ctx, []string{"mailq"})
	if err != nil || string(out) != "alice@example.edu\n" {
		t.Errorf("queue: %q %v", out, err)
	}
	if _, err := c.Run(ctx, []string{"rm", "-rf", "/"}); err == nil {
		t.Error("an arbitrary command was run")
	}
	h := &agentapi.Hold{Local: &delivery.Rename{}}
	if err := h.Check(ctx, c, "alice", "/r1/alice", 5000, 5000); err != nil {
		t.Fatal(err)
	}
	if held, err := h.Start(ctx, c, "alice", "/r1/alice"); err != nil || held != "/r1/alice.moving" {
		t.Fatalf("start: %q %v", held, err)
	}
	if _, err := os.Stat(filepath.Join(fsr, "r1/alice.moving/cur")); err != nil {
		t.Errorf("not held on the agent's file system: %v", err)
	}
	if err := h.Undo(ctx, c, "alice", "/r1/alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fsr, "r1/alice/cur")); err != nil {
		t.Errorf("not released: %v", err)
	}
	cmdHold := &agentapi.Hold{Local: &delivery.Command{}}
	if _, err := cmdHold.Start(ctx, c, "alice", "/r1/alice"); err == nil || !strings.Contains(err.Error(), "hold_command") {
		t.Errorf("a command hold without the agent's commands: %v", err)
	}
}

// TestLogsReadThroughAgent: the Dovecot logs an agent's config names are
// listed with their rotations and read as text, gzip told by its first
// bytes as for logs read here (a rotation gzipped under a plain name), and
// a .gz that is not gzip is an error naming it.
func TestLogsReadThroughAgent(t *testing.T) {
	fsr, logs := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(fsr, "r1"), 0o711)
	lines := map[string]string{
		"mail.log":   "Jan  3 10:00:00 h dovecot: imap-login: Login: user=<a>\n",
		"mail.log.1": "Jan  2 10:00:00 h dovecot: imap-login: Login: user=<b>\n",
		"mail.log.2": "Jan  1 10:00:00 h dovecot: imap-login: Login: user=<c>\n",
	}
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	os.WriteFile(filepath.Join(logs, "mail.log"), []byte(lines["mail.log"]), 0o644)
	os.WriteFile(filepath.Join(logs, "mail.log.1"), gz(lines["mail.log.1"]), 0o644) // gzip, plain name
	os.WriteFile(filepath.Join(logs, "mail.log.2.gz"), gz(lines["mail.log.2"]), 0o644)

	read := func(logGlob string) (map[string]string, error) {
		t.Helper()
		tc := newCluster(t)
		tc.certs["bp01"] = issue(t, tc.ca, "bp01", pki.RoleAgent)
		cfg := &config.Config{HomeLayout: "{root}/{user}", Survey: config.Survey{Logs: []string{logGlob}},
			Activity: config.Activity{Source: "none"}, Delivery: config.Delivery{Hold: "rename", Stub: "none"},
			Hosts: []*cluster.Host{{Name: "bp01", Root: "/r1"}}}
		s, err := agent.New(agent.Options{TLS: tc.certs["bp01"], FSRoot: fsr, Config: cfg, Version: "test", Log: log.New(io.Discard, "", 0)})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go s.Serve(ctx, ln)
		pool := agentapi.NewPool(agentapi.Options{TLS: tc.certs["runner"], RetryFor: time.Second, Attempts: 1})
		streams, _, err := pool.Client(&cluster.Host{Name: "bp01", Root: "/r1", Agent: "https://" + ln.Addr().String()}).LogStreams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, st := range streams {
			for _, f := range st.Files {
				rc, err := f.Open()
				if err != nil {
					return got, err
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return got, err
				}
				got[filepath.Base(strings.TrimPrefix(f.Name, "bp01:"))] = string(b)
			}
		}
		return got, nil
	}
	got, err := read(filepath.Join(logs, "mail.log*"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mail.log": lines["mail.log"], "mail.log.1": lines["mail.log.1"], "mail.log.2.gz": lines["mail.log.2"]}
	for name, text := range want {
		if got[name] != text {
			t.Errorf("%s read through the agent as %q, want %q", name, got[name], text)
		}
	}

	os.WriteFile(filepath.Join(logs, "fake.log.gz"), []byte(lines["mail.log"]), 0o644)
	if _, err := read(filepath.Join(logs, "fake.log*")); err == nil || !strings.Contains(err.Error(), "fake.log.gz: named .gz, but not gzip") {
		t.Errorf("a .gz that is not gzip: %v", err)
	}
}

// TestHomesRefusesASymlinkedRoot: a root planted as a symlink on the
// host's file system is refused, as for every other path, not listed.
func TestHomesRefusesASymlinkedRoot(t *testing.T) {
	tc := newCluster(t, "bp01", "bp02")
	outside := t.TempDir()
	os.Mkdir(filepath.Join(outside, "secret"), 0o700)
	if err := os.Symlink(outside, tc.real("bp01", "/r2")); err != nil {
		t.Fatal(err)
	}
	resp, err := tc.as("runner", "bp01").Get(tc.url["bp01"] + "/v1/homes?root=/r2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 || strings.Contains(string(b), "secret") || !strings.Contains(string(b), "not a real folder") {
		t.Errorf("homes of a symlinked root: %s %s", resp.Status, b)
	}
}
