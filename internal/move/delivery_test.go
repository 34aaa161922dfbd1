package move

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maildist/maildist/internal/directory/passwd"
)

// mda delivers messages the way a Maildir delivery agent does: look the
// home up in the directory, write tmp/UNIQUE, fsync, rename into new/. It
// never creates a missing home or Maildir: a missing one is a temporary
// failure, and the message is retried later, as an MTA's queue would.
type mda struct {
	f         *fixture
	delivered sync.Map // id → user
	refused   atomic.Int64
	seq       atomic.Int64
}

func (m *mda) deliverOnce(user, id string) error {
	d, err := passwd.Open(m.f.passwd, passwd.Options{})
	if err != nil {
		return err
	}
	e, err := d.Lookup(context.Background(), user)
	if err != nil {
		return err
	}
	h, ok := m.f.cluster.HostOf(e.Home)
	if !ok {
		return fmt.Errorf("home %s on no host", e.Home)
	}
	md := filepath.Join(m.f.real(h.Name, e.Home), "Maildir")
	unique := fmt.Sprintf("%d.M%dP%d.mda", time.Now().Unix(), m.seq.Add(1), os.Getpid())
	tmp := filepath.Join(md, "tmp", unique)
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintf(fh, "Message-ID: <%s>\r\nSubject: test\r\n\r\nbody of %s\r\n", id, id)
	if werr == nil {
		werr = fh.Sync()
	}
	fh.Close()
	if werr != nil {
		return werr
	}
	return os.Rename(tmp, filepath.Join(md, "new", unique+",S=0"))
}

// deliver retries until the message lands, as a queue would.
func (m *mda) deliver(ctx context.Context, user, id string) error {
	for {
		err := m.deliverOnce(user, id)
		if err == nil {
			m.delivered.Store(id, user)
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		m.refused.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Millisecond):
		}
	}
}

// countIDs counts each message id in new/ and cur/ of a home's Maildir.
func countIDs(t *testing.T, home string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(home, "Maildir", sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ents {
			b, err := os.ReadFile(filepath.Join(home, "Maildir", sub, en.Name()))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if i := strings.Index(s, "Message-ID: <"); i >= 0 {
				j := strings.IndexByte(s[i:], '>')
				n[s[i+13:i+j]]++
			}
		}
	}
	return n
}

// While users are moved back and forth, deliveries keep coming. Every
// message the delivery agent reports delivered is in the user's final
// home exactly once; those refused while held were retried and landed.
func TestDeliveriesDuringMoves(t *testing.T) {
	users := []string{"alice", "bob", "carol"}
	f := newFixture(t, map[string]string{"alice": "h1", "bob": "h1", "carol": "h2"})
	for _, u := range users {
		f.makeMaildir(t, u, map[string]string{"alice": "h1", "bob": "h1", "carol": "h2"}[u], 60)
		// The delivery agent runs as root here; the test needs tmp/ and
		// new/ writable, which they are.
	}
	e := f.engine(t)
	m := &mda{f: f}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	var writers sync.WaitGroup
	var werr atomic.Value
	for w := 0; w < 3; w++ {
		writers.Add(1)
		go func(w int) {
			defer writers.Done()
			for i := 0; ctx.Err() == nil; i++ {
				u := users[(i+w)%len(users)]
				if err := m.deliver(ctx, u, fmt.Sprintf("w%d-%d", w, i)); err != nil && ctx.Err() == nil {
					werr.Store(err)
					return
				}
			}
		}(w)
	}

	moves := 0
	var movers sync.WaitGroup
	var mu sync.Mutex
	for _, u := range users {
		movers.Add(1)
		go func(u string) {
			defer movers.Done()
			hosts := []string{"h2", "h3", "h1"}
			for i := 0; i < 4; i++ {
				to := hosts[i%3]
				if u == "carol" {
					to = hosts[(i+2)%3]
				}
				r := e.Move(context.Background(), Request{User: u, To: to, Force: true})
				if r.Outcome != OutcomeMoved && r.Reason != ReasonSameHost {
					t.Errorf("move %s → %s: %v", u, to, r)
					return
				}
				mu.Lock()
				moves++
				mu.Unlock()
			}
		}(u)
	}
	movers.Wait()
	time.Sleep(50 * time.Millisecond)
	stop()
	writers.Wait()
	if err := werr.Load(); err != nil {
		t.Fatalf("delivery failed: %v", err)
	}
	if _, err := e.Done(context.Background(), DoneOptions{}); err != nil {
		t.Fatal(err)
	}

	total := 0
	for _, u := range users {
		d, _ := passwd.Open(f.passwd, passwd.Options{})
		en, _ := d.Lookup(context.Background(), u)
		h, _ := f.cluster.HostOf(en.Home)
		got := countIDs(t, f.real(h.Name, en.Home))
		m.delivered.Range(func(k, v any) bool {
			if v.(string) != u {
				return true
			}
			total++
			if got[k.(string)] != 1 {
				t.Errorf("%s: message %s is in the final home %d times", u, k, got[k.(string)])
			}
			delete(got, k.(string))
			return true
		})
		for id, n := range got {
			t.Errorf("%s: message %s (%d times) was never reported delivered", u, id, n)
		}
	}
	t.Logf("%d moves, %d messages delivered, %d deliveries refused while held and retried", moves, total, m.refused.Load())
	if m.refused.Load() == 0 {
		t.Log("no delivery met a held home this time")
	}
}

// A destination that fills up during the copy: the move fails with
// no-space, the source is untouched and the staging is gone.
func TestDiskFillsDuringCopy(t *testing.T) {
	for _, pre := range []bool{true, false} {
		t.Run(fmt.Sprintf("precopy=%v", pre), func(t *testing.T) { diskFillsDuringCopy(t, pre) })
	}
}

func diskFillsDuringCopy(t *testing.T, precopy bool) {
	if !isRoot {
		t.Skip("needs root to mount a small tmpfs")
	}
	f := newFixture(t, map[string]string{"alice": "h1"})
	f.makeMaildir(t, "alice", "h1", 10)
	big := f.real("h1", "/h1/alice/Maildir/cur/1699999999.big:2,S")
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f.chownTree(t, f.real("h1", "/h1/alice"), f.uids["alice"])
	before := snapshot(t, f.real("h1", "/h1/alice"))

	fsroot := f.real("h2", "/")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", fsroot).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", fsroot).Run() })
	os.MkdirAll(f.real("h2", "/h2"), 0o711)

	e := f.engine(t)
	e.PreCopy = precopy
	firstCopy := StepCopy
	if precopy {
		firstCopy = StepPreCopy
	}
	e.Hook = func(user string, s Step) error {
		if s == firstCopy {
			// Something else takes most of the room after the check.
			fill := f.real("h2", "/h2/filler")
			fh, err := os.Create(fill)
			if err != nil {
				return err
			}
			defer fh.Close()
			var st syscall.Statfs_t
			syscall.Statfs(fsroot, &st)
			free := int64(st.Bavail) * int64(st.Bsize)
			fh.Write(make([]byte, free-(1<<20)))
		}
		return nil
	}
	r := e.Move(context.Background(), Request{User: "alice", To: "h2"})
	if r.Outcome != OutcomeFailed || r.Reason != ReasonNoSpace {
		t.Fatalf("got %v, want failed (no-space)", r)
	}
	if !strings.Contains(r.Err.Error(), "no space") {
		t.Errorf("error does not say so: %v", r.Err)
	}
	f.settled(t, "alice", "h1", before)
	ents, _ := os.ReadDir(f.real("h2", "/h2/"+stagingDir))
	if len(ents) != 0 {
		t.Fatalf("staging left: %v", ents)
	}
}
