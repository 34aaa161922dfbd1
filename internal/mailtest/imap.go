package mailtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
)

// LoginIMAP connects to an IMAP server and logs in.
func LoginIMAP(addr, user, pass string) (*client.Client, error) {
	c, err := client.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, addr)
	if err != nil {
		return nil, err
	}
	c.Timeout = 30 * time.Second
	if err := c.Login(user, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Message is what a client knows of one message.
type Message struct {
	Flags        []string // sorted, keywords too; never \Recent
	InternalDate time.Time
	Size         uint32   // RFC822.SIZE
	Sum          [32]byte // SHA-256 of BODY[]
	ID           string   // its X-Mailtest-ID header, if it has one
}

func (m Message) String() string {
	return fmt.Sprintf("flags %v, date %s, size %d, body %x…, id %q", m.Flags, m.InternalDate.Format(time.RFC3339), m.Size, m.Sum[:4], m.ID)
}

// Folder is what a client knows of one mailbox.
type Folder struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    map[uint32]Message // by UID
}

// Snapshot is what an IMAP client sees of an account: every folder with
// every message, and the subscriptions. A client caches exactly this; if
// any of it changes, it fetches again or loses its cache.
type Snapshot struct {
	Folders    map[string]*Folder
	Subscribed []string // sorted
}

// Messages is the number of messages in every folder.
func (s *Snapshot) Messages() int {
	n := 0
	for _, f := range s.Folders {
		n += len(f.Messages)
	}
	return n
}

// Take records what the client sees, examining each folder read-only so
// that nothing (not even \Recent) changes.
func Take(c *client.Client) (*Snapshot, error) {
	s := &Snapshot{Folders: map[string]*Folder{}}
	boxes := make(chan *imap.MailboxInfo, 100)
	done := make(chan error, 1)
	go func() { done <- c.List("", "*", boxes) }()
	var names []string
	for b := range boxes {
		if !slices.Contains(b.Attributes, imap.NoSelectAttr) {
			names = append(names, b.Name)
		}
	}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	subs := make(chan *imap.MailboxInfo, 100)
	go func() { done <- c.Lsub("", "*", subs) }()
	for b := range subs {
		s.Subscribed = append(s.Subscribed, b.Name)
	}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("LSUB: %w", err)
	}
	sort.Strings(s.Subscribed)
	for _, name := range names {
		f, err := takeFolder(c, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s.Folders[name] = f
	}
	return s, nil
}

func takeFolder(c *client.Client, name string) (*Folder, error) {
	st, err := c.Select(name, true)
	if err != nil {
		return nil, fmt.Errorf("EXAMINE: %w", err)
	}
	f := &Folder{UIDValidity: st.UidValidity, UIDNext: st.UidNext, Messages: map[uint32]Message{}}
	if st.Messages == 0 {
		return f, nil
	}
	seq := new(imap.SeqSet)
	seq.AddRange(1, 0)
	body := &imap.BodySectionName{Peek: true}
	items := []imap.FetchItem{imap.FetchUid, imap.FetchFlags, imap.FetchInternalDate, imap.FetchRFC822Size, body.FetchItem()}
	msgs := make(chan *imap.Message, 64)
	done := make(chan error, 1)
	go func() { done <- c.UidFetch(seq, items, msgs) }()
	var ferr error
	for m := range msgs {
		r := m.GetBody(body)
		if r == nil {
			ferr = fmt.Errorf("uid %d: no body", m.Uid)
			continue
		}
		b, err := io.ReadAll(r)
		if err != nil {
			ferr = err
			continue
		}
		f.Messages[m.Uid] = Message{
			Flags:        cleanFlags(m.Flags),
			InternalDate: m.InternalDate,
			Size:         m.Size,
			Sum:          sha256.Sum256(b),
			ID:           HeaderID(b),
		}
	}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("UID FETCH: %w", err)
	}
	return f, ferr
}

func cleanFlags(fs []string) []string {
	out := []string{}
	for _, f := range fs {
		if f != imap.RecentFlag {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// HeaderID returns a message's X-Mailtest-ID header, or "".
func HeaderID(msg []byte) string {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(msg, []byte("\n\n"))
	}
	if end < 0 {
		end = len(msg)
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte(nil), msg[:end]...), "\r\n\r\n"...))))
	h, _ := r.ReadMIMEHeader()
	return h.Get("X-Mailtest-Id")
}

// Compare tells every way after differs from before that a client would
// notice. Messages new in after are allowed when isNew says they are
// expected (mail delivered meanwhile); they must have UIDs at or above
// before's UIDNEXT, as new mail does.
func Compare(before, after *Snapshot, isNew func(folder string, m Message) bool) []string {
	var d []string
	if !slices.Equal(before.Subscribed, after.Subscribed) {
		d = append(d, fmt.Sprintf("subscriptions %q, were %q", after.Subscribed, before.Subscribed))
	}
	for _, name := range sortedKeys(before.Folders) {
		b, a := before.Folders[name], after.Folders[name]
		if a == nil {
			d = append(d, fmt.Sprintf("folder %q is gone", name))
			continue
		}
		if a.UIDValidity != b.UIDValidity {
			d = append(d, fmt.Sprintf("%s: UIDVALIDITY %d, was %d", name, a.UIDValidity, b.UIDValidity))
		}
		for _, uid := range sortedKeys(b.Messages) {
			am, ok := a.Messages[uid]
			switch {
			case !ok:
				d = append(d, fmt.Sprintf("%s: uid %d is gone", name, uid))
			case !sameMessage(b.Messages[uid], am):
				d = append(d, fmt.Sprintf("%s: uid %d: %s, was %s", name, uid, am, b.Messages[uid]))
			}
		}
		added := false
		for _, uid := range sortedKeys(a.Messages) {
			if _, ok := b.Messages[uid]; ok {
				continue
			}
			added = true
			switch {
			case uid < b.UIDNext:
				d = append(d, fmt.Sprintf("%s: uid %d appeared below the old UIDNEXT %d", name, uid, b.UIDNext))
			case isNew == nil || !isNew(name, a.Messages[uid]):
				d = append(d, fmt.Sprintf("%s: unexpected new uid %d: %s", name, uid, a.Messages[uid]))
			}
		}
		switch {
		case !added && a.UIDNext != b.UIDNext:
			d = append(d, fmt.Sprintf("%s: UIDNEXT %d, was %d, with no new message", name, a.UIDNext, b.UIDNext))
		case a.UIDNext < b.UIDNext:
			d = append(d, fmt.Sprintf("%s: UIDNEXT went back from %d to %d", name, b.UIDNext, a.UIDNext))
		}
	}
	for _, name := range sortedKeys(after.Folders) {
		if before.Folders[name] == nil {
			d = append(d, fmt.Sprintf("folder %q is new", name))
		}
	}
	return d
}

func sameMessage(a, b Message) bool {
	return slices.Equal(a.Flags, b.Flags) && a.InternalDate.Equal(b.InternalDate) && a.Size == b.Size && a.Sum == b.Sum
}

func sortedKeys[K string | uint32, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Flags is a shorthand for a flag list in a STORE.
func Flags(fs ...string) []any {
	out := make([]any, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

// IDs lists the X-Mailtest-ID of every message of a snapshot, with the
// folder each is in, counting repeats.
func (s *Snapshot) IDs() map[string][]string {
	out := map[string][]string{}
	for name, f := range s.Folders {
		for _, m := range f.Messages {
			if m.ID != "" {
				out[m.ID] = append(out[m.ID], name)
			}
		}
	}
	return out
}

// POP3UIDLs logs in over POP3 and returns the UIDL of every message of
// the INBOX, in message-number order.
func POP3UIDLs(addr, user, pass string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	ok := func() (string, error) {
		l, err := tp.ReadLine()
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(l, "+OK") {
			return "", fmt.Errorf("pop3: %s", l)
		}
		return l, nil
	}
	cmd := func(format string, args ...any) (string, error) {
		if err := tp.PrintfLine(format, args...); err != nil {
			return "", err
		}
		return ok()
	}
	if _, err := ok(); err != nil {
		return nil, err
	}
	if _, err := cmd("USER %s", user); err != nil {
		return nil, err
	}
	if _, err := cmd("PASS %s", pass); err != nil {
		return nil, err
	}
	if _, err := cmd("UIDL"); err != nil {
		return nil, err
	}
	lines, err := tp.ReadDotLines()
	if err != nil {
		return nil, err
	}
	var out []string
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != fmt.Sprint(i+1) {
			return nil, fmt.Errorf("pop3 UIDL line %q", l)
		}
		out = append(out, f[1])
	}
	if _, err := cmd("QUIT"); err != nil {
		return nil, err
	}
	return out, nil
}
