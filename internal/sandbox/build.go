package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/maildist/maildist/internal/cluster"
)

// builder carries one Build. Mailboxes are first written into a staging
// folder (DIR/.build/<user>) while the input streams by, because a corpus
// archive says which users it holds only at its end; once every user is
// known, uids and hosts are assigned and each home is renamed into place.
type builder struct {
	o        Options
	staging  string
	root     bool // running as root: homes belong to their users
	logStart time.Time
	logEnd   time.Time
	progress *progress

	// boxes is written only by the goroutine that reads the input, and
	// read by others only after it is done.
	boxes  map[string]*mbox
	hostNm []string // host names, for the Maildir file names
}

func newBuilder(o Options) *builder {
	b := &builder{
		o:        o,
		staging:  filepath.Join(o.Dir, ".build"),
		root:     os.Geteuid() == 0,
		progress: &progress{fn: o.Progress},
		boxes:    map[string]*mbox{},
	}
	b.logStart, b.logEnd = logWindow(o.Seed, o.LogDays)
	for _, h := range o.Hosts {
		b.hostNm = append(b.hostNm, h.Name)
	}
	return b
}

// workers is how many goroutines write mailboxes: writing is mostly
// system calls, so a few more than the cores keeps them busy.
func workers() int { return max(2, runtime.GOMAXPROCS(0)+1) }

func (b *builder) build(ctx context.Context) (*Cluster, error) {
	o := b.o
	for _, d := range []string{"etc", "state", "logs", "cluster", ".build"} {
		if err := os.Mkdir(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}

	// 1. Mailboxes, into staging.
	var missing []string
	if o.Corpus == "" {
		var err error
		if missing, err = b.generate(ctx); err != nil {
			return nil, err
		}
	} else {
		if err := b.readCorpus(ctx); err != nil {
			return nil, err
		}
		taken := map[string]bool{}
		for name := range b.boxes {
			taken[name] = true
		}
		missing = userNames(newRand(o.Seed, "missing-names", "", 0), o.MissingHomes, taken)
	}

	// 2. Who is who: names sorted, uids in that order, hosts by share.
	names := make([]string, 0, len(b.boxes)+len(missing))
	for name := range b.boxes {
		names = append(names, name)
	}
	names = append(names, missing...)
	slices.Sort(names)
	if len(names) == 0 {
		return nil, errors.New("sandbox: no users: the corpus holds no messages")
	}
	hostOf := place(len(names), o.Hosts, newRand(o.Seed, "place", "", 0))
	c := &Cluster{
		Dir:      o.Dir,
		Config:   filepath.Join(o.Dir, "maildist.toml"),
		Passwd:   filepath.Join(o.Dir, "etc", "passwd"),
		Log:      filepath.Join(o.Dir, "logs", "dovecot.log"),
		Domain:   o.Domain,
		Layout:   o.Layout,
		Hosts:    o.Hosts,
		LogStart: b.logStart,
		LogEnd:   b.logEnd,
	}
	cc := c.cluster()
	for i, name := range names {
		h := o.Hosts[hostOf[i]]
		u := User{
			Name:     name,
			Host:     h.Name,
			Home:     cc.HomeFor(name, cc.Hosts[hostOf[i]]),
			UID:      o.UIDBase + i,
			GID:      o.UIDBase + i,
			Password: password(newRand(o.Seed, "password", name, 0)),
			Status:   cluster.StatusOK,
		}
		if b.boxes[name] == nil {
			u.Status = cluster.StatusMissingHome
		}
		c.Users = append(c.Users, u)
	}

	// 3. Finish each mailbox (uidlists, owners, times), then move it home.
	p := newPool(ctx, workers())
	for i := range c.Users {
		u := &c.Users[i]
		m := b.boxes[u.Name]
		if m == nil {
			continue
		}
		if !p.Go(func() error { return b.finish(m, u) }) {
			break
		}
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	if err := b.moveHomes(c); err != nil {
		return nil, err
	}
	if err := os.Remove(b.staging); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	// 4. The directory, the config and the log.
	if err := writePasswd(c.Passwd, c.Users); err != nil {
		return nil, err
	}
	if err := writeConfig(c.Config, c); err != nil {
		return nil, err
	}
	if err := writeLog(c.Log, o.Seed, c); err != nil {
		return nil, err
	}
	if err := b.stampTop(c); err != nil {
		return nil, err
	}
	b.progress.finish()
	return c, nil
}

// finish completes a staged mailbox and fills in what the user's row says
// about it.
func (b *builder) finish(m *mbox, u *User) error {
	if err := m.finish(b, u.UID, u.GID); err != nil {
		return fmt.Errorf("sandbox: user %s: %w", u.Name, err)
	}
	for _, msg := range m.msgs {
		u.Messages++
		u.Bytes += msg.size
	}
	u.Folders = len(m.folders) - 1 // INBOX is not a Maildir++ folder
	return nil
}

// moveHomes renames every staged home to its place under its host's root.
// The host root, and any {hash2} folder between it and the homes, belong
// to root with mode 0711: a delivery agent running as the user can reach
// its home but cannot make a new one if the home is renamed away (which is
// what makes hold = "rename" safe).
func (b *builder) moveHomes(c *Cluster) error {
	for _, h := range c.Hosts {
		fsroot := c.FSRoot(h.Name)
		if err := os.Mkdir(fsroot, 0o755); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		if err := b.mkdirRoot(filepath.Join(fsroot, h.Name)); err != nil {
			return err
		}
	}
	for _, u := range c.Users {
		m := b.boxes[u.Name]
		if m == nil {
			continue
		}
		real := c.RealPath(u.Home)
		rootDir := filepath.Join(c.FSRoot(u.Host), u.Host)
		for _, d := range parentsBetween(rootDir, filepath.Dir(real)) {
			if _, err := os.Lstat(d); err == nil {
				continue
			}
			if err := b.mkdirRoot(d); err != nil {
				return err
			}
		}
		if err := os.Rename(m.home, real); err != nil {
			return fmt.Errorf("sandbox: move home of %s into place: %w", u.Name, err)
		}
		// A rename may touch the folder it moves; its times are the
		// mailbox's, not the clock's.
		if err := os.Chtimes(real, m.stamp, m.stamp); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	return nil
}

// mkdirRoot makes a root-owned folder of mode 0711 (when not root, it
// belongs to the current user, still 0711).
func (b *builder) mkdirRoot(d string) error {
	if err := os.Mkdir(d, 0o711); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Chmod(d, 0o711); err != nil { // whatever the umask says
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// parentsBetween lists the folders strictly below top down to and
// including dir, top first: the folders a layout such as
// {root}/{hash2}/{user} puts between a host root and a home.
func parentsBetween(top, dir string) []string {
	var out []string
	for d := dir; d != top && len(d) > len(top); d = filepath.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// stampTop gives every file and folder outside the homes the time the log
// ends, so that nothing in the sandbox says when it was built.
func (b *builder) stampTop(c *Cluster) error {
	t := c.LogEnd
	homes := map[string]bool{}
	for _, u := range c.Users {
		if u.Status == cluster.StatusOK {
			homes[c.RealPath(u.Home)] = true
		}
	}
	var dirs []string
	err := filepath.WalkDir(c.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if homes[p] {
			return fs.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, p) // after what is in them
			return nil
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chtimes(d, t, t); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	return nil
}

// place spreads n users over hosts by their shares: each host gets its
// share rounded by largest remainder, and the seats are shuffled.
func place(n int, hosts []HostSpec, r *rand.Rand) []int {
	shares := make([]float64, len(hosts))
	sum := 0.0
	for i, h := range hosts {
		shares[i] = h.Share
		sum += h.Share
	}
	if sum == 0 {
		for i := range shares {
			shares[i] = 1
		}
		sum = float64(len(shares))
	}
	counts := make([]int, len(hosts))
	type rem struct {
		i int
		f float64
	}
	var rems []rem
	given := 0
	for i, s := range shares {
		q := float64(n) * s / sum
		counts[i] = int(q)
		given += counts[i]
		rems = append(rems, rem{i, q - float64(counts[i])})
	}
	slices.SortStableFunc(rems, func(a, b rem) int {
		switch {
		case a.f > b.f:
			return -1
		case a.f < b.f:
			return 1
		}
		return 0
	})
	for k := 0; given < n; k++ {
		counts[rems[k%len(rems)].i]++
		given++
	}
	seats := make([]int, 0, n)
	for i, c := range counts {
		for range c {
			seats = append(seats, i)
		}
	}
	r.Shuffle(len(seats), func(i, j int) { seats[i], seats[j] = seats[j], seats[i] })
	return seats
}

// pool runs tasks on a few goroutines; the first error cancels the rest.
type pool struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	tasks  chan func() error
	wg     sync.WaitGroup
}

func newPool(ctx context.Context, n int) *pool {
	p := &pool{tasks: make(chan func() error, 2*n)}
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	for range n {
		p.wg.Go(func() {
			for f := range p.tasks {
				if p.ctx.Err() != nil {
					continue
				}
				if err := f(); err != nil {
					p.cancel(err)
				}
			}
		})
	}
	return p
}

// Go queues f; it reports false once the pool is cancelled.
func (p *pool) Go(f func() error) bool {
	select {
	case p.tasks <- f:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// Wait waits for the queued tasks and returns the first error.
func (p *pool) Wait() error {
	close(p.tasks)
	p.wg.Wait()
	err := context.Cause(p.ctx)
	p.cancel(nil)
	return err
}

// progress serialises calls to Options.Progress.
type progress struct {
	fn          func(done, total int)
	mu          sync.Mutex
	done, total int
	users       bool // counting users rather than input bytes
}

func (p *progress) set(done, total int) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	done = min(max(done, p.done), total)
	p.done, p.total = done, total
	p.fn(done, total)
}

func (p *progress) userDone() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.users {
		return
	}
	p.done = min(p.done+1, p.total)
	p.fn(p.done, p.total)
}

func (p *progress) countUsers(total int) {
	p.mu.Lock()
	p.users, p.total = true, total
	p.mu.Unlock()
}

func (p *progress) finish() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total == 0 {
		p.total = 1
	}
	p.done = p.total
	p.fn(p.done, p.total)
}
