package sandbox

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// writeConfig writes the cluster's maildist.toml. Every path in it is
// relative to the file, so a sandbox can be moved or copied whole.
func writeConfig(path string, c *Cluster) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# A maildist sandbox cluster: every host keeps its file system in
# cluster/<host>, and a home /<host>/<user> is cluster/<host>/<host>/<user>.
domain = %s
state_dir = "state"
home_layout = %s

[directory]
type = "passwd"
path = "etc/passwd"

[activity]
# No mail daemons run in a sandbox, so no one is ever logged in.
# Tests that need live sessions override this.
source = "none"

[delivery]
hold = "rename"
stub = "forward"
# A sandbox has no MTA and so no queue: there is nothing to flush.
flush = []

[survey]
logs = ["logs/dovecot.log"]
`, tomlString(c.Domain), tomlString(c.Layout))
	for _, h := range c.Hosts {
		b.WriteString("\n[[host]]\n")
		fmt.Fprintf(&b, "name = %s\n", tomlString(h.Name))
		if h.Pool != "" {
			fmt.Fprintf(&b, "pool = %s\n", tomlString(h.Pool))
		}
		fmt.Fprintf(&b, "root = %s\n", tomlString(HostRoot(h.Name)))
		fmt.Fprintf(&b, "fsroot = %s\n", tomlString("cluster/"+h.Name))
		fmt.Fprintf(&b, "weight = %s\n", tomlFloat(h.Weight))
		fmt.Fprintf(&b, "accept_new = %t\n", h.AcceptNew)
		fmt.Fprintf(&b, "drain = %t\n", h.Drain)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlFloat writes a TOML float (1 would be an integer).
func tomlFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// writePasswd writes the users in Dovecot's passwd-file format,
// user:{PLAIN}password:uid:gid::home::, one a line, sorted by name.
func writePasswd(path string, users []User) error {
	var b bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&b, "%s:{PLAIN}%s:%d:%d::%s::\n", u.Name, u.Password, u.UID, u.GID, u.Home)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// password makes a 12-character password a test can log in with.
func password(r *rand.Rand) string {
	const letters = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}
