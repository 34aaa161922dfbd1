package delivery

import (
	"context"
	"errors"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/config"
	"github.com/maildist/maildist/internal/host"
)

// Postfix holds a user's mail in Postfix's own queue with a per-recipient
// transport entry ("user@domain retry:4.7.1 mailbox being moved").
type Postfix struct {
	ConfigDir    string
	TransportMap string
	Run          activity.Runner
}

// NewPostfix returns a Postfix hold.
func NewPostfix(d config.Delivery, run activity.Runner) *Postfix {
	return &Postfix{ConfigDir: d.PostfixConfigDir, TransportMap: d.TransportMap, Run: run}
}

var errPostfixTodo = errors.New("hold = \"postfix\" is not available yet")

// Kind is "postfix".
func (*Postfix) Kind() string { return "postfix" }

// HeldPath is the home: the tree stays where it is.
func (*Postfix) HeldPath(home string) string { return home }

// Check is not available yet.
func (*Postfix) Check(context.Context, host.Host, string, string, int, int) error {
	return errPostfixTodo
}

// Start is not available yet.
func (*Postfix) Start(context.Context, host.Host, string, string) (string, error) {
	return "", errPostfixTodo
}

// Undo is not available yet.
func (*Postfix) Undo(context.Context, host.Host, string, string) error { return errPostfixTodo }

// End is not available yet.
func (*Postfix) End(context.Context, host.Host, string, string) error { return errPostfixTodo }
