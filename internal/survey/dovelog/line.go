package dovelog

import (
	"bytes"
	"hash/maphash"
	"time"
)

// Kind says what a log line means for the survey.
type Kind uint8

// Kinds of lines. Login, End, Restart and ChildGone change sessions; the
// others are counted and skipped.
const (
	Noise        Kind = iota // a Dovecot line that says nothing about sessions
	Login                    // an IMAP or POP3 login succeeded
	End                      // an IMAP or POP3 session ended
	Restart                  // Dovecot started or stopped: every open session of the host ends
	ChildGone                // a mail process died: the sessions it served end
	FailedLogin              // a login that did not succeed (auth failed, aborted, refused)
	Delivery                 // lmtp, lda, deliver: mail delivery, not a session
	OtherService             // a login or end of a service that is not IMAP or POP3
	Foreign                  // a syslog line of another program
	Malformed                // a line that could not be read
	NumKinds
)

var kindNames = [NumKinds]string{"noise", "login", "end", "restart", "child-gone",
	"failed-login", "delivery", "other-service", "foreign", "malformed"}

func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "kind?"
}

// Service is the protocol a session speaks.
type Service uint8

// Services that count.
const (
	NoService Service = iota
	IMAP
	POP3
)

func (s Service) String() string {
	switch s {
	case IMAP:
		return "imap"
	case POP3:
		return "pop3"
	}
	return "-"
}

// Event is what one line says. Its byte slices alias the line: copy them
// to keep them.
type Event struct {
	Kind    Kind
	Service Service
	PID     int32  // the mail process (mpid= of a login, <P> of a 2.3 prefix); 0 if not given
	Time    int64  // Unix nanoseconds
	User    []byte // Login, End
	Session []byte // session id, if the line has one
	Host    []byte // the syslog host name; nil in log_path format
	Reason  string // Malformed: what is wrong

	// Hashes of User (128 bits: two names never share one), Session and
	// Host (0 when empty), made here so that parallel parsers take the
	// work off the pairer.
	UserHash              [2]uint64
	SessionHash, HostHash uint64
}

// hashSeed and hashSeed2 are shared by every parser and pairer of the
// process.
var hashSeed, hashSeed2 = maphash.MakeSeed(), maphash.MakeSeed()

func hashOf(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	h := maphash.Bytes(hashSeed, b)
	if h == 0 {
		h = 1
	}
	return h
}

// hash fills the event's hashes.
func (ev *Event) hash() {
	if len(ev.User) > 0 {
		ev.UserHash = [2]uint64{maphash.Bytes(hashSeed, ev.User), maphash.Bytes(hashSeed2, ev.User)}
	}
	ev.SessionHash = hashOf(ev.Session)
	ev.HostHash = hashOf(ev.Host)
}

// Parser reads single lines. It keeps small caches, so it is not safe for
// concurrent use; give each goroutine its own.
type Parser struct {
	loc *time.Location
	ref time.Time // year anchor for dates without a year

	refGiven time.Time // what SetRef was given
	refSet   bool

	// year inference cache: last month/day seen and the year chosen
	ymKey  int
	ymYear int
	ymOK   bool
	// local wall clock → Unix cache, one hour wide
	hourKey  int64
	hourUnix int64
	// why the last timestamp could not be read, if it names a reason
	bad string
	// the last timestamp read
	stamp    [40]byte
	stampLen int
	stampT   int64
	// its minute: the seconds start at secAt, the fraction ends at
	// fracEnd, and the minute began at minT (Unix ns)
	secAt, fracEnd int
	minT           int64
	// where parseTimeSlow found them in the stamp it read
	slowSecAt, slowFracEnd int
}

// NewParser returns a parser for lines whose timestamps carry no zone in
// loc (nil: UTC). ref anchors dates without a year (syslog, Dovecot's
// default log_timestamp): a date more than two days after ref is taken to
// be from the year before. Give the time the log file was last written
// (its mtime). A zero ref takes the year 2000.
func NewParser(loc *time.Location, ref time.Time) *Parser {
	if loc == nil {
		loc = time.UTC
	}
	p := &Parser{loc: loc}
	p.SetRef(ref)
	return p
}

// SetRef changes the year anchor, for the next file.
func (p *Parser) SetRef(ref time.Time) {
	p.refGiven, p.refSet = ref, true
	if ref.IsZero() {
		ref = time.Date(2000, 12, 31, 0, 0, 0, 0, p.loc)
	}
	p.ref = ref.In(p.loc)
	p.ymKey = -1
	p.stampLen = 0
}

// use sets the year anchor to ref unless it is that already (keeping
// the caches).
func (p *Parser) use(ref time.Time) {
	if !p.refSet || !ref.Equal(p.refGiven) {
		p.SetRef(ref)
	}
}

// Parse reads one line (without its newline) into ev.
func (p *Parser) Parse(line []byte, ev *Event) {
	*ev = Event{}
	b := line
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if len(b) == 0 {
		ev.Kind = Noise
		return
	}
	// Dovecot 1.x log files: "dovecot: Apr 01 10:00:02 Info: imap-login: …"
	oneX := false
	if hasPrefix(b, "dovecot: ") {
		b = b[9:]
		oneX = true
	}
	t, n, ok := p.parseTime(b)
	if !ok {
		ev.Kind, ev.Reason = Malformed, "no timestamp"
		if p.bad != "" {
			ev.Reason = p.bad
		}
		return
	}
	ev.Time = t
	b = skipSpaces(b[n:])
	level, b := stripLevel(b)

	// Deliveries are a good part of a log: known at a glance.
	if len(b) > 4 && b[0] == 'l' && (hasPrefix(b, "lmtp(") || hasPrefix(b, "lda(")) {
		ev.Kind = Delivery
		return
	}
	pr, rest, ok := parsePrefix(b)
	if !ok {
		// Not "name…: ": a syslog host name comes first.
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 || oneX {
			ev.Kind, ev.Reason = Malformed, "no process name"
			return
		}
		ev.Host = b[:sp]
		b = skipSpaces(b[sp+1:])
		if pr, rest, ok = parsePrefix(b); !ok {
			ev.Kind = Foreign
			return
		}
		if !isDovecotName(pr.name) {
			ev.Kind = Foreign
			return
		}
	}
	if string(pr.name) == "dovecot" {
		// The syslog ident: the message starts with the process prefix,
		// or is one of master's own lines in 1.x.
		lv, m := stripLevel(rest)
		if lv != "" {
			level = lv
		}
		if restartLine(m) {
			ev.Kind = Restart
			ev.hash()
			return
		}
		if pr, rest, ok = parsePrefix(m); !ok {
			ev.Kind = Noise
			return
		}
	}
	lv, msg := stripLevel(rest)
	if lv != "" {
		level = lv
	}
	p.classify(ev, &pr, level, msg)
	switch ev.Kind {
	case Login, End, Restart, ChildGone:
		ev.hash()
	}
}

func (p *Parser) classify(ev *Event, pr *prefix, level string, msg []byte) {
	name := pr.name
	switch {
	case hasSuffix(name, "-login"):
		svc := serviceOf(name[:len(name)-6])
		var rest []byte
		switch {
		case hasPrefix(msg, "Login: "):
			rest = msg[7:]
		case hasPrefix(msg, "Logged in: "):
			rest = msg[11:]
		default:
			if hasPrefix(msg, "Disconnected") || hasPrefix(msg, "Aborted login") ||
				hasPrefix(msg, "Maximum number of connections") || bytes.Contains(msg, []byte("auth failed")) {
				ev.Kind = FailedLogin
			} else {
				ev.Kind = Noise
			}
			return
		}
		user, pid, session, ok := loginFields(rest)
		if !ok || len(user) == 0 {
			ev.Kind, ev.Reason = Malformed, "login without user"
			return
		}
		ev.User, ev.PID, ev.Session = user, pid, session
		if svc == NoService {
			ev.Kind = OtherService
			return
		}
		ev.Kind, ev.Service = Login, svc
	case isMailProcess(name):
		if !pr.hasArgs || len(pr.args) == 0 {
			ev.Kind = Noise
			return
		}
		if level != "Fatal" && level != "Panic" && !endMessage(msg) {
			ev.Kind = Noise
			return
		}
		ev.User, ev.PID, ev.Session = pr.args, pr.pid, pr.session
		ev.Service = serviceOf(name)
		if ev.Service == NoService {
			ev.Kind = OtherService
			return
		}
		ev.Kind = End
	case string(name) == "lmtp" || string(name) == "lda" || string(name) == "deliver" || string(name) == "dovecot-lda":
		ev.Kind = Delivery
	case string(name) == "master":
		if restartLine(msg) {
			ev.Kind = Restart
			return
		}
		// "service(imap): child 1234 killed with signal 9"
		if svcName, ok := between(msg, "service(", ')'); ok {
			m := msg[len("service(")+len(svcName)+1:]
			if hasPrefix(m, ": child ") {
				m = m[8:]
				i := 0
				for i < len(m) && m[i] >= '0' && m[i] <= '9' {
					i++
				}
				if i > 0 && (hasPrefix(m[i:], " killed") || hasPrefix(m[i:], " returned error")) {
					ev.Kind, ev.Service, ev.PID = ChildGone, serviceOf(svcName), atoi32(m[:i])
					if ev.Service == NoService {
						ev.Kind = Noise
					}
					return
				}
			}
		}
		ev.Kind = Noise
	default:
		ev.Kind = Noise
	}
}

// restartLine: "Dovecot v2.3.21 (…) starting up for imap" or master being
// stopped ("Killed with signal 15 (by pid=1 …)"); either way no session of
// the old master lives on (shutdown_clients, Dovecot's default).
func restartLine(m []byte) bool {
	if hasPrefix(m, "Dovecot v") && bytes.Contains(m, []byte("starting up")) {
		return true
	}
	return hasPrefix(m, "Killed with signal")
}

// endMessage says whether a mail process line reports the session's end.
func endMessage(m []byte) bool {
	if len(m) == 0 {
		return false
	}
	switch m[0] {
	case 'D':
		return hasPrefix(m, "Disconnected")
	case 'L':
		return hasPrefix(m, "Logged out")
	case 'C':
		return hasPrefix(m, "Connection closed")
	case 'S':
		return hasPrefix(m, "Server shutting down")
	case 'K':
		return hasPrefix(m, "Kicked") || hasPrefix(m, "Killed")
	}
	return false
}

func isMailProcess(name []byte) bool {
	switch string(name) {
	case "imap", "pop3", "IMAP", "POP3", "imap-hibernate", "submission", "managesieve":
		return true
	}
	return false
}

func serviceOf(name []byte) Service {
	switch string(name) {
	case "imap", "IMAP", "imap-hibernate":
		return IMAP
	case "pop3", "POP3":
		return POP3
	}
	return NoService
}

// isDovecotName: process names that may stand as a syslog ident of their
// own (Dovecot 1.x's deliver, or a syslog that splits the ident).
func isDovecotName(name []byte) bool {
	switch string(name) {
	case "dovecot", "imap", "pop3", "IMAP", "POP3", "imap-login", "pop3-login", "deliver", "lda", "dovecot-lda",
		"lmtp", "auth", "auth-worker", "master", "imap-hibernate", "submission", "submission-login",
		"managesieve", "managesieve-login", "indexer", "indexer-worker", "doveadm", "config", "anvil", "log", "dict", "stats":
		return true
	}
	return false
}

// prefix is a process prefix: name[pid](args)<pid><session>:
type prefix struct {
	name    []byte
	args    []byte
	hasArgs bool
	pid     int32
	session []byte
}

// prefixStop marks the bytes that end a process name.
var prefixStop = [256]bool{'(': true, '<': true, '[': true, ':': true, ' ': true}

// parsePrefix reads a process prefix and the ": " after it.
func parsePrefix(b []byte) (pr prefix, rest []byte, ok bool) {
	i := 0
	for i < len(b) && !prefixStop[b[i]] {
		i++
	}
	if i == 0 || i == len(b) {
		return pr, nil, false
	}
	pr.name = b[:i]
	if b[i] == '[' { // syslog "dovecot[7508]"
		j := bytes.IndexByte(b[i:], ']')
		if j < 0 {
			return pr, nil, false
		}
		i += j + 1
	}
	if i < len(b) && b[i] == '(' {
		j := bytes.IndexByte(b[i:], ')')
		if j < 0 {
			return pr, nil, false
		}
		pr.args, pr.hasArgs = b[i+1:i+j], true
		i += j + 1
	}
	if i < len(b) && b[i] == '<' {
		j := bytes.IndexByte(b[i:], '>')
		if j < 0 {
			return pr, nil, false
		}
		pr.pid = atoi32(b[i+1 : i+j])
		i += j + 1
		if i < len(b) && b[i] == '<' {
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return pr, nil, false
			}
			pr.session = b[i+1 : i+j]
			i += j + 1
		}
	}
	if i >= len(b) || b[i] != ':' {
		return pr, nil, false
	}
	i++
	if i < len(b) {
		if b[i] != ' ' {
			return pr, nil, false
		}
		i++
	}
	return pr, b[i:], true
}

// stripLevel removes a log level ("Info: ") from the front of b.
func stripLevel(b []byte) (string, []byte) {
	if len(b) < 6 {
		return "", b
	}
	var lv string
	switch b[0] {
	case 'I':
		lv = "Info"
	case 'E':
		lv = "Error"
	case 'W':
		lv = "Warning"
	case 'F':
		lv = "Fatal"
	case 'P':
		lv = "Panic"
	case 'D':
		lv = "Debug"
	default:
		return "", b
	}
	if len(b) > len(lv)+1 && string(b[:len(lv)]) == lv && b[len(lv)] == ':' && b[len(lv)+1] == ' ' {
		return lv, b[len(lv)+2:]
	}
	return "", b
}

// loginFields reads user=<…>, mpid= and session=<…> from a login line's
// fields ("user=<u>, method=PLAIN, rip=…, mpid=P, TLS, session=<S>").
// Dovecot writes user first and session last, which the fast paths
// expect; any other order is found by search.
func loginFields(b []byte) (user []byte, pid int32, session []byte, ok bool) {
	i := 0
	if !hasPrefix(b, "user=<") {
		if i = bytes.Index(b, []byte("user=<")); i < 0 {
			return nil, 0, nil, false
		}
	}
	// The value is <…> and may hold ", ".
	j := bytes.IndexByte(b[i+6:], '>')
	if j < 0 {
		return nil, 0, nil, false
	}
	user, ok = b[i+6:i+6+j], true
	rest := b[i+7+j:]
	if n := len(rest); n > 0 && rest[n-1] == '>' {
		if k := bytes.LastIndexByte(rest, '<'); k >= 8 && string(rest[k-8:k]) == "session=" {
			session = rest[k+1 : n-1]
		}
	}
	if session == nil {
		if k := bytes.Index(rest, []byte("session=<")); k >= 0 {
			if e := bytes.IndexByte(rest[k+9:], '>'); e >= 0 {
				session = rest[k+9 : k+9+e]
			}
		}
	}
	if k := bytes.Index(rest, []byte("mpid=")); k > 0 && (rest[k-1] == ' ' || rest[k-1] == ',') {
		n := int64(0)
		for d := k + 5; d < len(rest) && d < k+15 && isDigit(rest[d]); d++ {
			n = n*10 + int64(rest[d]-'0')
		}
		pid = int32(n)
	}
	return user, pid, session, ok
}

// between returns what lies between key and the next stop byte.
func between(b []byte, key string, stop byte) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	v := b[i+len(key):]
	j := bytes.IndexByte(v, stop)
	if j < 0 {
		return nil, false
	}
	return v[:j], true
}

func atoi32(b []byte) int32 {
	var n int64
	if len(b) == 0 || len(b) > 9 {
		return 0
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return int32(n)
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }
func hasSuffix(b []byte, s string) bool { return len(b) >= len(s) && string(b[len(b)-len(s):]) == s }

func skipSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}
