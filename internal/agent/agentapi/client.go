// Package agentapi is the coordinator's side of the agent API: a Client
// is a host.Host (and a host.Carrier) reached through the host's agent,
// so the move engine runs its steps on remote hosts unchanged. Beside it:
// the cluster-wide activity check, the hold that runs on the source
// host, and the survey's disk reader and log streams through agents.
//
// Every request carries the coordinator's certificate (role coordinator)
// and checks that the agent's certificate is the CA's and names the host
// the config says, whatever address it was reached at.
//
// A request that could not even be sent (the agent is down or
// restarting), or a GET (which changes nothing), is tried again for a
// while (Options.RetryFor); a change that was sent is not, unless it is
// a transfer, which is resumed: the destination keeps what it received,
// and a new ticket lets the source send the rest.
package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/agent/xfer"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/tree"
)

// Options configure a Pool.
type Options struct {
	// TLS is the coordinator's certificate and the CA.
	TLS *pki.Loaded
	// Compress is how streams between hosts are compressed: auto (when
	// it pays), zstd or none.
	Compress string
	// Timeout bounds a quick question to every agent (activity, info).
	Timeout time.Duration
	// RetryFor is how long to keep trying an agent that cannot be
	// reached (default 20s).
	RetryFor time.Duration
	// Attempts is how many times a transfer is started before its error
	// is final (default 8, about 20 s of waiting in all).
	Attempts int
	// Flush and Queue are the coordinator's delivery commands: Run maps
	// them to the agent's own (it runs nothing else).
	Flush, Queue []string
	// AllowUnsafe is passed on to a rename hold's check.
	AllowUnsafe bool
	// Idle is how long a transfer may go without a byte moving before it
	// is given up (default a minute).
	Idle time.Duration
}

// Pool makes and keeps the clients of a cluster's agents.
type Pool struct {
	opt Options

	mu       sync.Mutex
	clients  map[string]*Client
	inflight int // transfers under way, which share a limit
}

// NewPool returns a pool.
func NewPool(opt Options) *Pool {
	if opt.Compress == "" {
		opt.Compress = xfer.CompressAuto
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = 20 * time.Second
	}
	if opt.Idle <= 0 {
		opt.Idle = idleLimit
	}
	if opt.Attempts <= 0 {
		// With the waits between them (¼ s doubling to 4 s), about 20 s.
		opt.Attempts = 8
	}
	return &Pool{opt: opt, clients: map[string]*Client{}}
}

// Client returns the client of host h, which must have an agent URL.
func (p *Pool) Client(h *cluster.Host) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[h.Name]; ok {
		return c
	}
	c := &Client{pool: p, name: h.Name, base: strings.TrimSuffix(h.Agent, "/"),
		hc: &http.Client{Transport: proto.NewTransport(p.opt.TLS, h.Name)}}
	p.clients[h.Name] = c
	return c
}

// Client is one host reached through its agent.
type Client struct {
	pool *Pool
	name string
	base string
	hc   *http.Client
}

var _ host.Host = (*Client)(nil)
var _ host.Carrier = (*Client)(nil)

// Name is the host's name.
func (c *Client) Name() string { return c.name }

// URL is the agent's URL.
func (c *Client) URL() string { return c.base }

// notSent reports whether a request failed before anything was sent: the
// connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// request is one call of the API.
type request struct {
	method, path string
	query        url.Values
	form         url.Values // sent as the body of a POST
	body         []byte     // or this
	stream       io.Reader  // or this, which cannot be sent twice
	once         bool       // not tried again: the answer is wanted now
}

// do sends a request and returns the answer if it is 200 OK, else its
// error. A request that could not be sent is tried again for RetryFor.
func (c *Client) do(ctx context.Context, rq request) (*http.Response, error) {
	u := c.base + rq.path
	if len(rq.query) > 0 {
		u += "?" + rq.query.Encode()
	}
	deadline := time.Now().Add(c.pool.opt.RetryFor)
	wait := 100 * time.Millisecond
	for {
		var body io.Reader
		ctype := ""
		switch {
		case rq.form != nil:
			body, ctype = strings.NewReader(rq.form.Encode()), "application/x-www-form-urlencoded"
		case rq.body != nil:
			body, ctype = bytes.NewReader(rq.body), "application/octet-stream"
		case rq.stream != nil:
			body, ctype = rq.stream, "application/octet-stream"
		}
		req, err := http.NewRequestWithContext(ctx, rq.method, u, body)
		if err != nil {
			return nil, err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			// A request that was not sent can be sent again; so can a GET,
			// which changes nothing, whatever became of it.
			again := notSent(err) || rq.method == http.MethodGet
			if again && rq.stream == nil && !rq.once && time.Now().Before(deadline) && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				wait = min(2*wait, 2*time.Second)
				continue
			}
			return nil, &netError{fmt.Errorf("agent %s (%s): %w", c.name, c.base, err)}
		}
		if err := proto.ReadError(resp, c.name); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// netError is a failure of the connection to an agent.
type netError struct{ err error }

func (e *netError) Error() string { return proto.Redact(e.err.Error()) }
func (e *netError) Unwrap() error { return e.err }

// Unreachable reports whether err is a failure to talk to an agent at all.
func Unreachable(err error) bool {
	var ne *netError
	return errors.As(err, &ne)
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	return c.getJSONOnce(ctx, path, q, v, false)
}

func (c *Client) getJSONOnce(ctx context.Context, path string, q url.Values, v any, once bool) error {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, once: once})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &netError{fmt.Errorf("agent %s: read the answer: %w", c.name, err)}
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, path string, form url.Values, v any) error {
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, form: form})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &netError{fmt.Errorf("agent %s: read the answer: %w", c.name, err)}
	}
	return nil
}

func (c *Client) getBytes(ctx context.Context, path string, q url.Values) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &netError{fmt.Errorf("agent %s: read the answer: %w", c.name, err)}
	}
	return b, nil
}

func pathQ(p string) url.Values { return url.Values{"path": {p}} }

// Lstat describes p without following a symlink.
func (c *Client) Lstat(ctx context.Context, p string) (host.Info, error) {
	var st proto.Stat
	if err := c.getJSON(ctx, "/v1/fs/lstat", pathQ(p), &st); err != nil {
		return host.Info{}, err
	}
	return host.Info{Mode: fs.FileMode(st.Mode), UID: st.UID, GID: st.GID, Size: st.Size}, nil
}

// Rename renames without replacing.
func (c *Client) Rename(ctx context.Context, from, to string) error {
	return c.postJSON(ctx, "/v1/fs/rename", url.Values{"path": {from}, "to": {to}}, nil)
}

func ownerForm(p string, mode fs.FileMode, uid, gid int) url.Values {
	return url.Values{"path": {p}, "mode": {strconv.FormatUint(uint64(mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), 10)},
		"uid": {strconv.Itoa(uid)}, "gid": {strconv.Itoa(gid)}}
}

// MkdirAll makes p and its parents.
func (c *Client) MkdirAll(ctx context.Context, p string, mode fs.FileMode, uid, gid int) ([]string, error) {
	var out struct {
		Made []string `json:"made"`
	}
	f := ownerForm(p, mode, uid, gid)
	f.Set("mode", strconv.FormatUint(uint64(mode.Perm()), 10))
	if err := c.postJSON(ctx, "/v1/fs/mkdir", f, &out); err != nil {
		return nil, err
	}
	return out.Made, nil
}

// RemoveAll removes a tree (only maildist's own: staging, trash).
func (c *Client) RemoveAll(ctx context.Context, p string) error {
	return c.postJSON(ctx, "/v1/fs/removeall", pathQ(p), nil)
}

// Remove removes a file or an empty folder.
func (c *Client) Remove(ctx context.Context, p string) error {
	return c.postJSON(ctx, "/v1/fs/remove", pathQ(p), nil)
}

// WriteFile writes a small file durably.
func (c *Client) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, uid, gid int) error {
	f := ownerForm(p, mode, uid, gid)
	f.Set("mode", strconv.FormatUint(uint64(mode.Perm()), 10))
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/fs/write", query: f, body: data})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ReadFile reads a small file.
func (c *Client) ReadFile(ctx context.Context, p string) ([]byte, error) {
	return c.getBytes(ctx, "/v1/fs/read", pathQ(p))
}

// FreeBytes is the space free on the file system holding p.
func (c *Client) FreeBytes(ctx context.Context, p string) (int64, error) {
	var out struct{ Bytes int64 }
	err := c.getJSON(ctx, "/v1/fs/free", pathQ(p), &out)
	return out.Bytes, err
}

// Usage is du's count of the tree at p.
func (c *Client) Usage(ctx context.Context, p string) (int64, error) {
	var out struct{ Bytes int64 }
	err := c.getJSON(ctx, "/v1/fs/usage", pathQ(p), &out)
	return out.Bytes, err
}

// OpenFiles lists files open under p on the host.
func (c *Client) OpenFiles(ctx context.Context, p string) ([]string, error) {
	var out struct {
		Open []string `json:"open"`
	}
	err := c.getJSON(ctx, "/v1/fs/open", pathQ(p), &out)
	return out.Open, err
}

// Scan makes the manifest of the tree at p, on the host.
func (c *Client) Scan(ctx context.Context, p string, hash bool) (*tree.Manifest, error) {
	q := pathQ(p)
	if hash {
		q.Set("hash", "1")
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/fs/scan", query: q})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m, err := tree.ReadManifest(resp.Body)
	if err != nil {
		return nil, &netError{fmt.Errorf("agent %s: scan %s: %w", c.name, p, err)}
	}
	return m, nil
}

// Run runs the host's own flush or queue command, for the coordinator's
// delivery.flush or delivery.queue: an agent runs no other command.
func (c *Client) Run(ctx context.Context, argv []string) ([]byte, error) {
	switch {
	case len(argv) > 0 && slices.Equal(argv, c.pool.opt.Flush):
		return nil, c.postJSON(ctx, "/v1/flush", url.Values{}, nil)
	case len(argv) > 0 && slices.Equal(argv, c.pool.opt.Queue):
		return c.getBytes(ctx, "/v1/queue", nil)
	}
	return nil, fmt.Errorf("host %s is reached through its agent, which runs only its own flush and queue commands, not %q", c.name, strings.Join(argv, " "))
}

// Info asks the agent who and how it is, and measures the round trip.
func (c *Client) Info(ctx context.Context) (proto.Info, time.Duration, error) {
	var in proto.Info
	start := time.Now()
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/info", once: true})
	if err != nil {
		return in, 0, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&in)
	return in, time.Since(start), err
}

// Sessions lists user's live sessions on the host ("" for everyone's).
func (c *Client) Sessions(ctx context.Context, user string, uid int) ([]activity.Session, error) {
	return c.sessions(ctx, user, uid, false)
}

func (c *Client) sessions(ctx context.Context, user string, uid int, once bool) ([]activity.Session, error) {
	var out struct {
		Sessions []activity.Session `json:"sessions"`
	}
	err := c.getJSONOnce(ctx, "/v1/activity", url.Values{"user": {user}, "uid": {strconv.Itoa(uid)}}, &out, once)
	return out.Sessions, err
}

// HoldOp asks the host to check, start, undo or end its own hold of kind.
func (c *Client) HoldOp(ctx context.Context, op, kind, user, home string, uid, gid int, allowUnsafe bool) (string, error) {
	f := url.Values{"op": {op}, "kind": {kind}, "user": {user}, "home": {home}, "uid": {strconv.Itoa(uid)}, "gid": {strconv.Itoa(gid)}}
	if allowUnsafe {
		f.Set("allow_unsafe", "1")
	}
	var out struct {
		Held string `json:"held"`
	}
	err := c.postJSON(ctx, "/v1/hold", f, &out)
	return out.Held, err
}

// Get sends a GET of path (like /metrics) and returns the answer if it
// is 200 OK.
func (c *Client) Get(ctx context.Context, path string) (*http.Response, error) {
	return c.do(ctx, request{method: http.MethodGet, path: path})
}

// Homes lists the homes under root on the host.
func (c *Client) Homes(ctx context.Context, root string) ([]string, error) {
	var out struct {
		Homes []string `json:"homes"`
	}
	err := c.getJSON(ctx, "/v1/homes", url.Values{"root": {root}}, &out)
	return out.Homes, err
}
