package directory

import (
	"context"
	"errors"
	"fmt"
)

// Entry is one user of the directory.
type Entry struct {
	User string
	Home string
	UID  int  // -1 when the directory does not say
	GID  int  // -1 when the directory does not say
	Held bool // the hold marker is set (logins refused while moving)
}

var (
	// ErrNotFound: the directory has no such user.
	ErrNotFound = errors.New("no such user in the directory")
	// ErrChanged: the entry no longer holds the home the caller expected.
	ErrChanged = errors.New("directory entry changed")
	// ErrDuplicate: the user appears more than once; no one entry can be trusted.
	ErrDuplicate = errors.New("user appears more than once in the directory")
)

// Directory is a user directory backend.
type Directory interface {
	// List returns every entry it could read. Entries it could not read
	// (a malformed line) are reported in err, joined, alongside the good
	// entries; callers may go on with those.
	List(ctx context.Context) ([]Entry, error)

	// Lookup returns one user's entry, or ErrNotFound, or ErrDuplicate.
	Lookup(ctx context.Context, user string) (Entry, error)

	// Switch sets user's home to newHome if and only if it is oldHome now,
	// atomically and durably; otherwise it returns ErrChanged and changes
	// nothing. Switching to the home the entry already holds is a no-op
	// success only if oldHome == newHome.
	Switch(ctx context.Context, user, oldHome, newHome string) error

	Close() error
}

// Marker is implemented by backends that can refuse a user's logins while
// the user is held (Dovecot's nologin for passwd-file, a column in SQL).
// Both calls are idempotent.
type Marker interface {
	SetHold(ctx context.Context, user, reason string) error
	ClearHold(ctx context.Context, user string) error
}

// LineError is a bad entry, named by where it is.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// HoldReason is the reason a held user's login is refused with. Dovecot
// shows it to the client but cuts it at the first space.
const HoldReason = "Mailbox_is_being_moved,_try_again_in_a_few_minutes"
