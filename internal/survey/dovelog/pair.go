package dovelog

import (
	"hash/maphash"
	"math"
	"time"
)

// Close says how a session ended.
type Close uint8

// Ways a session ends.
const (
	ClosedByLogout   Close = iota // an end line of the session itself
	ClosedByRestart               // Dovecot restarted or stopped on the host
	ClosedByChild                 // the mail process died
	ClosedAtEnd                   // still open at the end of the log: counted up to its last line
	ClosedByReplaced              // a new login reused the session id
	numCloses
)

var closeNames = [numCloses]string{"logout", "restart", "child-gone", "end-of-log", "replaced"}

func (c Close) String() string {
	if c < numCloses {
		return closeNames[c]
	}
	return "close?"
}

// Session is one paired session, as given to PairOptions.OnSession.
type Session struct {
	User    string // as normalised
	Service Service
	Start   time.Time
	End     time.Time
	Closed  Close
	Counted bool // it overlaps the window
}

// Totals is what the log says about one user, within the window.
type Totals struct {
	Connect   time.Duration // the union of the user's sessions
	Sessions  int64
	LastLogin time.Time // zero if none
	Known     bool      // Normalize knew the user
}

// PairOptions configure a Pairer.
type PairOptions struct {
	// Since and Until bound the window (zero: unbounded). Sessions are
	// clipped to it; a session counts if it overlaps it.
	Since, Until time.Time
	// Normalize maps a user name as the log writes it to the name the
	// directory uses, and says whether the directory knows it. It is
	// called once for each distinct name. Nil keeps names as they are.
	Normalize func(logName string) (name string, known bool)
	// OnSession, if set, sees every session as it closes.
	OnSession func(Session)
}

// Stats counts what the pairer did.
type Stats struct {
	Logins       int64
	Closed       [numCloses]int64 // sessions closed, by how
	Unmatched    int64            // end lines with no open session (a login before the log began)
	UnknownUsers int64            // distinct log users Normalize did not know
}

// Paired is the number of sessions whose end line was found.
func (s Stats) Paired() int64 { return s.Closed[ClosedByLogout] }

// A Pairer turns a time-ordered stream of events from one or more sources
// (a source is one host's log: its rotated files in order) into sessions,
// and sessions into per-user totals. It keeps only open sessions and one
// small record a user, so memory does not grow with the log.
//
// Pairing, within one host of one source: an end line with a session id
// takes the open session with that id; else one with a pid takes the
// user's oldest open session of that pid; else the user's oldest open
// session of the service. Ids that are present on both sides must agree.
type Pairer struct {
	opt          PairOptions
	since, until int64

	seed maphash.Seed

	users  []userAgg
	byRaw  map[string]int32 // log name → users index
	byName map[string]int32 // normalised name → users index

	hosts    map[hostKey]int32
	lastHost hostKey
	lastID   int32

	sess   []sessRec
	free   int32 // free list head through next, -1 if empty
	bySID  map[sidKey]int32
	open   int64
	maxT   map[int]int64 // per source: latest time seen
	stats  Stats
	srcEnd map[int]bool
}

type hostKey struct {
	src  int
	host uint64
}

type sidKey struct {
	host int32
	sid  uint64
}

type userAgg struct {
	name      string
	known     bool
	open      int32
	head      int32 // oldest open session, -1 if none
	tail      int32
	busySince int64 // current busy period (clipped), while open > 0
	busyUntil int64
	doneUntil int64 // end of the last finished busy period
	connect   int64 // ns
	sessions  int64
	last      int64 // latest counted login, math.MinInt64 if none
}

type sessRec struct {
	user       int32
	host       int32
	pid        int32
	svc        Service
	live       bool
	sid        uint64
	start      int64
	prev, next int32
}

// NewPairer returns an empty Pairer.
func NewPairer(opt PairOptions) *Pairer {
	p := &Pairer{
		opt:    opt,
		since:  math.MinInt64,
		until:  math.MaxInt64,
		seed:   maphash.MakeSeed(),
		byRaw:  map[string]int32{},
		byName: map[string]int32{},
		hosts:  map[hostKey]int32{},
		lastID: -1,
		free:   -1,
		bySID:  map[sidKey]int32{},
		maxT:   map[int]int64{},
		srcEnd: map[int]bool{},
	}
	if !opt.Since.IsZero() {
		p.since = opt.Since.UnixNano()
	}
	if !opt.Until.IsZero() {
		p.until = opt.Until.UnixNano()
	}
	return p
}

func (p *Pairer) clip(t int64) int64 {
	if t < p.since {
		return p.since
	}
	if t > p.until {
		return p.until
	}
	return t
}

// Add takes one event of source src. Events must come in time order
// across sources (within a source, in log order).
func (p *Pairer) Add(src int, ev *Event) {
	if t, ok := p.maxT[src]; !ok || ev.Time > t {
		p.maxT[src] = ev.Time
	}
	switch ev.Kind {
	case Login:
		p.login(src, ev)
	case End:
		p.end(src, ev)
	case Restart:
		h := p.hostID(src, ev.Host)
		p.closeWhere(ev.Time, ClosedByRestart, func(s *sessRec) bool { return s.host == h })
	case ChildGone:
		h := p.hostID(src, ev.Host)
		p.closeWhere(ev.Time, ClosedByChild, func(s *sessRec) bool {
			return s.host == h && s.pid == ev.PID && s.svc == ev.Service
		})
	}
}

// See records that source src had a line at time t (any line), so that
// sessions still open at its end are counted up to it.
func (p *Pairer) See(src int, t int64) {
	if m, ok := p.maxT[src]; !ok || t > m {
		p.maxT[src] = t
	}
}

// EndSource closes the sessions still open in source src at the latest
// time it showed.
func (p *Pairer) EndSource(src int) {
	t, ok := p.maxT[src]
	if !ok || p.srcEnd[src] {
		return
	}
	p.srcEnd[src] = true
	hosts := map[int32]bool{}
	for k, id := range p.hosts {
		if k.src == src {
			hosts[id] = true
		}
	}
	p.closeWhere(t, ClosedAtEnd, func(s *sessRec) bool { return hosts[s.host] })
}

func (p *Pairer) hostID(src int, host []byte) int32 {
	var h uint64
	if len(host) > 0 {
		h = maphash.Bytes(p.seed, host)
	}
	k := hostKey{src, h}
	if k == p.lastHost && p.lastID >= 0 {
		return p.lastID
	}
	id, ok := p.hosts[k]
	if !ok {
		id = int32(len(p.hosts))
		p.hosts[k] = id
	}
	p.lastHost, p.lastID = k, id
	return id
}

func (p *Pairer) userID(raw []byte) int32 {
	if id, ok := p.byRaw[string(raw)]; ok {
		return id
	}
	name, known := string(raw), true
	if p.opt.Normalize != nil {
		name, known = p.opt.Normalize(name)
	}
	id, ok := p.byName[name]
	if !ok {
		id = int32(len(p.users))
		p.users = append(p.users, userAgg{name: name, known: known, head: -1, tail: -1,
			doneUntil: math.MinInt64, last: math.MinInt64})
		p.byName[name] = id
		if !known {
			p.stats.UnknownUsers++
		}
	}
	p.byRaw[string(raw)] = id
	return id
}

func (p *Pairer) sid(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	h := maphash.Bytes(p.seed, b)
	if h == 0 {
		h = 1
	}
	return h
}

func (p *Pairer) login(src int, ev *Event) {
	p.stats.Logins++
	u := p.userID(ev.User)
	h := p.hostID(src, ev.Host)
	sid := p.sid(ev.Session)
	if sid != 0 {
		if old, ok := p.bySID[sidKey{h, sid}]; ok {
			p.close(old, ev.Time, ClosedByReplaced)
		}
	}
	i := p.alloc()
	s := &p.sess[i]
	*s = sessRec{user: u, host: h, pid: ev.PID, svc: ev.Service, live: true, sid: sid, start: ev.Time, prev: -1, next: -1}
	if sid != 0 {
		p.bySID[sidKey{h, sid}] = i
	}
	ua := &p.users[u]
	if ua.tail >= 0 {
		p.sess[ua.tail].next = i
		s.prev = ua.tail
	} else {
		ua.head = i
	}
	ua.tail = i
	t := p.clip(ev.Time)
	if ua.open == 0 {
		ua.busySince = max(t, ua.doneUntil)
		ua.busyUntil = ua.busySince
	}
	ua.open++
	p.open++
}

func (p *Pairer) end(src int, ev *Event) {
	u := p.userID(ev.User)
	h := p.hostID(src, ev.Host)
	sid := p.sid(ev.Session)
	if sid != 0 {
		if i, ok := p.bySID[sidKey{h, sid}]; ok && p.sess[i].user == u {
			p.close(i, ev.Time, ClosedByLogout)
			return
		}
	}
	// By pid, then the oldest open session; ids given on both sides must agree.
	match := int32(-1)
	for i := p.users[u].head; i >= 0; i = p.sess[i].next {
		s := &p.sess[i]
		if s.host != h || s.svc != ev.Service {
			continue
		}
		if sid != 0 && s.sid != 0 && s.sid != sid {
			continue
		}
		if ev.PID != 0 && s.pid != 0 && s.pid != ev.PID {
			continue
		}
		if ev.PID != 0 && s.pid == ev.PID {
			match = i
			break
		}
		if match < 0 {
			match = i
			if ev.PID == 0 {
				break
			}
		}
	}
	if match < 0 {
		p.stats.Unmatched++
		return
	}
	p.close(match, ev.Time, ClosedByLogout)
}

func (p *Pairer) alloc() int32 {
	if p.free >= 0 {
		i := p.free
		p.free = p.sess[i].next
		return i
	}
	p.sess = append(p.sess, sessRec{})
	return int32(len(p.sess) - 1)
}

func (p *Pairer) close(i int32, t int64, how Close) {
	s := &p.sess[i]
	ua := &p.users[s.user]
	// unlink from the user's list
	if s.prev >= 0 {
		p.sess[s.prev].next = s.next
	} else {
		ua.head = s.next
	}
	if s.next >= 0 {
		p.sess[s.next].prev = s.prev
	} else {
		ua.tail = s.prev
	}
	if s.sid != 0 {
		k := sidKey{s.host, s.sid}
		if j, ok := p.bySID[k]; ok && j == i {
			delete(p.bySID, k)
		}
	}
	end := max(t, s.start)
	counted := s.start <= p.until && (s.start >= p.since || end > p.since)
	if counted {
		ua.sessions++
		if s.start > ua.last {
			ua.last = s.start
		}
	}
	ua.busyUntil = max(ua.busyUntil, p.clip(end))
	ua.open--
	if ua.open == 0 {
		if ua.busyUntil > ua.busySince {
			ua.connect += ua.busyUntil - ua.busySince
		}
		ua.doneUntil = max(ua.doneUntil, ua.busyUntil)
	}
	p.stats.Closed[how]++
	p.open--
	if p.opt.OnSession != nil {
		p.opt.OnSession(Session{User: ua.name, Service: s.svc, Start: time.Unix(0, s.start).UTC(),
			End: time.Unix(0, end).UTC(), Closed: how, Counted: counted})
	}
	s.live = false
	s.next = p.free
	p.free = i
}

// closeWhere closes every open session that keep selects, oldest first.
func (p *Pairer) closeWhere(t int64, how Close, keep func(*sessRec) bool) {
	if p.open == 0 {
		return
	}
	for i := range p.sess {
		if s := &p.sess[i]; s.live && keep(s) {
			p.close(int32(i), t, how)
		}
	}
}

// Open is the number of sessions open now.
func (p *Pairer) Open() int64 { return p.open }

// Stats returns the counts so far.
func (p *Pairer) Stats() Stats { return p.stats }

// Totals returns each user's totals, by normalised name. Call it after
// EndSource for every source: sessions still open are not in it.
func (p *Pairer) Totals() map[string]Totals {
	out := make(map[string]Totals, len(p.users))
	for i := range p.users {
		ua := &p.users[i]
		t := Totals{Connect: time.Duration(ua.connect), Sessions: ua.sessions, Known: ua.known}
		if ua.last != math.MinInt64 {
			t.LastLogin = time.Unix(0, ua.last).UTC()
		}
		out[ua.name] = t
	}
	return out
}

// Each calls fn for every user's totals, without building a map.
func (p *Pairer) Each(fn func(name string, t Totals)) {
	for i := range p.users {
		ua := &p.users[i]
		t := Totals{Connect: time.Duration(ua.connect), Sessions: ua.sessions, Known: ua.known}
		if ua.last != math.MinInt64 {
			t.LastLogin = time.Unix(0, ua.last).UTC()
		}
		fn(ua.name, t)
	}
}
