package cluster

import (
	"fmt"
	"time"
)

// Status of a user's home as the survey found it.
const (
	StatusOK          = "ok"
	StatusMissingHome = "missing-home"
	StatusUnreadable  = "unreadable"
)

// User is one row of a survey (raw.tsv).
type User struct {
	Name      string
	Host      string // empty when no host's root holds the home
	Pool      string
	Home      string
	ConnectS  int64 // seconds connected in the survey window (union of sessions)
	Sessions  int64
	LastLogin time.Time // zero if none
	Bytes     int64     // allocated bytes, each inode once (like du)
	Messages  int64
	Status    string
}

// Class is a user's class cXdY: X the connect-time bucket, Y the disk
// bucket, each 0–4 (0 = none, 1–4 = quartiles of the non-zero values).
type Class struct{ C, D int }

func (c Class) String() string { return fmt.Sprintf("c%dd%d", c.C, c.D) }

// ParseClass reads "c3d1".
func ParseClass(s string) (Class, error) {
	var c Class
	if len(s) != 4 || s[0] != 'c' || s[2] != 'd' || s[1] < '0' || s[1] > '4' || s[3] < '0' || s[3] > '4' {
		return c, fmt.Errorf("class %q: want cXdY with X and Y from 0 to 4", s)
	}
	c.C, c.D = int(s[1]-'0'), int(s[3]-'0')
	return c, nil
}

// MoveCount is one row of moves.tsv: how many users of a class go from one
// host to another.
type MoveCount struct {
	Class Class
	From  string
	To    string
	Count int
}

// Todo is one concrete move: a row of todo.tsv.
type Todo struct {
	User  string
	From  string
	To    string
	Class Class
}

// Sorted is one row of sort.tsv.
type Sorted struct {
	User  string
	Host  string
	Class Class
}
