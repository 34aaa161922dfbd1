package config

import (
	"errors"
	"strings"
	"testing"
)

const forwardHosts = `
[directory]
path = "p"
[delivery]
stub = "none"
[[host]]
name = "a"
root = "/a"
`

func TestForwardKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conf  string
		want  Forward
		probs []string // substrings of the problems, each with its line
	}{
		{name: "absent", conf: `domain = "d"` + "\n" + forwardHosts, want: Forward{To: ForwardToHost}},
		{
			name: "full",
			conf: `domain = "example.edu"` + "\n" + forwardHosts + `
[forward]
map = "postfix/maildist-forward"
postmap = ["postmap", "hash:/etc/postfix/maildist-forward"]
to = "domain"
`,
			want: Forward{Map: "/x/postfix/maildist-forward", Postmap: []string{"postmap", "hash:/etc/postfix/maildist-forward"}, To: ForwardToDomain},
		},
		{
			name: "default to",
			conf: `domain = "example.edu"` + "\n" + forwardHosts + "[forward]\nmap = \"/etc/postfix/fw\"\n",
			want: Forward{Map: "/etc/postfix/fw", To: ForwardToHost},
		},
		{
			name: "bad",
			conf: forwardHosts + `[forward]
map = "fw"
postmap = ["postmap", ""]
to = "mx"
`,
			probs: []string{
				"/x/m.toml:10: forward.map needs domain",
				"/x/m.toml:11: forward.postmap: argument 2 is empty",
				"/x/m.toml:12: forward.to \"mx\": want host or domain",
			},
		},
		{
			name: "postmap without map",
			conf: `domain = "d"` + "\n" + forwardHosts + "[forward]\npostmap = [\"postmap\"]\nto = \"host\"\n",
			probs: []string{
				"/x/m.toml:11: forward.postmap needs forward.map",
				"/x/m.toml:12: forward.to needs forward.map",
			},
		},
		{
			name:  "unknown key",
			conf:  `domain = "d"` + "\n" + forwardHosts + "[forward]\nmap = \"fw\"\nfile = \"x\"\n",
			probs: []string{"/x/m.toml:12: unknown key \"forward.file\""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("/x/m.toml", []byte(tc.conf))
			if len(tc.probs) > 0 {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("err = %v, want problems", err)
				}
				for _, p := range tc.probs {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("missing %q in:\n%v", p, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.Forward
			if got.Map != tc.want.Map || got.To != tc.want.To || strings.Join(got.Postmap, " ") != strings.Join(tc.want.Postmap, " ") {
				t.Errorf("forward = %+v, want %+v", got, tc.want)
			}
		})
	}
}
