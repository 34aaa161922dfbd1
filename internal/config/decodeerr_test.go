package config

import (
	"strings"
	"testing"
)

// A value of the wrong type is named by its key (and its host) and the
// types wanted and given, never by the Go struct it was to fill.
func TestDecodeErrorWords(t *testing.T) {
	hosts := "[[host]]\nname = \"bp01\"\nroot = \"/bp01\"\nweight = \"3\"\n\n[[host]]\nroot = \"/bp02\"\naccept_new = \"no\"\n"
	for _, tc := range []struct {
		name, text string
		parse      func(string) error
		want       string
	}{
		{"hosts file: weight", hosts, parseHostsErr, `/w.toml:4: host bp01: weight: want a number, got a string`},
		{"hosts file: a host with no name", "[[host]]\nroot = \"/bp02\"\naccept_new = \"no\"\n", parseHostsErr,
			`/w.toml:3: host #1: accept_new: want true or false, got a string`},
		{"config: weight", strings.Replace(good, "root = \"/bp04\"\n", "root = \"/bp04\"\nweight = \"3\"\n", 1), parseErr,
			`host bp04: weight: want a number, got a string`},
		{"config: drain", strings.Replace(good, "root = \"/bp04\"\n", "root = \"/bp04\"\ndrain = 1\n", 1), parseErr,
			`host bp04: drain: want true or false, got an integer`},
		{"config: top level", strings.Replace(good, `domain = "example.edu"`, `domain = 7`, 1), parseErr,
			`/m.toml:2: domain: want a string, got an integer`},
		{"config: a list", strings.Replace(good, `flush = ["sendmail", "-q"]`, `flush = "sendmail -q"`, 1), parseErr,
			`delivery.flush: want a list of strings, got a string`},
		{"config: margin", strings.Replace(good, "[delivery]\n", "[delivery]\nmargin = 1.5\n", 1), parseErr,
			`delivery.margin: want a whole number, got a number with a fraction`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(tc.text)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			for _, never := range []string{"struct", "toml: ", "float64", "*bool"} {
				if strings.Contains(err.Error(), never) {
					t.Errorf("error %q shows %q", err, never)
				}
			}
		})
	}
}

func parseHostsErr(text string) error {
	_, err := ParseHosts("/w.toml", []byte(text))
	return err
}

func parseErr(text string) error {
	_, err := Parse("/m.toml", []byte(text))
	return err
}
