package agentapi

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/survey"
	"github.com/maildist/maildist/internal/survey/dovelog"
)

// Activity answers whether a user is live on some hosts: this machine's
// source for the local hosts (once for all of them), and each agent for
// its own, asked in parallel. An agent that does not answer within the
// timeout makes the answer an error, and the move engine counts the user
// as active (fail closed); --force skips the check.
type Activity struct {
	Local   activity.Source    // for hosts without an agent; nil: none
	Agents  map[string]*Client // hosts with an agent, by name
	Timeout time.Duration
}

// Active lists user's sessions on hosts.
func (a *Activity) Active(ctx context.Context, user string, uid int, hosts []string) ([]activity.Session, error) {
	var out []activity.Session
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	local := false
	for _, h := range hosts {
		c, ok := a.Agents[h]
		if !ok {
			local = true
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, a.Timeout)
			defer cancel()
			ss, err := c.sessions(cctx, user, uid, true)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s did not say whether %s is live: %w", h, user, err))
				return
			}
			out = append(out, ss...)
		})
	}
	if local && a.Local != nil {
		ss, err := a.Local.Sessions(ctx, user, uid)
		mu.Lock()
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, ss...)
		mu.Unlock()
	}
	wg.Wait()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, errors.Join(errs...)
}

// Hold is a hold that runs where the mail is: on a host reached through
// its agent, the agent runs its own hold of the same kind (a rename there,
// or its config's hold and release commands); on a local host, Local.
type Hold struct {
	Local       delivery.Hold
	AllowUnsafe bool
}

var _ delivery.Hold = (*Hold)(nil)

// Kind is the hold's kind.
func (h *Hold) Kind() string { return h.Local.Kind() }

// HeldPath is where a home's tree is while held (the same on every host).
func (h *Hold) HeldPath(home string) string { return h.Local.HeldPath(home) }

// Check asks the host whether its hold can hold.
func (h *Hold) Check(ctx context.Context, on host.Host, user, home string, uid, gid int) error {
	if c, ok := on.(*Client); ok {
		_, err := c.HoldOp(ctx, "check", h.Kind(), user, home, uid, gid, h.AllowUnsafe)
		return err
	}
	return h.Local.Check(ctx, on, user, home, uid, gid)
}

// Start holds on the host.
func (h *Hold) Start(ctx context.Context, on host.Host, user, home string) (string, error) {
	if c, ok := on.(*Client); ok {
		return c.HoldOp(ctx, "start", h.Kind(), user, home, -1, -1, h.AllowUnsafe)
	}
	return h.Local.Start(ctx, on, user, home)
}

// Undo ends a hold that did not lead to a switch.
func (h *Hold) Undo(ctx context.Context, on host.Host, user, home string) error {
	if c, ok := on.(*Client); ok {
		_, err := c.HoldOp(ctx, "undo", h.Kind(), user, home, -1, -1, h.AllowUnsafe)
		return err
	}
	return h.Local.Undo(ctx, on, user, home)
}

// End ends the hold after the switch.
func (h *Hold) End(ctx context.Context, on host.Host, user, home string) error {
	if c, ok := on.(*Client); ok {
		_, err := c.HoldOp(ctx, "end", h.Kind(), user, home, -1, -1, h.AllowUnsafe)
		return err
	}
	return h.Local.End(ctx, on, user, home)
}

// Disk is the survey's reader of homes: local hosts through Local, hosts
// with an agent through it.
type Disk struct {
	Local survey.DiskReader
	Pool  *Pool
}

var _ survey.DiskReader = Disk{}

// Usage walks a home on its host.
func (d Disk) Usage(ctx context.Context, h *cluster.Host, home string) (int64, int64, error) {
	if h.Local() {
		return d.Local.Usage(ctx, h, home)
	}
	var u proto.Usage
	if err := d.Pool.Client(h).getJSON(ctx, "/v1/survey/usage", url.Values{"home": {home}}, &u); err != nil {
		return 0, 0, err
	}
	if u.Error != nil {
		return u.Bytes, u.Messages, u.Error.Err(h.Name)
	}
	return u.Bytes, u.Messages, nil
}

// Check looks at a home on its host.
func (d Disk) Check(ctx context.Context, h *cluster.Host, home string) error {
	if h.Local() {
		return d.Local.Check(ctx, h, home)
	}
	var none struct{}
	return d.Pool.Client(h).getJSON(ctx, "/v1/survey/check", url.Values{"home": {home}}, &none)
}

// LogStreams lists the Dovecot logs of the host's agent as streams the
// survey reads (each file fetched when it is read; .gz ones unpacked),
// with their sizes.
func (c *Client) LogStreams(ctx context.Context) ([]dovelog.Stream, []int64, error) {
	var out struct {
		Streams []proto.LogStream `json:"streams"`
	}
	if err := c.getJSON(ctx, "/v1/logs", nil, &out); err != nil {
		return nil, nil, err
	}
	var streams []dovelog.Stream
	var sizes []int64
	for _, ls := range out.Streams {
		st := dovelog.Stream{Name: c.name + ":" + ls.Name}
		var size int64
		for _, f := range ls.Files {
			name := f.Name
			st.Files = append(st.Files, dovelog.File{Name: c.name + ":" + name, Ref: f.Ref, Open: func() (io.ReadCloser, error) {
				return c.openLog(ctx, name)
			}})
			size += f.Size
		}
		streams = append(streams, st)
		sizes = append(sizes, size)
	}
	return streams, sizes, nil
}

func (c *Client) openLog(ctx context.Context, name string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/logs/read", query: url.Values{"name": {name}}})
	if err != nil {
		return nil, err
	}
	// gzip is told by its first bytes, as for the logs here, not by name.
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	if head, _ := br.Peek(2); len(head) < 2 || head[0] != 0x1f || head[1] != 0x8b {
		if strings.HasSuffix(name, ".gz") && len(head) > 0 {
			resp.Body.Close()
			return nil, fmt.Errorf("%s:%s: named .gz, but not gzip data", c.name, name)
		}
		return readCloser{br, resp.Body}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%s:%s: %w", c.name, name, err)
	}
	return gzReader{zr, resp.Body}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type gzReader struct {
	*gzip.Reader
	body io.Closer
}

func (g gzReader) Close() error {
	g.Reader.Close()
	return g.body.Close()
}
