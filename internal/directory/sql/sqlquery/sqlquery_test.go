package sqlquery

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, kind, text string
		dollar, question string
		names            []string
	}{
		{"named", "switch",
			"UPDATE users SET home = :new_home, host = :new_host WHERE username = :user AND home = :old_home",
			"UPDATE users SET home = $1, host = $2 WHERE username = $3 AND home = $4",
			"UPDATE users SET home = ?1, host = ?2 WHERE username = ?3 AND home = ?4",
			[]string{NewHome, NewHost, User, OldHome}},
		{"positional as in Dovecot's docs", "switch",
			"UPDATE users SET home = $3 WHERE username = $1 AND home = $2",
			"UPDATE users SET home = $1 WHERE username = $2 AND home = $3",
			"UPDATE users SET home = ?1 WHERE username = ?2 AND home = ?3",
			[]string{NewHome, User, OldHome}},
		{"a name used twice binds once", "lookup",
			"SELECT u.name AS user, home FROM u WHERE name = :user OR alias = :user",
			"SELECT u.name AS user, home FROM u WHERE name = $1 OR alias = $1",
			"SELECT u.name AS user, home FROM u WHERE name = ?1 OR alias = ?1",
			[]string{User}},
		{"literals, casts and comments are left alone", "lookup",
			"SELECT home::text, ':user' AS \"a:user\", E'\\':x' -- :reason\n FROM t /* :reason /* nested */ */ WHERE n = :user::text AND $$:reason$$ <> $q$$1$q$",
			"SELECT home::text, ':user' AS \"a:user\", E'\\':x' -- :reason\n FROM t /* :reason /* nested */ */ WHERE n = $1::text AND $$:reason$$ <> $q$$1$q$",
			"SELECT home::text, ':user' AS \"a:user\", E'\\':x' -- :reason\n FROM t /* :reason /* nested */ */ WHERE n = ?1::text AND $$:reason$$ <> $q$$1$q$",
			[]string{User}},
		{"doubled quotes", "lookup",
			"SELECT 'it''s :user' AS x, home FROM t WHERE u = :user",
			"SELECT 'it''s :user' AS x, home FROM t WHERE u = $1",
			"SELECT 'it''s :user' AS x, home FROM t WHERE u = ?1",
			[]string{User}},
		{"list without parameters", "list",
			"SELECT username, home FROM users",
			"SELECT username, home FROM users",
			"SELECT username, home FROM users",
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.kind, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.SQL(Dollar); got != tc.dollar {
				t.Errorf("Dollar:\n got %q\nwant %q", got, tc.dollar)
			}
			if got := q.SQL(Question); got != tc.question {
				t.Errorf("Question:\n got %q\nwant %q", got, tc.question)
			}
			if !slices.Equal(q.Names, tc.names) {
				t.Errorf("names = %v, want %v", q.Names, tc.names)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, kind, text, want string }{
		{"unknown kind", "delete", "DELETE FROM users", "no such query"},
		{"empty", "list", "  ", "is empty"},
		{"unknown name", "lookup", "SELECT * FROM t WHERE u = :username", ":username is not a placeholder"},
		{"name of another query", "lookup", "SELECT * FROM t WHERE u = :user AND h = :old_home", ":old_home is not a placeholder"},
		{"switch without compare", "switch", "UPDATE t SET home = :new_home WHERE u = :user", "does not use :old_home; it must change only the row"},
		{"lookup of everyone", "lookup", "SELECT * FROM t", "does not use :user"},
		{"positional out of range", "lookup", "SELECT * FROM t WHERE u = $1 AND x = $3", "$3: it has parameters $1 to $2"},
		{"question mark", "lookup", "SELECT * FROM t WHERE u = ?", "? at byte 26"},
		{"open string", "lookup", "SELECT * FROM t WHERE u = ':user", "not closed"},
		{"open comment", "lookup", "SELECT * FROM t WHERE u = :user /*", "not closed"},
		{"open dollar quote", "lookup", "SELECT $a$ x FROM t WHERE u = :user", "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.kind, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	q, err := Parse("switch", "UPDATE t SET home = :new_home, d = :delay_until WHERE u = :user AND home = :old_home")
	if err != nil {
		t.Fatal(err)
	}
	got := q.Args(map[string]any{User: "u", OldHome: "/a", NewHome: "/b", DelayUntil: int64(7), OldHost: "x"})
	want := []any{"/b", int64(7), "u", "/a"}
	if !slices.Equal(got, want) {
		t.Fatalf("args = %v, want %v", got, want)
	}
}

// Whatever the text, parsing never panics, and a parsed query rewritten
// with its placeholders put back as names is the text it came from, up to
// the spelling of positional parameters.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT home FROM t WHERE u = :user",
		"UPDATE t SET h = $3 WHERE u = $1 AND h = $2",
		"SELECT $$a$$, 'b''c', \"d\"\"e\", E'\\'' -- x\n/* /* */ */ :user::text",
		"$a$ $1 $a$ :user",
	} {
		f.Add("lookup", s)
		f.Add("switch", s)
	}
	f.Fuzz(func(t *testing.T, kind, text string) {
		q, err := Parse(kind, text)
		if err != nil {
			return
		}
		var b strings.Builder
		for i, p := range q.parts {
			if p.name == "" {
				b.WriteString(p.sql)
				continue
			}
			// ":" + "$1" would read back as a cast; "$1" "$" as a dollar quote.
			if i > 0 && q.parts[i-1].name == "" && strings.HasSuffix(q.parts[i-1].sql, ":") ||
				i+1 < len(q.parts) && q.parts[i+1].name == "" && strings.HasPrefix(q.parts[i+1].sql, "$") {
				return
			}
			b.WriteString(":" + p.name)
		}
		if !strings.Contains(text, "$") && b.String() != text {
			t.Fatalf("parts rebuild %q, not %q", b.String(), text)
		}
		q2, err := Parse(kind, b.String())
		if err != nil {
			t.Fatalf("rebuilt query %q does not parse: %v", b.String(), err)
		}
		if q2.SQL(Dollar) != q.SQL(Dollar) {
			t.Fatalf("rebuilt query rewrites to %q, not %q", q2.SQL(Dollar), q.SQL(Dollar))
		}
	})
}
