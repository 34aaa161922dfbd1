package sqltest

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// Environment variables.
const (
	EnvDSN      = "MAILDIST_TEST_PG_DSN"      // use this server instead of starting one
	EnvBin      = "MAILDIST_TEST_PG_BIN"      // folder with initdb and postgres
	EnvRequired = "MAILDIST_TEST_PG_REQUIRED" // fail, not skip, without PostgreSQL
)

// Server is a throwaway PostgreSQL cluster.
type Server struct {
	DSN    string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Dir    string // data, socket and log; removed by Stop
	cmd    *exec.Cmd
	exited chan error // cmd.Wait's result
}

// StartPostgres makes a new cluster in a new temp folder and starts it.
func StartPostgres() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	tmp := ""
	if os.Geteuid() == 0 {
		tmp = "/tmp" // TMPDIR may be under a folder the postgres user cannot enter
	}
	sweep(tmp)
	dir, err := os.MkdirTemp(tmp, "maildist-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.start(bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// sweep removes the folders of earlier servers that were not stopped (a
// test binary killed, or one without Main): those whose test binary is
// gone. Its server went with it (see run).
func sweep(tmp string) {
	if tmp == "" {
		tmp = os.TempDir()
	}
	old, _ := filepath.Glob(filepath.Join(tmp, "maildist-pg-*"))
	for _, dir := range old {
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < 10*time.Minute {
				continue // being made now, perhaps
			}
		} else if n, err := strconv.Atoi(strings.TrimSpace(string(owner))); err == nil && syscall.Kill(n, 0) == nil {
			continue // its test binary still runs
		}
		os.RemoveAll(dir)
	}
}

func findBin() (string, error) {
	if b := os.Getenv(EnvBin); b != "" {
		return b, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	if len(found) > 0 {
		return filepath.Dir(found[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL: initdb not found (apt-get install postgresql, or set " + EnvDSN + ")")
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func (s *Server) start(bin string) error {
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, and no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			return err
		}
	}
	data := filepath.Join(s.Dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = s.Dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var last error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		if last = s.run(bin, data, port, cred); last == nil {
			return nil
		}
	}
	return last
}

func (s *Server) run(bin, data string, port int, cred *syscall.Credential) error {
	logPath := filepath.Join(s.Dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", s.Dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	// The parent-death signal comes when the thread that started the
	// child ends, not the process: start it from a thread kept for it
	// until it exits.
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return // the locked thread ends with this goroutine
		}
		started <- nil
		exited <- cmd.Wait()
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if ping(dsn) == nil {
			s.DSN, s.cmd, s.exited = dsn, cmd, exited
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not start in time\n%s", out)
		}
	}
}

func ping(dsn string) error {
	db, err := stdsql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop shuts the server down (fast: open sessions are ended) and removes
// its folder.
func (s *Server) Stop() error {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	return os.RemoveAll(s.Dir)
}

var (
	shared struct {
		once sync.Once
		srv  *Server
		err  error
	}
	schemaSeq atomic.Int64
)

// Main runs a test binary's tests and stops the server Postgres started,
// if any: func TestMain(m *testing.M) { os.Exit(sqltest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	return code
}

// Postgres returns the DSN of a PostgreSQL server: $MAILDIST_TEST_PG_DSN,
// or a cluster started once for the whole test binary. It skips the test
// when there is neither (fails, with $MAILDIST_TEST_PG_REQUIRED set).
func Postgres(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	shared.once.Do(func() {
		shared.srv, shared.err = StartPostgres()
	})
	if shared.err != nil {
		if os.Getenv(EnvRequired) != "" {
			tb.Fatalf("PostgreSQL is required (%s is set): %v", EnvRequired, shared.err)
		}
		tb.Skipf("no PostgreSQL: %v", shared.err)
	}
	return shared.srv.DSN
}

// PostgresSchema returns a DSN whose search path is a new, empty schema
// of the Postgres server, dropped when the test ends. Tests that each take
// one can run side by side on one server.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	base := Postgres(tb)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), schemaSeq.Add(1))
	admin := open(tb, "pgx", base)
	if _, err := admin.Exec(`CREATE SCHEMA ` + name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			tb.Errorf("drop test schema: %v", err)
		}
		admin.Close()
	})
	return withParams(base, map[string]string{"search_path": name, "application_name": name})
}

// withParams adds run-time parameters to a pgx DSN, URL or key=value.
func withParams(dsn string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			for _, k := range keys {
				q.Set(k, params[k])
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	for _, k := range keys {
		dsn += " " + k + "=" + params[k]
	}
	return dsn
}

// Terminate ends the server sessions of a DSN that PostgresSchema gave
// (those with its application name), as a server restart or an
// administrator would: the next use of each pooled connection finds it
// closed. It returns how many it ended.
func Terminate(tb testing.TB, dsn string) int {
	tb.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	app := cfg.RuntimeParams["application_name"]
	if app == "" {
		tb.Fatal("sqltest.Terminate: the DSN has no application_name; use one from PostgresSchema")
	}
	db := open(tb, "pgx", dsn)
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND application_name = $1`, app).Scan(&n)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func open(tb testing.TB, driver, dsn string) *stdsql.DB {
	tb.Helper()
	db, err := stdsql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}
