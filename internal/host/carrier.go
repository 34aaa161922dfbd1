package host

import (
	"context"

	"golang.org/x/time/rate"

	"github.com/maildist/maildist/internal/tree"
)

// Carrier is a host that carries trees to and from other hosts itself, as
// a host reached through its agent does: the data go between the hosts,
// not through this machine when neither end is local. LocalCopier hands
// every copy that is not between two local hosts to the Carrier at one
// of its ends (the destination's first).
type Carrier interface {
	CopyTree(ctx context.Context, t Transfer) (tree.Stats, error)
}

// Transfer is one copy asked of a Carrier: Copier.Copy's arguments and
// the copier's settings.
type Transfer struct {
	Src     Host
	SrcPath string
	Dst     Host
	DstPath string
	Mode    CopyMode
	// Limit, if set, caps the bytes per second of all copies together.
	Limit *rate.Limiter
	// Progress, if set, is told of content bytes as they are copied.
	Progress func(int64)
}
