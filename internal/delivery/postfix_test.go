package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePostfix records the commands a hold runs and answers postconf and
// postqueue as a test says.
type fakePostfix struct {
	mu       sync.Mutex
	calls    [][]string
	postconf map[string]string // "-x -h": name → value; "-P", "-M retry/unix": whole output
	queue    func() string     // postqueue -j
	fail     map[string]error  // by command name
}

func (f *fakePostfix) run(ctx context.Context, argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, argv)
	name := filepath.Base(argv[0])
	if err := f.fail[name]; err != nil {
		return nil, err
	}
	args := argv[3:] // after -c DIR
	switch name {
	case "postconf":
		switch args[0] {
		case "-x":
			var out []string
			for _, n := range args[2:] {
				out = append(out, f.postconf[n])
			}
			return []byte(strings.Join(out, "\n") + "\n"), nil
		default:
			return []byte(f.postconf[strings.Join(args, " ")]), nil
		}
	case "postqueue":
		if args[0] == "-j" && f.queue != nil {
			return []byte(f.queue()), nil
		}
	}
	return nil, nil
}

func (f *fakePostfix) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, filepath.Base(c[0])+" "+strings.Join(c[3:], " "))
	}
	return out
}

func goodPostconf(table string) map[string]string {
	return map[string]string{
		"transport_maps":                  table + ", hash:/etc/postfix/site-transport",
		"smtpd_reject_unlisted_recipient": "no",
		"smtpd_recipient_restrictions":    "permit_mynetworks, reject_unauth_destination",
		"-P":                              "submission/inet/syslog_name = postfix/submission\n",
		"-M retry/unix":                   "retry      unix  -       -       y       -       -       error\n",
	}
}

func newTestPostfix(t *testing.T) (*Postfix, *fakePostfix) {
	dir := t.TempDir()
	p := &Postfix{ConfigDir: dir, TransportMap: filepath.Join(dir, "held"), Domain: "example.edu", Quiet: 2 * time.Second}
	f := &fakePostfix{postconf: goodPostconf("hash:" + filepath.Join(dir, "held"))}
	// What postmap builds, as the site has done before the first hold.
	os.WriteFile(filepath.Join(dir, "held.db"), nil, 0o644)
	p.Run = f.run
	return p, f
}

func TestPostfixAddress(t *testing.T) {
	p := &Postfix{Domain: "example.edu"}
	for user, want := range map[string]string{
		"alice":            "alice@example.edu",
		"Bob":              "bob@example.edu",
		"carol@other.org":  "carol@other.org",
		"#x":               "",
		"a b":              "",
		"x@y@z":            "",
		"@example.edu":     "",
		"quote\"d":         "",
		"comma,separated":  "",
		"dave@example.edu": "dave@example.edu",
	} {
		got, err := p.Address(user)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("Address(%q) = %q, %v; want %q", user, got, err, want)
		}
	}
	if _, err := (&Postfix{}).Address("alice"); err == nil {
		t.Error("no domain: want an error")
	}
}

// Start writes one entry a user, rebuilds the table and reloads Postfix
// after every change; End takes only that user's entry away and flushes.
// Both can be called again without harm.
func TestPostfixMapEdits(t *testing.T) {
	t.Parallel()
	p, f := newTestPostfix(t)
	ctx := context.Background()
	site := "# the site's own note\nold@example.edu error:5.1.1 gone\n"
	os.WriteFile(p.TransportMap, []byte(site), 0o640)
	for _, u := range []string{"alice", "bob", "alice"} {
		if _, err := p.Start(ctx, nil, u, "/h/"+u); err != nil {
			t.Fatal(err)
		}
	}
	held, _ := p.Held()
	if !slices.Equal(held, []string{"alice@example.edu", "bob@example.edu"}) {
		t.Fatalf("held %q", held)
	}
	b, _ := os.ReadFile(p.TransportMap)
	text := string(b)
	if !strings.Contains(text, "alice@example.edu retry:4.7.1 mailbox being moved\n") || !strings.Contains(text, "old@example.edu error:5.1.1 gone\n") ||
		!strings.Contains(text, "# the site's own note\n") || strings.Count(text, "alice@") != 1 {
		t.Fatalf("map:\n%s", text)
	}
	if fi, _ := os.Stat(p.TransportMap); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v: the map's mode must be kept", fi.Mode().Perm())
	}
	cmds := f.names()
	table := "hash:" + p.TransportMap
	for i, c := range cmds {
		if strings.HasPrefix(c, "postmap") && (i+1 >= len(cmds) || cmds[i+1] != "postfix reload") {
			t.Fatalf("postmap not followed by a reload: %q", cmds)
		}
		if strings.Contains(c, "defer_transports") || strings.Contains(c, " hold:") {
			t.Fatalf("dangerous command %q", c)
		}
		if strings.HasPrefix(c, "postmap") && c != "postmap "+table {
			t.Fatalf("postmap of %q", c)
		}
	}
	if n := strings.Count(strings.Join(cmds, "\n"), "postfix reload"); n != 3 {
		t.Errorf("%d reloads for three starts (one a repeat, which must still rebuild)", n)
	}
	for range 2 {
		if err := p.End(ctx, nil, "alice", "/h/alice"); err != nil {
			t.Fatal(err)
		}
	}
	held, _ = p.Held()
	if !slices.Equal(held, []string{"bob@example.edu"}) {
		t.Fatalf("held after release %q", held)
	}
	cmds = f.names()
	if cmds[len(cmds)-1] != "postqueue -f" || cmds[len(cmds)-2] != "postfix reload" {
		t.Fatalf("release ends with %q", cmds[len(cmds)-3:])
	}
	if err := p.Undo(ctx, nil, "bob", "/h/bob"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p.TransportMap)
	if strings.Contains(string(b), "retry:4.7.1 mailbox") || !strings.Contains(string(b), "old@example.edu error:5.1.1 gone") {
		t.Fatalf("map after all releases:\n%s", b)
	}
}

// Many moves hold and release at once: no entry is lost or left behind.
func TestPostfixConcurrentEdits(t *testing.T) {
	t.Parallel()
	p, _ := newTestPostfix(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("user%02d", i)
			if _, err := p.Start(ctx, nil, u, "/h/"+u); err != nil {
				errs <- err
				return
			}
			if i%2 == 0 {
				if err := p.End(ctx, nil, u, "/h/"+u); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	held, _ := p.Held()
	if len(held) != 20 {
		t.Fatalf("%d held, want the 20 odd users: %q", len(held), held)
	}
	for _, h := range held {
		var n int
		fmt.Sscanf(h, "user%02d@", &n)
		if n%2 == 0 {
			t.Errorf("%s was released but is still held", h)
		}
	}
}

// Start waits while a message for the user is in the active queue and
// has not been deferred by the hold; messages for others, and the user's
// held ones, do not make it wait.
func TestPostfixStartWaitsForDeliveryUnderWay(t *testing.T) {
	t.Parallel()
	p, f := newTestPostfix(t)
	start := time.Now()
	f.queue = func() string {
		s := `{"queue_name": "active", "queue_id": "A1", "recipients": [{"address": "bob@example.edu"}]}` + "\n" +
			`{"queue_name": "active", "queue_id": "A2", "recipients": [{"address": "alice@example.edu", "delay_reason": "mailbox being moved"}]}` + "\n" +
			`{"queue_name": "deferred", "queue_id": "A3", "recipients": [{"address": "alice@example.edu", "delay_reason": "lost connection"}]}` + "\n"
		if time.Since(start) < 300*time.Millisecond {
			s += `{"queue_name": "active", "queue_id": "B7", "recipients": [{"address": "Alice@example.edu"}]}` + "\n"
		}
		return s
	}
	if _, err := p.Start(context.Background(), nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 1300*time.Millisecond || el > 3*time.Second {
		t.Errorf("Start took %v: want the delivery's 300ms, then a second of quiet", el)
	}
	// A delivery that never ends fails the hold, naming it.
	f.queue = func() string {
		return `{"queue_name": "incoming", "queue_id": "C9", "recipients": [{"address": "carol@example.edu"}]}` + "\n"
	}
	p.Quiet = 300 * time.Millisecond
	if _, err := p.Start(context.Background(), nil, "carol", "/h/carol"); err == nil || !strings.Contains(err.Error(), "C9") {
		t.Fatalf("err = %v", err)
	}
}

// End waits ReleaseDelay before it releases, so that the delivery agent
// has read the switched home; Undo (no switch) does not wait.
func TestPostfixEndWaitsForTheDirectory(t *testing.T) {
	t.Parallel()
	p, _ := newTestPostfix(t)
	p.ReleaseDelay = 400 * time.Millisecond
	ctx := context.Background()
	start := time.Now()
	if err := p.End(ctx, nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("End took %v, want at least the release delay", el)
	}
	start = time.Now()
	if err := p.Undo(ctx, nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 300*time.Millisecond {
		t.Errorf("Undo took %v", el)
	}
}

// Check refuses a Postfix that would not hold: our map not listed, held
// recipients refused at RCPT time (in main.cf or master.cf), no retry
// service.
func TestPostfixCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m map[string]string, table string)
		want   string
	}{
		{"good", func(map[string]string, string) {}, ""},
		{"through proxy", func(m map[string]string, table string) { m["transport_maps"] = "proxy:" + table }, ""},
		{"map not listed", func(m map[string]string, _ string) { m["transport_maps"] = "hash:/etc/postfix/transport" }, "does not list"},
		{"map not first", func(m map[string]string, table string) {
			m["transport_maps"] = "hash:/etc/postfix/transport, " + table
		}, "lists " + "hash:"},
		{"map not built", func(m map[string]string, table string) {
			os.Remove(strings.TrimPrefix(table, "hash:") + ".db")
		}, "has not been built"},
		{"unlisted recipients refused", func(m map[string]string, _ string) { m["smtpd_reject_unlisted_recipient"] = "yes" }, "smtpd_reject_unlisted_recipient = yes"},
		{"explicit restriction", func(m map[string]string, _ string) {
			m["smtpd_recipient_restrictions"] = "permit_mynetworks,reject_unverified_recipient"
		}, "reject_unverified_recipient"},
		{"master.cf override", func(m map[string]string, _ string) {
			m["-P"] = "127.0.0.1:25/inet/smtpd_reject_unlisted_recipient = yes\n"
		}, "master.cf sets 127.0.0.1:25/inet/smtpd_reject_unlisted_recipient"},
		{"master.cf restriction", func(m map[string]string, _ string) {
			m["-P"] = "smtp/inet/smtpd_recipient_restrictions = reject_unlisted_recipient\n"
		}, "master.cf sets smtp/inet/smtpd_recipient_restrictions"},
		{"no retry service", func(m map[string]string, _ string) { m["-M retry/unix"] = "" }, "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, f := newTestPostfix(t)
			tc.change(f.postconf, p.table())
			err := p.Check(context.Background(), nil, "alice", "/h/alice", 5000, 5000)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrUnsafeHold) {
				t.Fatalf("err = %v, want %q and ErrUnsafeHold", err, tc.want)
			}
		})
	}
	p, f := newTestPostfix(t)
	f.fail = map[string]error{"postconf": errors.New("postconf: fatal: open /etc/postfix/main.cf")}
	if err := p.Check(context.Background(), nil, "alice", "/h/alice", 1, 1); err == nil || errors.Is(err, ErrUnsafeHold) {
		t.Fatalf("a Postfix that cannot be read: err = %v, want a plain error", err)
	}
}

// A Postfix that is not running reads the new table when it starts: the
// hold and its release still succeed.
func TestPostfixNotRunning(t *testing.T) {
	t.Parallel()
	p, f := newTestPostfix(t)
	down := errors.New("exit status 1")
	f.fail = map[string]error{"postfix": down}
	if _, err := p.Start(context.Background(), nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	if err := p.End(context.Background(), nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
}

// Where `maildist forward` rewrites user@HOST.domain, the aliases change
// the recipient before the transport map sees it: those addresses are
// held with the user's own, and released with it.
func TestPostfixHoldsHostAddresses(t *testing.T) {
	t.Parallel()
	p, _ := newTestPostfix(t)
	p.HostAddresses = []string{"bp01", "bp02"}
	ctx := context.Background()
	if _, err := p.Start(ctx, nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	held, _ := p.Held()
	want := []string{"alice@example.edu", "alice@bp01.example.edu", "alice@bp02.example.edu"}
	if !slices.Equal(held, want) {
		t.Fatalf("held %q, want %q", held, want)
	}
	if err := p.Undo(ctx, nil, "alice", "/h/alice"); err != nil {
		t.Fatal(err)
	}
	if held, _ := p.Held(); len(held) != 0 {
		t.Fatalf("still held after the release: %q", held)
	}
}

// Queued finds a user's mail in `postqueue -j` under every address that
// reaches them: plain, with a +extension, at a host of the domain.
func TestQueuedAddressForms(t *testing.T) {
	out := []byte(`{"queue_name":"deferred","queue_id":"A1","recipients":[{"address":"carol+news@example.edu"}]}
{"queue_name":"deferred","queue_id":"A2","recipients":[{"address":"dave@bp01.example.edu"}]}
{"queue_name":"deferred","queue_id":"A3","recipients":[{"address":"erin@example.org"}]}
{"queue_name":"deferred","queue_id":"A4","recipients":[{"address":"frank@notexample.edu"}]}
`)
	q := Queued(out, []string{"carol", "dave", "erin", "frank", "gina"}, "example.edu")
	for u, want := range map[string]bool{"carol": true, "dave": true, "erin": false, "frank": false, "gina": false} {
		if q[u] != want {
			t.Errorf("%s queued = %v, want %v", u, q[u], want)
		}
	}
}
