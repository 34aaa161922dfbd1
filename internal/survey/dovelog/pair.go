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
	ClosedByLogout    Close = iota // an end line of the session itself
	ClosedByRestart                // Dovecot restarted or stopped on the host
	ClosedByChild                  // the mail process died
	ClosedAtEnd                    // still open at the end of the log: counted up to its last line
	ClosedByReplaced               // a new login reused the session id
	ClosedByPidReused              // a new login got the session's mail process pid: that process had ended
	numCloses
)

var closeNames = [numCloses]string{"logout", "restart", "child-gone", "end-of-log", "replaced", "pid-reused"}

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
	// called at least once for each distinct name, from the goroutines
	// that parse as well as from the one that pairs: it must be safe for
	// concurrent use, and give a name the same answer every time. The
	// name it is given may be valid only during the call (it may lie in
	// a block of the log): it must keep no part of it. Names it does not
	// know keep their own totals, spelling by spelling. Nil keeps names
	// as they are, each known.
	Normalize func(logName string) (name string, known bool)
	// OnSession, if set, sees every session as it closes.
	OnSession func(Session)
	// UsersHint is how many distinct users to expect (0: no idea).
	UsersHint int
}

// Stats counts what the pairer did.
type Stats struct {
	Logins       int64
	Closed       [numCloses]int64 // sessions closed, by how
	Unmatched    int64            // end lines with no open session (a login before the log began)
	UnknownUsers int64            // distinct log names Normalize did not know
	Counted      int64            // sessions that overlap the window
}

// Paired is the number of sessions whose end line was found.
func (s Stats) Paired() int64 { return s.Closed[ClosedByLogout] }

// rec is what the pairer needs of an event: less to copy from the parsers
// to the pairer than a whole Event.
type rec struct {
	time     int64
	user     []byte
	userHash [2]uint64
	sid      uint64
	host     uint64
	pid      int32
	uid      int32 // the user's index + 1, if a parser found it; else 0
	named    int32 // the Normalize answer for user, if a parser asked: index + 1 in the block's; else 0
	kind     Kind
	svc      Service
}

// named is what Normalize said of a log name, asked by a parser for the
// pairer.
type named struct {
	name  string    // the directory's name, if known
	key   [2]uint64 // its hash, if known
	known bool
}

func (ev *Event) rec() rec {
	return rec{time: ev.Time, user: ev.User, userHash: ev.UserHash, sid: ev.SessionHash, host: ev.HostHash,
		pid: ev.PID, kind: ev.Kind, svc: ev.Service}
}

// A Pairer turns a time-ordered stream of events from one or more sources
// (a source is one host's log: its rotated files in order) into sessions,
// and sessions into per-user totals. It keeps only open sessions and one
// small record a user, so memory does not grow with the log.
//
// Pairing, within one host of one source: an end line with a session id
// takes the open session with that id; else one with a pid takes the
// user's oldest open session of that pid; else the user's oldest open
// session of the service. Ids that are present on both sides must agree.
//
// A session whose end line is lost does not stay open to the end of the
// log when its mail process pid (a login's mpid=) comes back: a login
// whose mpid is that of an open session on the same host, of any user,
// closes that session at the new login's time, since the old process
// must have ended for the system to hand its pid out again (an IMAP or
// POP3 process serves one connection at a time: client_limit = 1, as
// Dovecot ships). A login without mpid (Dovecot 1.x's PID= is the login
// process, which serves many logins at once) closes nothing.
type Pairer struct {
	opt          PairOptions
	since, until int64

	users  chunked[userAgg]
	names  arena
	byHash *userTable // 128-bit hash of a log name → users index
	byName *userTable // 128-bit hash of a normalised name → users index
	named  []named    // the Normalize answers of the block whose events are added (Scan's)

	hosts    map[hostKey]int32
	lastHost hostKey
	lastID   int32

	sess   []sessRec
	free   int32     // free list head through next, -1 if empty
	bySID  *sidTable // sidKey → sess index
	byPID  *sidTable // pidKey → sess index: the newest open session of a mail process
	open   int64
	maxT   []int64 // per source: latest time seen, minInt64 if none
	stats  Stats
	srcEnd []bool
}

type hostKey struct {
	src  int
	host uint64
}

// sidKey mixes a host into a session id hash. A clash only costs the
// faster way of pairing: the session is still found by the user's list.
func sidKey(host int32, sid uint64) uint64 {
	k := sid ^ (uint64(host)+1)*0x9e3779b97f4a7c15
	if k == 0 {
		k = 1
	}
	return k
}

// pidKey mixes a host and a pid into a table key (a finaliser of
// splitmix64, so that the low bits the table probes on depend on both).
func pidKey(host int32, pid int32) uint64 {
	k := uint64(uint32(host))<<32 | uint64(uint32(pid))
	k ^= k >> 30
	k *= 0xbf58476d1ce4e5b9
	k ^= k >> 27
	k *= 0x94d049bb133111eb
	k ^= k >> 31
	if k == 0 {
		k = 1
	}
	return k
}

// userAgg is one user's running totals: 64 bytes, one cache line.
type userAgg struct {
	name      span  // its name; the top bit says Normalize knew it
	open      int32 // sessions open now
	sessions  int32 // counted sessions
	head      int32 // oldest open session, -1 if none
	tail      int32
	busySince int64 // current busy period (clipped), while open > 0
	busyUntil int64
	doneUntil int64 // end of the last finished busy period
	connect   int64 // ns
	last      int64 // latest counted login, math.MinInt64 if none
}

const knownBit = span(1) << 63

type sessRec struct {
	key        [2]uint64 // the user's key, as the log named the user
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
		byHash: newUserTable(opt.UsersHint),
		byName: newUserTable(opt.UsersHint),
		hosts:  map[hostKey]int32{},
		lastID: -1,
		free:   -1,
		bySID:  newSidTable(),
		byPID:  newSidTable(),
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
	if ev.UserHash == [2]uint64{} && len(ev.User) > 0 || ev.SessionHash == 0 && len(ev.Session) > 0 || ev.HostHash == 0 && len(ev.Host) > 0 {
		ev.hash()
	}
	r := ev.rec()
	p.add(src, &r)
}

func (p *Pairer) add(src int, r *rec) {
	p.See(src, r.time)
	switch r.kind {
	case Login:
		p.login(src, r)
	case End:
		p.end(src, r)
	case Restart:
		h := p.hostID(src, r.host)
		p.closeWhere(r.time, ClosedByRestart, func(s *sessRec) bool { return s.host == h })
	case ChildGone:
		if r.pid == 0 {
			return
		}
		h := p.hostID(src, r.host)
		if i, ok := p.byPID.get(pidKey(h, r.pid)); ok {
			if s := &p.sess[i]; s.live && s.host == h && s.pid == r.pid && s.svc == r.svc {
				p.close(i, r.time, ClosedByChild)
			}
		}
	}
}

// See records that source src had a line at time t (any line), so that
// sessions still open at its end are counted up to it.
func (p *Pairer) See(src int, t int64) {
	for src >= len(p.maxT) {
		p.maxT = append(p.maxT, math.MinInt64)
		p.srcEnd = append(p.srcEnd, false)
	}
	if t > p.maxT[src] {
		p.maxT[src] = t
	}
}

// EndSource closes the sessions still open in source src at the latest
// time it showed.
func (p *Pairer) EndSource(src int) {
	if src >= len(p.maxT) || p.maxT[src] == math.MinInt64 || p.srcEnd[src] {
		return
	}
	t := p.maxT[src]
	p.srcEnd[src] = true
	hosts := map[int32]bool{}
	for k, id := range p.hosts {
		if k.src == src {
			hosts[id] = true
		}
	}
	p.closeWhere(t, ClosedAtEnd, func(s *sessRec) bool { return hosts[s.host] })
}

func (p *Pairer) hostID(src int, h uint64) int32 {
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

// userID returns the index of the user a log name names, making one for
// a name not seen before. nm is what Normalize said of it, if a parser
// asked it already.
func (p *Pairer) userID(raw []byte, h [2]uint64, nm *named) int32 {
	if id := p.byHash.get(h); id >= 0 {
		return id
	}
	var id int32
	if p.opt.Normalize == nil {
		// Each log name is its own user, and this one is new.
		id = p.newUser(raw, true)
	} else {
		if nm == nil {
			nm = &named{}
			nm.name, nm.known = p.opt.Normalize(string(raw))
			if nm.known {
				nm.key = nameKey(nm.name)
			}
		}
		if !nm.known {
			// Not the directory's: its totals are not wanted, so it need
			// not be merged with other spellings of it either.
			id = p.newUser(raw, false)
		} else if id = p.byName.get(nm.key); id < 0 {
			id = p.newUser([]byte(nm.name), true)
			p.byName.put(nm.key, id)
		}
	}
	p.byHash.put(h, id)
	return id
}

// nameKey is the key of a normalised name in byName.
func nameKey(name string) [2]uint64 {
	return [2]uint64{maphash.String(hashSeed, name), maphash.String(hashSeed2, name)}
}

// namedOf is what a parser found Normalize to say of r's user, if it asked.
func (p *Pairer) namedOf(r *rec) *named {
	if i := int(r.named) - 1; i >= 0 && i < len(p.named) {
		return &p.named[i]
	}
	return nil
}

func (p *Pairer) newUser(name []byte, known bool) int32 {
	sp := p.names.add(name)
	if known {
		sp |= knownBit
	}
	id := p.users.add(userAgg{name: sp, head: -1, tail: -1,
		doneUntil: math.MinInt64, last: math.MinInt64})
	if !known {
		p.stats.UnknownUsers++
	}
	return id
}

func (p *Pairer) login(src int, ev *rec) {
	p.stats.Logins++
	u := ev.uid - 1
	if ev.uid == 0 {
		u = p.userID(ev.user, ev.userHash, p.namedOf(ev))
	}
	h := p.hostID(src, ev.host)
	sid := ev.sid
	if sid != 0 {
		if old, ok := p.bySID.get(sidKey(h, sid)); ok && p.sess[old].sid == sid && p.sess[old].host == h {
			p.close(old, ev.time, ClosedByReplaced)
		}
	}
	if ev.pid != 0 {
		if old, ok := p.byPID.get(pidKey(h, ev.pid)); ok && p.sess[old].live && p.sess[old].pid == ev.pid && p.sess[old].host == h {
			p.close(old, ev.time, ClosedByPidReused)
		}
	}
	i := p.alloc()
	s := &p.sess[i]
	*s = sessRec{key: ev.userHash, user: u, host: h, pid: ev.pid, svc: ev.svc, live: true, sid: sid, start: ev.time, prev: -1, next: -1}
	if sid != 0 {
		p.bySID.set(sidKey(h, sid), i)
	}
	if ev.pid != 0 {
		p.byPID.set(pidKey(h, ev.pid), i)
	}
	ua := p.users.at(u)
	if ua.tail >= 0 {
		p.sess[ua.tail].next = i
		s.prev = ua.tail
	} else {
		ua.head = i
	}
	ua.tail = i
	t := p.clip(ev.time)
	if ua.open == 0 {
		ua.busySince = max(t, ua.doneUntil)
		ua.busyUntil = ua.busySince
	}
	ua.open++
	p.open++
}

func (p *Pairer) end(src int, ev *rec) {
	h := p.hostID(src, ev.host)
	sid := ev.sid
	if sid != 0 {
		if i, ok := p.bySID.get(sidKey(h, sid)); ok {
			if s := &p.sess[i]; s.key == ev.userHash && s.sid == sid && s.host == h {
				p.close(i, ev.time, ClosedByLogout)
				return
			}
		}
	}
	u := ev.uid - 1
	if ev.uid == 0 {
		u = p.userID(ev.user, ev.userHash, p.namedOf(ev))
	}
	// By pid, then the oldest open session; ids given on both sides must agree.
	match := int32(-1)
	for i := p.users.at(u).head; i >= 0; i = p.sess[i].next {
		s := &p.sess[i]
		if s.host != h || s.svc != ev.svc {
			continue
		}
		if sid != 0 && s.sid != 0 && s.sid != sid {
			continue
		}
		if ev.pid != 0 && s.pid != 0 && s.pid != ev.pid {
			continue
		}
		if ev.pid != 0 && s.pid == ev.pid {
			match = i
			break
		}
		if match < 0 {
			match = i
			if ev.pid == 0 {
				break
			}
		}
	}
	if match < 0 {
		p.stats.Unmatched++
		return
	}
	p.close(match, ev.time, ClosedByLogout)
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
	ua := p.users.at(s.user)
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
		k := sidKey(s.host, s.sid)
		if j, ok := p.bySID.get(k); ok && j == i {
			p.bySID.del(k)
		}
	}
	if s.pid != 0 {
		k := pidKey(s.host, s.pid)
		if j, ok := p.byPID.get(k); ok && j == i {
			p.byPID.del(k)
		}
	}
	end := max(t, s.start)
	counted := s.start <= p.until && (s.start >= p.since || end > p.since)
	if counted {
		p.stats.Counted++
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
		p.opt.OnSession(Session{User: p.names.get(ua.name &^ knownBit), Service: s.svc, Start: time.Unix(0, s.start).UTC(),
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
	out := make(map[string]Totals, p.users.n)
	p.Each(func(name string, t Totals) { out[name] = t })
	return out
}

// Each calls fn for every user's totals, without building a map.
func (p *Pairer) Each(fn func(name string, t Totals)) {
	for i := 0; i < p.users.n; i++ {
		ua := p.users.at(int32(i))
		t := Totals{Connect: time.Duration(ua.connect), Sessions: int64(ua.sessions), Known: ua.name&knownBit != 0}
		if ua.last != math.MinInt64 {
			t.LastLogin = time.Unix(0, ua.last).UTC()
		}
		fn(p.names.get(ua.name&^knownBit), t)
	}
}

// prefetch touches the user table's slots and the user records that
// recs will need, with no effect but on the caches: the loads do not
// depend on each other, so the processor overlaps their misses, which
// add, one event at a time, cannot. It returns a value only so the loads
// are not removed.
func (p *Pairer) prefetch(recs []rec) uint64 {
	var sink uint64
	t := p.byHash.cur.Load()
	for i := range recs {
		r := &recs[i]
		if r.kind != Login && r.kind != End {
			continue
		}
		if r.uid > 0 { // a parser found the user
			sink += uint64(p.users.at(r.uid - 1).open)
			continue
		}
		s := &t.slots[r.userHash[0]&t.mask]
		switch {
		case s.w != 0 && s.k0 == r.userHash[0]:
			sink += uint64(p.users.at(int32(s.w>>32) - 1).open)
		case s.w == 0 && len(r.user) > 0:
			sink += uint64(r.user[0]) // a new user: its name is copied
		}
	}
	return sink
}
