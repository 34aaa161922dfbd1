package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/sandbox"
)

// agentCluster is a sandbox whose hosts are reached only through agents:
// a `maildist agent` process of the real binary for every host, each on a
// port of 127.0.0.1 with the host's folder as its fsroot, and a
// coordinator config in which no host has an fsroot, only its agent.
type agentCluster struct {
	c      *sandbox.Cluster
	ca     string            // the CA's folder, with every certificate
	config string            // the coordinator's config
	addr   map[string]string // host → host:port of its agent
	url    map[string]string // host → the URL the coordinator uses (a proxy's, maybe)
	procs  map[string]*agentProc
	// agentConfig, if set for a host, is its agent's config instead of
	// the sandbox's.
	agentConfig map[string]string
}

type agentProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgents makes the CA and certificates with `maildist ca`, starts an
// agent for every host of c, and writes the coordinator's config. extra
// is added to the coordinator's config, before the hosts.
func startAgents(t *testing.T, c *sandbox.Cluster, extra string) *agentCluster {
	return startAgentsWith(t, c, extra, nil)
}

// startAgentsWith is startAgents with configs of their own for some
// agents, by host.
func startAgentsWith(t *testing.T, c *sandbox.Cluster, extra string, agentConfig map[string]string) *agentCluster {
	t.Helper()
	ac := &agentCluster{c: c, ca: filepath.Join(t.TempDir(), "ca"), addr: map[string]string{}, url: map[string]string{},
		procs: map[string]*agentProc{}, agentConfig: agentConfig}
	must(t, c.Config, nil, "ca", "init", ac.ca)
	must(t, c.Config, nil, "ca", "issue", ac.ca, "runner", "--role", "coordinator")
	for _, h := range c.Hosts {
		must(t, c.Config, nil, "ca", "issue", ac.ca, h.Name, "--role", "agent", "--key-type", "ed25519")
	}
	for _, h := range c.Hosts {
		ac.start(t, h.Name)
		ac.url[h.Name] = "https://" + ac.addr[h.Name]
	}
	ac.writeConfig(t, extra)
	t.Cleanup(func() {
		for n := range ac.procs {
			ac.kill(t, n)
		}
	})
	return ac
}

// writeConfig writes the coordinator's config: the sandbox's, with each
// host's fsroot replaced by its agent's URL, and [tls].
func (ac *agentCluster) writeConfig(t *testing.T, extra string) {
	t.Helper()
	text, err := os.ReadFile(ac.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, h := range ac.c.Hosts {
		old := fmt.Sprintf("fsroot = %q\n", "cluster/"+h.Name)
		if !strings.Contains(s, old) {
			t.Fatalf("the sandbox config has no %q", old)
		}
		s = strings.Replace(s, old, fmt.Sprintf("agent = %q\n", ac.url[h.Name]), 1)
	}
	tls := fmt.Sprintf("\n[tls]\nca = %q\ncert = %q\nkey = %q\n%s\n", filepath.Join(ac.ca, "ca.crt"),
		filepath.Join(ac.ca, "runner.crt"), filepath.Join(ac.ca, "runner.key"), extra)
	s = strings.Replace(s, "\n[[host]]", tls+"\n[[host]]", 1)
	ac.config = filepath.Join(ac.c.Dir, "coordinator.toml")
	if err := os.WriteFile(ac.config, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(ac.config); err != nil {
		t.Fatalf("the coordinator's config: %v\n%s", err, s)
	}
}

var listening = regexp.MustCompile(`listening on (\S+)`)

// start starts the agent of host name, on its old address if it had one.
func (ac *agentCluster) start(t *testing.T, name string) {
	t.Helper()
	listen := ac.addr[name]
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cmd := exec.Command(bin, "agent", "--listen", listen,
		"--cert", filepath.Join(ac.ca, name+".crt"), "--key", filepath.Join(ac.ca, name+".key"),
		"--ca", filepath.Join(ac.ca, "ca.crt"), "--fsroot", ac.c.FSRoot(name))
	// The agent's own config is the cluster's: its roots, hold, logs.
	conf := ac.c.Config
	if ac.agentConfig[name] != "" {
		conf = ac.agentConfig[name]
	}
	cmd.Env = append(os.Environ(), "MAILDIST_CONFIG="+conf)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	select {
	case a := <-addr:
		ac.addr[name] = a
	case <-p.done:
		t.Fatalf("agent %s exited:\n%s", name, p.log.String())
	case <-time.After(time.Minute):
		t.Fatalf("agent %s did not start:\n%s", name, p.log.String())
	}
	ac.procs[name] = p
}

// kill ends the agent of host name at once (SIGKILL), as a crash would.
func (ac *agentCluster) kill(t *testing.T, name string) {
	p := ac.procs[name]
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	delete(ac.procs, name)
}

// logs is what the agents wrote, for a failed test.
func (ac *agentCluster) logs() string {
	var b strings.Builder
	for n, p := range ac.procs {
		fmt.Fprintf(&b, "== agent %s\n%s", n, p.log.String())
	}
	return b.String()
}

// real is where a host-absolute path of host name lies here.
func (ac *agentCluster) real(name, p string) string { return filepath.Join(ac.c.FSRoot(name), p) }

// leftovers lists staging copies and held homes left on any host, and,
// with trash, what is in the trash.
func (ac *agentCluster) leftovers(t *testing.T, trash bool) []string {
	t.Helper()
	var out []string
	for _, h := range ac.c.Hosts {
		root := ac.real(h.Name, sandbox.HostRoot(h.Name))
		dirs := []string{".maildist-staging"}
		if trash {
			dirs = append(dirs, ".maildist-trash")
		}
		for _, d := range dirs {
			ents, _ := os.ReadDir(filepath.Join(root, d))
			for _, e := range ents {
				out = append(out, h.Name+":"+d+"/"+e.Name())
			}
		}
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".moving") {
				out = append(out, h.Name+":"+e.Name())
			}
		}
	}
	return out
}

// checkHomes checks that every user of before lives where want says (by
// the directory), the home on that host's file system with every file as
// it was.
func (ac *agentCluster) checkHomes(t *testing.T, before map[string]map[string]fileFact, want map[string]string) {
	t.Helper()
	cfg, err := config.Load(ac.config)
	if err != nil {
		t.Fatal(err)
	}
	now := homesNow(t, cfg)
	cl := cfg.Cluster()
	for _, u := range usersOf(ac.c) {
		if _, ok := before[u.Name]; !ok {
			continue
		}
		h, ok := cl.HostOf(now[u.Name])
		if !ok {
			t.Errorf("%s: home %s on no host", u.Name, now[u.Name])
			continue
		}
		if w, ok := want[u.Name]; ok && h.Name != w {
			t.Errorf("%s lives on %s, want %s", u.Name, h.Name, w)
		}
		got := facts(t, ac.real(h.Name, now[u.Name]))
		for p, f := range before[u.Name] {
			if got[p] != f {
				t.Errorf("%s: %s differs: %+v, was %+v", u.Name, p, got[p], f)
			}
		}
		if len(got) != len(before[u.Name]) {
			t.Errorf("%s: %d entries, had %d", u.Name, len(got), len(before[u.Name]))
		}
	}
}

// cutProxy forwards TCP connections to an agent and, once, cuts every
// connection open when the bytes sent upstream pass a mark.
type cutProxy struct {
	ln     net.Listener
	to     string
	cutAt  int64
	up     atomic.Int64
	cut    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed atomic.Bool
}

func newCutProxy(t *testing.T, to string, cutAt int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to, cutAt: cutAt, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		p.closed.Store(true)
		ln.Close()
		p.cutAll()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := u.Write(buf[:n]); werr != nil {
						break
					}
					if p.up.Add(int64(n)) > p.cutAt && p.cut.CompareAndSwap(false, true) {
						p.cutAll()
						return
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			u.Close()
		}()
		go func() {
			io.Copy(c, u)
			c.Close()
			u.Close()
		}()
	}
}

// cutAll closes every connection open now, with a reset.
func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		delete(p.conns, c)
	}
}
