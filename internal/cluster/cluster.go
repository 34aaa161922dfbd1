package cluster

import (
	"errors"
	"fmt"
	"hash/crc32"
	"path"
	"strings"
	"unicode/utf8"
)

// Host is one storage host of the cluster.
type Host struct {
	Name      string
	Pool      string
	Root      string  // where the host keeps homes, host-absolute ("/bp04")
	FSRoot    string  // where the host's file system is seen from here (local hosts)
	Agent     string  // URL of the host's agent; empty for a local host
	Weight    float64 // relative share of users; 0 for a draining host
	AcceptNew bool    // false: never a destination
	Drain     bool    // true: move every user off
}

// Local reports whether the host's file system is reached through FSRoot.
func (h *Host) Local() bool { return h.Agent == "" }

// EffectiveWeight is the weight the plan uses: 0 for a draining host.
func (h *Host) EffectiveWeight() float64 {
	if h.Drain {
		return 0
	}
	return h.Weight
}

// Cluster is the set of hosts and the rules for laying out homes.
type Cluster struct {
	Domain     string
	HomeLayout string // "{root}/{user}", "{root}/{hash2}/{user}"
	Hosts      []*Host
}

// Host returns the host with the given name.
func (c *Cluster) Host(name string) (*Host, bool) {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return nil, false
}

// HostOf returns the host whose root is the longest prefix of home, at a
// path boundary: /bp04 holds /bp04/alice but not /bp040/alice.
func (c *Cluster) HostOf(home string) (*Host, bool) {
	home = path.Clean(home)
	var best *Host
	for _, h := range c.Hosts {
		if !Under(h.Root, home) || home == path.Clean(h.Root) {
			continue
		}
		if best == nil || len(path.Clean(h.Root)) > len(path.Clean(best.Root)) {
			best = h
		}
	}
	return best, best != nil
}

// Under reports whether p is root itself or lies below it.
func Under(root, p string) bool {
	root, p = path.Clean(root), path.Clean(p)
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// HomeFor returns the home a user would have on host h under the layout.
func (c *Cluster) HomeFor(user string, h *Host) string {
	layout := c.HomeLayout
	if layout == "" {
		layout = "{root}/{user}"
	}
	r := strings.NewReplacer("{root}", path.Clean(h.Root), "{user}", user, "{hash2}", Hash2(user))
	return path.Clean(r.Replace(layout))
}

// Hash2 is the two-digit bucket of a user name used by the {hash2} layout:
// the CRC-32 (IEEE) of the name modulo 100, as two decimal digits.
func Hash2(user string) string {
	return fmt.Sprintf("%02d", crc32.ChecksumIEEE([]byte(user))%100)
}

// Pools returns the pool names in the order their first host appears.
func (c *Cluster) Pools() []string {
	var pools []string
	seen := map[string]bool{}
	for _, h := range c.Hosts {
		if !seen[h.Pool] {
			seen[h.Pool] = true
			pools = append(pools, h.Pool)
		}
	}
	return pools
}

// ErrBadUser is wrapped by CheckUser's errors.
var ErrBadUser = errors.New("not a plain user name")

// CheckUser refuses names that could escape a folder, be taken for an
// option or hide among maildist's own folders: empty, ".", "..", anything
// with '/', NUL, ':', a space or a control character, a leading '-' or
// '.', or invalid UTF-8.
func CheckUser(name string) error {
	bad := func(why string) error { return fmt.Errorf("user %q: %w: %s", name, ErrBadUser, why) }
	switch {
	case name == "":
		return bad("empty")
	case name == "." || name == "..":
		return bad("a path element")
	case strings.HasPrefix(name, "-"):
		return bad("starts with '-'")
	case !utf8.ValidString(name):
		return bad("invalid UTF-8")
	case len(name) > 255:
		return bad("longer than 255 bytes")
	}
	for _, r := range name {
		switch {
		case r == '/':
			return bad("contains '/'")
		case r == 0:
			return bad("contains NUL")
		case r == ':':
			return bad("contains ':'")
		case r < 0x20 || r == 0x7f:
			return bad("contains a control character")
		case r == ' ':
			return bad("contains a space")
		}
	}
	if strings.HasPrefix(name, ".") {
		return bad("starts with '.'")
	}
	return nil
}
