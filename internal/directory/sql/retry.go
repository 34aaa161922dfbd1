package sql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// retry runs f, and once more if it failed because the connection went
// away (a server restart, a network cut, an administrator ending the
// session) or the server asked for a retry (a serialization failure).
// Before the second try the pool's idle connections are dropped: they
// are likely dead too. Every write runs in a transaction of its own, so a
// failed try has changed nothing, except a commit that failed on the way
// back, which the caller handles (see errCommitUnsure).
func (d *DB) retry(ctx context.Context, what string, f func() error) error {
	err := f()
	if err == nil || !Retryable(err) || ctx.Err() != nil {
		return d.wrap(what, err)
	}
	d.dropIdle()
	if err2 := f(); err2 != nil {
		return d.wrap(what, fmt.Errorf("%w (tried again after the connection was lost: %v)", err2, err))
	}
	return nil
}

func (d *DB) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", d.name, what, err)
}

// dropIdle closes the pool's idle connections.
func (d *DB) dropIdle() {
	n := d.db.Stats().MaxOpenConnections
	d.db.SetMaxIdleConns(0)
	d.db.SetMaxIdleConns(n)
}

// Retryable reports whether err is a lost connection or a transient
// refusal of the database, after which the same call may succeed.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 57P: operator intervention (the
		// server is shutting down, or ended this session); 40001 and
		// 40P01: serialization failure and deadlock, rolled back.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "40001" || pe.Code == "40P01"
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return pgconn.SafeToRetry(err)
}
