package sqltest

import (
	"context"
	stdsql "database/sql"
	"os"
	"testing"

	"github.com/maildist/maildist/internal/directory"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestWithParams(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h:5/db?sslmode=disable", "postgres://u@h:5/db?application_name=a&search_path=s&sslmode=disable"},
		{"host=/tmp port=5 user=u", "host=/tmp port=5 user=u application_name=a search_path=s"},
	} {
		if got := withParams(tc.dsn, map[string]string{"search_path": "s", "application_name": "a"}); got != tc.want {
			t.Errorf("withParams(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// Two schemas of one server do not see each other's users, and
// Terminate ends the sessions of one only.
func TestPostgresSchemas(t *testing.T) {
	a, b := PostgresSchema(t), PostgresSchema(t)
	Fill(t, "postgres", a, []directory.Entry{{User: "alice", Home: "/a/alice", UID: -1, GID: -1}}, nil)
	Fill(t, "postgres", b, nil, nil)
	dbA, dbB := open(t, "pgx", a), open(t, "pgx", b)
	defer dbA.Close()
	defer dbB.Close()
	count := func(db *stdsql.DB) int {
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(dbA) != 1 || count(dbB) != 0 {
		t.Fatal("schemas share a users table")
	}
	if n := Terminate(t, a); n != 1 {
		t.Fatalf("Terminate ended %d sessions, want 1", n)
	}
	if n := Terminate(t, b); n != 1 {
		t.Fatalf("the other schema has %d sessions left, want 1", n)
	}
}
