package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const postfixBase = `domain = "example.edu"
[directory]
path = "etc/passwd"
hold_marker = true
[delivery]
hold = "postfix"
stub = "none"
postfix_config_dir = "/etc/postfix"
%s
[[host]]
name = "a"
root = "/a"
`

func TestPostfixHoldDefaults(t *testing.T) {
	c, err := Parse("/x/m.toml", []byte(strings.Replace(postfixBase, "%s", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Delivery
	if d.ReleaseDelay != 2*time.Second {
		t.Errorf("release delay %v", d.ReleaseDelay)
	}
	if d.TransportMap != "/etc/postfix/maildist-hold" || d.TransportMapType != "hash" || d.Domain != "example.edu" {
		t.Errorf("map %q type %q domain %q", d.TransportMap, d.TransportMapType, d.Domain)
	}
	if !slices.Equal(d.Queue, []string{"postqueue", "-c", "/etc/postfix", "-j"}) || !slices.Equal(d.Flush, []string{"postqueue", "-c", "/etc/postfix", "-f"}) {
		t.Errorf("queue %q flush %q", d.Queue, d.Flush)
	}
}

func TestPostfixHoldKeys(t *testing.T) {
	for _, tc := range []struct {
		name, extra  string
		mapPath, typ string
		queue, flush []string
	}{
		{"typed map", `transport_map = "lmdb:/etc/postfix/held"`, "/etc/postfix/held", "lmdb", nil, nil},
		{"relative map", `transport_map = "held"`, "/x/held", "hash", nil, nil},
		{"typed relative map", `transport_map = "cdb:pf/held"`, "/x/pf/held", "cdb", nil, nil},
		{"own queue and flush", "queue = [\"mailq\"]\nflush = []", "/etc/postfix/maildist-hold", "hash", []string{"mailq"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("/x/m.toml", []byte(strings.Replace(postfixBase, "%s", tc.extra, 1)))
			if err != nil {
				t.Fatal(err)
			}
			d := c.Delivery
			if d.TransportMap != tc.mapPath || d.TransportMapType != tc.typ {
				t.Errorf("map %q type %q", d.TransportMap, d.TransportMapType)
			}
			if tc.queue != nil && !slices.Equal(d.Queue, tc.queue) {
				t.Errorf("queue %q", d.Queue)
			}
			if tc.flush != nil && (d.Flush == nil || len(d.Flush) != 0) {
				t.Errorf("flush = [] became %q", d.Flush)
			}
		})
	}
}

// Each problem of a postfix hold is reported at its line.
func TestPostfixHoldProblems(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, want string
	}{
		{"no marker", strings.Replace(strings.Replace(postfixBase, "%s", "", 1), "hold_marker = true\n", "", 1),
			"/x/m.toml:5: delivery.hold = \"postfix\" leaves the home in place"},
		{"no domain", strings.Replace(strings.Replace(postfixBase, "%s", "", 1), `domain = "example.edu"`, "", 1),
			"/x/m.toml:6: delivery.hold = \"postfix\" needs domain"},
		{"no config dir", strings.Replace(strings.Replace(postfixBase, "%s", "", 1), `postfix_config_dir = "/etc/postfix"`, "", 1),
			"/x/m.toml:6: delivery.hold = \"postfix\" needs delivery.postfix_config_dir"},
		{"pcre map", strings.Replace(postfixBase, "%s", `transport_map = "pcre:/etc/postfix/held"`, 1),
			"/x/m.toml:9: delivery.transport_map \"pcre:/etc/postfix/held\": maildist edits the map"},
		{"map with a space", strings.Replace(postfixBase, "%s", `transport_map = "/etc/post fix/held"`, 1),
			"/x/m.toml:9: delivery.transport_map \"/etc/post fix/held\": Postfix cannot list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/x/m.toml", []byte(tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

// An sql directory refuses logins with its hold queries, the default.
func TestPostfixHoldSQLMarker(t *testing.T) {
	cfg := strings.Replace(strings.Replace(postfixBase, "%s", "", 1),
		"path = \"etc/passwd\"\nhold_marker = true\n", "type = \"sql\"\ndriver = \"sqlite\"\ndsn = \"users.db\"\n", 1)
	if _, err := Parse("/x/m.toml", []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(cfg, "dsn = \"users.db\"\n", "dsn = \"users.db\"\nhold_marker = false\n", 1)
	if _, err := Parse("/x/m.toml", []byte(off)); err == nil || !strings.Contains(err.Error(), "hold and unhold") {
		t.Fatalf("err = %v", err)
	}
}
