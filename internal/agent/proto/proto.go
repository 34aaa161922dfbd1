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
	"syscall"

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
