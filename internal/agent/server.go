package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// Options configure an agent.
type Options struct {
	// TLS is the agent's certificate (role agent) and the CA it trusts.
	TLS *pki.Loaded
	// FSRoot is where this host's file system is seen: "/" on a real
	// host, a folder in a sandbox.
	FSRoot string
	// Roots are the cluster's roots; every path a request names must be
	// one of them or below one. From the config's hosts, and/or given.
	Roots []string
	// Config, if set, gives the roots, the hold, flush and queue commands,
	// the activity source and the survey's logs of this host.
	Config *config.Config
	// Version is reported by /v1/info.
	Version string
	// Log, if set, gets a line for each request that failed, and for
	// holds and transfers.
	Log *log.Logger
	// Idle is how long a stream to or from another agent may go without
	// a byte moving before it is given up (default a minute).
	Idle time.Duration
}

// Server is an agent: a host.Local under FSRoot, served over HTTPS.
type Server struct {
	opt      Options
	name     string
	local    *host.Local
	roots    []string
	cfg      *config.Config
	activity activity.Source
	metrics  *metrics
	imports  *imports
	started  time.Time

	peersMu sync.Mutex
	peers   map[string]*http.Client // other agents, by name, for pushes

	holdsMu sync.Mutex
	holds   map[string]time.Time // user → when held, for the hold-time metric
}

// New makes an agent from its options.
func New(opt Options) (*Server, error) {
	if opt.TLS == nil || opt.TLS.Self.Role != pki.RoleAgent {
		return nil, errors.New("an agent needs a certificate with the agent role")
	}
	fsroot, err := filepath.Abs(opt.FSRoot)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(fsroot); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("fsroot %s is not a folder", fsroot)
	}
	roots := append([]string(nil), opt.Roots...)
	cfg := opt.Config
	if cfg == nil {
		// Defaults for what a config would say: no hold commands, no
		// logs, and an activity source that looks at processes.
		cfg = &config.Config{HomeLayout: "{root}/{user}",
			Activity: config.Activity{Source: "proc", Services: []string{"imap", "pop3", "imapd", "ipop3d"}, Doveadm: []string{"doveadm"}, Timeout: 10 * time.Second},
			Delivery: config.Delivery{Hold: "rename", Stub: "none"}}
	} else {
		for _, h := range cfg.Hosts {
			roots = append(roots, h.Root)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("the agent knows no roots: give --config (the cluster's hosts) or --root")
	}
	for _, r := range roots {
		if !strings.HasPrefix(r, "/") || path.Clean(r) != r || r == "/" {
			return nil, fmt.Errorf("root %q: want a clean absolute path other than /", r)
		}
	}
	src, err := activity.New(cfg.Activity, cfg.Domain, host.RunCommand)
	if err != nil {
		return nil, err
	}
	name := opt.TLS.Self.Name
	c := &cluster.Cluster{Domain: cfg.Domain, HomeLayout: cfg.HomeLayout}
	for i, r := range roots {
		c.Hosts = append(c.Hosts, &cluster.Host{Name: fmt.Sprintf("root%d", i), Root: r})
	}
	s := &Server{
		opt: opt, name: name, roots: roots, cfg: cfg, activity: src,
		local:   host.NewLocal(&cluster.Host{Name: name, FSRoot: fsroot}, c),
		metrics: newMetrics(),
		imports: newImports(),
		started: time.Now(),
		peers:   map[string]*http.Client{},
		holds:   map[string]time.Time{},
	}
	// The coordinator hashes both trees of a move after its precopy and
	// again in its verify, under the hold: the second finds the hashes of
	// what did not change since (see tree.Cache).
	s.local.Cache = tree.NewCache()
	s.opt.FSRoot = fsroot
	if s.opt.Idle <= 0 {
		s.opt.Idle = time.Minute
	}
	return s, nil
}

// Name is the agent's host name, from its certificate.
func (s *Server) Name() string { return s.name }

func (s *Server) logf(format string, args ...any) {
	if s.opt.Log != nil {
		s.opt.Log.Print(proto.Redact(fmt.Sprintf(format, args...)))
	}
}

// Serve serves HTTPS with mutual TLS on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.opt.TLS.ServerConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// HTTP/1.1 only: see pki.ServerConfig.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(discardTLSNoise{s}, "", 0),
		BaseContext:  func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(sctx)
			cancel()
		case <-done:
		}
	}()
	err := srv.ServeTLS(ln, "", "")
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// discardTLSNoise keeps refused handshakes (no certificate, another CA)
// out of the log unless asked, and counts them.
type discardTLSNoise struct{ s *Server }

func (d discardTLSNoise) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "TLS handshake error") {
		d.s.metrics.refused.Inc()
	}
	d.s.logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// who a route lets in.
type access int

const (
	coordinatorOnly access = iota
	anyone                 // any certificate of the CA
	ticketHolder           // any certificate of the CA; the handler checks a ticket
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, id pki.Identity) error

// Handler is the agent's API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	add := func(pattern, name string, a access, h handlerFunc) {
		mux.Handle(pattern, s.wrap(name, a, h))
	}
	add("GET /v1/info", "info", anyone, s.info)
	add("GET /metrics", "metrics", anyone, s.serveMetrics)

	add("GET /v1/fs/lstat", "lstat", coordinatorOnly, s.lstat)
	add("GET /v1/fs/read", "read", coordinatorOnly, s.readFile)
	add("GET /v1/fs/free", "free", coordinatorOnly, s.free)
	add("GET /v1/fs/usage", "usage", coordinatorOnly, s.usage)
	add("GET /v1/fs/open", "open", coordinatorOnly, s.openFiles)
	add("GET /v1/fs/scan", "scan", coordinatorOnly, s.scan)
	add("POST /v1/fs/rename", "rename", coordinatorOnly, s.rename)
	add("POST /v1/fs/mkdir", "mkdir", coordinatorOnly, s.mkdir)
	add("POST /v1/fs/remove", "remove", coordinatorOnly, s.remove)
	add("POST /v1/fs/removeall", "removeall", coordinatorOnly, s.removeAll)
	add("POST /v1/fs/write", "write", coordinatorOnly, s.writeFile)

	add("POST /v1/hold", "hold", coordinatorOnly, s.hold)
	add("GET /v1/activity", "activity", coordinatorOnly, s.sessions)
	add("POST /v1/flush", "flush", coordinatorOnly, s.flush)
	add("GET /v1/queue", "queue", coordinatorOnly, s.queue)
	add("GET /v1/homes", "homes", coordinatorOnly, s.homes)
	add("GET /v1/survey/check", "survey-check", coordinatorOnly, s.surveyCheck)
	add("GET /v1/survey/usage", "survey-usage", coordinatorOnly, s.surveyUsage)
	add("GET /v1/logs", "logs", coordinatorOnly, s.logs)
	add("GET /v1/logs/read", "log-read", coordinatorOnly, s.logRead)

	add("POST /v1/imports", "announce", coordinatorOnly, s.announce)
	add("POST /v1/imports/plan", "import-plan", ticketHolder, s.importPlan)
	add("POST /v1/imports/data", "import-data", ticketHolder, s.importData)
	add("POST /v1/push", "push", coordinatorOnly, s.push)
	add("POST /v1/export", "export", coordinatorOnly, s.export)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, proto.Error{Code: proto.CodeBadRequest, Message: fmt.Sprintf("no such endpoint: %s %s (this agent speaks /v%d/)", r.Method, r.URL.Path, proto.Version)})
	})
	return mux
}

// wrap checks who is asking, runs h, and answers an error as JSON.
func (s *Server) wrap(name string, a access, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := "ok"
		defer func() {
			s.metrics.requests.WithLabelValues(name, code).Inc()
			s.metrics.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			code = proto.CodeForbidden
			writeError(w, http.StatusForbidden, proto.Error{Code: code, Message: "a client certificate is required"})
			return
		}
		id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
		if err != nil {
			code = proto.CodeForbidden
			writeError(w, http.StatusForbidden, proto.Error{Code: code, Message: err.Error()})
			return
		}
		if a == coordinatorOnly && id.Role != pki.RoleCoordinator {
			code = proto.CodeForbidden
			s.metrics.errors.WithLabelValues(name, code).Inc()
			s.logf("refused %s %s to %s (%s): coordinators only", r.Method, r.URL.Path, id.Name, id.Role)
			writeError(w, http.StatusForbidden, proto.Error{Code: code, Message: fmt.Sprintf("%s %s is for coordinators; %s has the %s role", r.Method, r.URL.Path, id.Name, id.Role)})
			return
		}
		if err := h(w, r, id); err != nil {
			code = proto.CodeOf(err)
			// Removing a folder that is not empty is how done tidies the
			// folders above a stub: "not empty" is its answer too.
			expected := r.Method == http.MethodGet && code == proto.CodeNotExist ||
				name == "remove" && errors.Is(err, syscall.ENOTEMPTY)
			if expected {
				// A coordinator asking whether a path is there (a move
				// looks for a stub, a held home, leftovers) hears no:
				// an answer, not a failure, so neither logged nor
				// counted as an error (requests_total has it).
				writeError(w, statusOf(code), proto.Error{Code: code, Message: err.Error()})
				return
			}
			s.metrics.errors.WithLabelValues(name, code).Inc()
			s.logf("%s %s from %s: %v", r.Method, r.URL.Path, id.Name, err)
			writeError(w, statusOf(code), proto.Error{Code: code, Message: proto.Redact(err.Error()), Retry: code == proto.CodeBusy})
		}
	})
}

func statusOf(code string) int {
	switch code {
	case proto.CodeForbidden:
		return http.StatusForbidden
	case proto.CodeNotExist, proto.CodeMissingHome:
		return http.StatusNotFound
	case proto.CodeExist, proto.CodeBusy:
		return http.StatusConflict
	case proto.CodeBadRequest, proto.CodeOutside, proto.CodeNotFolder:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, e proto.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(proto.ErrorHeader, "1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), proto.ErrBadRequest)
}

// param reads a parameter from the query or a form body.
func param(r *http.Request, key string) string {
	return r.FormValue(key)
}

func intParam(r *http.Request, key string, def int64) (int64, error) {
	v := param(r, key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s %q: not a number", key, v)
	}
	return n, nil
}

// checkPath refuses a path outside the cluster's roots, and a path that
// goes through a symlink on this host: every folder from the fsroot down
// to the path's parent must be a real folder (or not exist yet). The last
// name itself is never followed by what the agent does with it.
func (s *Server) checkPath(p string) error {
	if err := host.CheckPath(p, s.roots); err != nil {
		return err
	}
	var dirs []string
	for q := path.Dir(p); q != "/"; q = path.Dir(q) {
		dirs = append(dirs, q)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Lstat(filepath.Join(s.opt.FSRoot, dirs[i]))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("path %q: %s is not a real folder (%v): %w", p, dirs[i], fi.Mode().Type(), proto.ErrNotFolder)
		}
	}
	return nil
}

// pathParam reads and checks a path parameter.
func (s *Server) pathParam(r *http.Request, key string) (string, error) {
	p := param(r, key)
	if p == "" {
		return "", badRequest("%s: missing", key)
	}
	if err := s.checkPath(p); err != nil {
		return "", err
	}
	return p, nil
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	return writeJSON(w, proto.Info{
		Name: s.name, Version: s.opt.Version, API: proto.Version,
		Time: time.Now().UTC(), Started: s.started.UTC(), Roots: s.roots, Caller: id.Name, CallerRole: id.Role,
	})
}
