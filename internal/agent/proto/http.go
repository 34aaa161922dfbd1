package proto

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/host"
)

// ErrorHeader marks an answer whose body is an Error.
const ErrorHeader = "X-Maildist-Error"

// NewTransport is the HTTP transport of connections to the agent of host
// name with the certificate l: TLS 1.3, mutual, HTTP/1.1 (a bulk stream
// goes faster over it than over HTTP/2's framing).
func NewTransport(l *pki.Loaded, name string) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     l.ClientConfig(name),
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
}

// ReadError reads an agent's answer for an error: nil for 200 OK (the
// body is left to the caller), else the error it carries (body closed).
func ReadError(resp *http.Response, host string) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	defer resp.Body.Close()
	var e Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.Header.Get(ErrorHeader) == "" || json.Unmarshal(b, &e) != nil {
		return &Remote{Host: host, Code: CodeError, Msg: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b))),
			Retry: resp.StatusCode >= 500}
	}
	return e.Err(host)
}

// Limiter is a limiter of bps bytes a second; nil for 0 (no limit).
func Limiter(bps float64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), int(max(bps/4, 64<<10)))
}

// ModeName is the API's name of a copy mode.
func ModeName(m host.CopyMode) string {
	switch m {
	case host.CopySync:
		return "sync"
	case host.CopyLive:
		return "live"
	}
	return "fresh"
}

// ParseMode reads ModeName's names.
func ParseMode(s string) (host.CopyMode, error) {
	switch s {
	case "fresh":
		return host.CopyFresh, nil
	case "sync":
		return host.CopySync, nil
	case "live":
		return host.CopyLive, nil
	}
	return 0, fmt.Errorf("mode %q: want fresh, sync or live: %w", s, ErrBadRequest)
}
