package sqltest

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DirectoryTOML is the [directory] table of a maildist.toml for the
// default schema in a database that Database or Fill made.
func DirectoryTOML(driver, dsn string) string {
	return fmt.Sprintf("[directory]\ntype = \"sql\"\ndriver = %q\ndsn = %q\n", driver, dsn)
}

// DovecotSQL is a Dovecot dovecot-sql.conf.ext for the default schema in
// a database: userdb and passdb read the users table, every password is
// password, and a user held by maildist (nologin not NULL) is refused
// with the hold reason. Dovecot needs dovecot-pgsql or dovecot-sqlite.
func DovecotSQL(driver, dsn string) (string, error) {
	var drv, connect string
	switch driver {
	case "sqlite":
		drv, connect = "sqlite", strings.TrimPrefix(strings.SplitN(dsn, "?", 2)[0], "file:")
	case "postgres", "pgx", "postgresql":
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return "", err
		}
		drv = "pgsql"
		connect = fmt.Sprintf("host=%s port=%d dbname=%s user=%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
		if cfg.Password != "" {
			connect += " password=" + cfg.Password
		}
		if sp := cfg.RuntimeParams["search_path"]; sp != "" {
			connect += " options='-c search_path=" + sp + "'"
		}
	default:
		return "", fmt.Errorf("sqltest: no driver %q", driver)
	}
	return fmt.Sprintf(`driver = %s
connect = %s
password_query = SELECT username AS user, '{PLAIN}password' AS password, nologin, nologin AS reason FROM users WHERE username = '%%u'
user_query = SELECT home, uid, gid FROM users WHERE username = '%%u'
iterate_query = SELECT username AS user FROM users
`, drv, connect), nil
}
