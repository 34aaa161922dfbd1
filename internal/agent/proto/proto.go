// Package proto is what the agent and its clients share: the API's
// version and paths, the JSON bodies, and the error codes that carry the
// errors callers branch on (a missing path, an existing one, a path
// outside the roots, no space, a vanished name…) across the network, so
// that errors.Is works on a remote host as on a local one.
package proto

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"syscall"
	"time"

	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/survey"
	"github.com/maildist/maildist/internal/tree"
)

// Version is the API version, the N of /vN/.
const Version = 1

// Error codes.
const (
	CodeNotExist    = "not-exist"
	CodeExist       = "exist"
	CodeOutside     = "outside"
	CodeVanished    = "vanished"
	CodeSpecial     = "special"
	CodeNoSpace     = "no-space"
	CodeUnsafeHold  = "unsafe-hold"
	CodeRecreated   = "recreated"
	CodeMissingHome = "missing-home"
	CodeForbidden   = "forbidden"
	CodeBadRequest  = "bad-request"
	CodeBusy        = "busy"
	CodeNotFolder   = "not-folder"
	CodeError       = "error"
)

var (
	// ErrForbidden: the caller's certificate or ticket does not allow it.
	ErrForbidden = errors.New("forbidden")
	// ErrBadRequest: the request is malformed.
	ErrBadRequest = errors.New("bad request")
	// ErrBusy: another transfer holds the path; try again.
	ErrBusy = errors.New("busy")
	// ErrNotFolder: a path that must be a real folder is not (a symlink,
	// a file).
	ErrNotFolder = errors.New("not a real folder")
)

var sentinels = []struct {
	code string
	err  error
}{
	{CodeForbidden, ErrForbidden},
	{CodeBadRequest, ErrBadRequest},
	{CodeBusy, ErrBusy},
	{CodeNotFolder, ErrNotFolder},
	{CodeOutside, host.ErrOutside},
	{CodeMissingHome, survey.ErrMissingHome},
	{CodeVanished, tree.ErrVanished},
	{CodeSpecial, tree.ErrSpecial},
	{CodeUnsafeHold, delivery.ErrUnsafeHold},
	{CodeRecreated, delivery.ErrRecreated},
	{CodeNoSpace, syscall.ENOSPC},
	{CodeNoSpace, syscall.EDQUOT},
	{CodeNotExist, fs.ErrNotExist},
	{CodeExist, fs.ErrExist},
}

// CodeOf is the code of an error: the first sentinel it wraps.
func CodeOf(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return CodeError
}

// Error is the body of every answer that is not a success.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
	// Retry says that the same request may succeed later (a broken
	// connection, a busy path).
	Retry bool `json:"retry,omitempty"`
}

// Remote is an error that came back from an agent. It wraps the sentinel
// of its code.
type Remote struct {
	Host  string
	Code  string
	Msg   string
	Retry bool
}

func (e *Remote) Error() string {
	if e.Host == "" {
		return e.Msg
	}
	return fmt.Sprintf("agent %s: %s", e.Host, e.Msg)
}

// Unwrap gives the sentinel of the code.
func (e *Remote) Unwrap() error {
	for _, s := range sentinels {
		if s.code == e.Code {
			return s.err
		}
	}
	return nil
}

// Err turns an answer's Error into an error of host.
func (e Error) Err(host string) error {
	return &Remote{Host: host, Code: e.Code, Msg: e.Message, Retry: e.Retry}
}

// Retryable reports whether err says to try again: a busy path, or an
// agent that said so.
func Retryable(err error) bool {
	var r *Remote
	if errors.As(err, &r) {
		return r.Retry || r.Code == CodeBusy
	}
	return false
}

// Info is what /v1/info says.
type Info struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	API        int       `json:"api"`
	Time       time.Time `json:"time"`
	Started    time.Time `json:"started"`
	Roots      []string  `json:"roots"`
	Caller     string    `json:"caller"`
	CallerRole string    `json:"caller_role"`
}

// Stat is what /v1/fs/lstat says.
type Stat struct {
	Mode uint32 `json:"mode"` // fs.FileMode
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Size int64  `json:"size"`
}

// Usage is what /v1/survey/usage says: a walk's counts, and why it
// stopped short if it did.
type Usage struct {
	Bytes    int64  `json:"bytes"`
	Messages int64  `json:"messages"`
	Error    *Error `json:"error,omitempty"`
}

// Stats is a transfer's outcome: what the destination did (tree.Stats)
// and what went over the wire.
type Stats struct {
	Files     int      `json:"files"`
	Dirs      int      `json:"dirs"`
	Symlinks  int      `json:"symlinks"`
	HardLinks int      `json:"hard_links"`
	Bytes     int64    `json:"bytes"`
	Removed   int      `json:"removed"`
	Fixed     int      `json:"fixed"`
	Vanished  []string `json:"vanished,omitempty"`
	Wire      int64    `json:"wire,omitempty"`
	Blocks    int      `json:"blocks,omitempty"`
	Zstd      int      `json:"zstd_blocks,omitempty"`
}

// PushLine is one line of a push's answer: progress, then the outcome.
type PushLine struct {
	Bytes int64  `json:"bytes,omitempty"` // content sent since the last line
	Stats *Stats `json:"stats,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Ticket is what announcing an import gives.
type Ticket struct {
	Ticket  string    `json:"ticket"`
	Expires time.Time `json:"expires"`
}

// LogFile is one log file an agent can read, in a stream of rotations.
type LogFile struct {
	Name string    `json:"name"`
	Ref  time.Time `json:"ref"`
	Size int64     `json:"size"`
}

// LogStream is a live log file and its rotations, oldest first.
type LogStream struct {
	Name  string    `json:"name"`
	Files []LogFile `json:"files"`
}

// Token is the header that carries an import's data token.
const TokenHeader = "X-Maildist-Token"

var secretRE = regexp.MustCompile(`((?:token|ticket)=)[^&\s"']+`)

// Redact hides the values of token= and ticket= in s (a URL in an
// error, a log line): each is good for a transfer.
func Redact(s string) string {
	return secretRE.ReplaceAllString(s, "${1}REDACTED")
}
