package sandbox

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// folderKind steers the flags a folder's messages get.
type folderKind int

const (
	kindInbox folderKind = iota
	kindSent
	kindTrash
	kindOther
)

// keywords are the two keywords of users who use any, in the order of
// dovecot-keywords: a message with 'a' in its flags has the first.
var keywords = []string{"$Forwarded", "NonJunk"}

// mbox is one user's mailbox while it is being built in staging.
type mbox struct {
	name     string
	home     string // the staging home: DIR/.build/<user>
	seed     int64
	keywords bool      // some of this user's messages carry keywords
	usec0    int       // where the microseconds of the user's message names start
	hosts    []string  // host names for message names, the usual one first
	end      time.Time // the end of the log: messages are older
	created  time.Time
	stamp    time.Time // what the user's folders and metadata files are dated

	mu      sync.Mutex
	folders map[string]bool // made so far: "" (INBOX), ".Sent", …
	msgs    []msgMeta
}

// msgMeta is what finish needs to know of a message file.
type msgMeta struct {
	folder string // "" for INBOX
	base   string // the name up to ":2,"; all of it in new/
	t      time.Time
	size   int64
	kw     bool
}

func (b *builder) newMbox(name string) (*mbox, error) {
	m := &mbox{
		name:    name,
		home:    filepath.Join(b.staging, name),
		seed:    b.o.Seed,
		folders: map[string]bool{},
	}
	r := newRand(b.o.Seed, "mailbox", name, 0)
	m.keywords = r.Float64() < 0.2
	m.usec0 = r.IntN(1_000_000)
	k := r.IntN(len(b.hostNm))
	m.hosts = append(slices.Clone(b.hostNm[k:]), b.hostNm[:k]...)
	m.end = b.logEnd
	if err := os.Mkdir(m.home, 0o700); err != nil {
		return nil, err
	}
	return m, nil
}

// maildir is the Maildir of the mailbox: Dovecot's maildir:~/Maildir.
func (m *mbox) maildir() string { return filepath.Join(m.home, "Maildir") }

// folder makes a Maildir++ folder ("" for INBOX) if it is not there yet.
func (m *mbox) folder(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.folderLocked(name)
}

func (m *mbox) folderLocked(name string) error {
	if m.folders[name] {
		return nil
	}
	if len(m.folders) == 0 {
		if err := os.Mkdir(m.maildir(), 0o700); err != nil {
			return err
		}
		m.folders[""] = true
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.Mkdir(filepath.Join(m.maildir(), sub), 0o700); err != nil {
				return err
			}
		}
		if name == "" {
			return nil
		}
	}
	dir := filepath.Join(m.maildir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	// Dovecot marks every Maildir++ folder with this empty file.
	if err := os.WriteFile(filepath.Join(dir, "maildirfolder"), nil, 0o600); err != nil {
		return err
	}
	m.folders[name] = true
	return nil
}

// add writes message number n of the user (numbers are unique per user)
// into a folder, named and dated as Dovecot would have delivered it.
// data is not kept.
func (m *mbox) add(folder string, kind folderKind, n int, data []byte) error {
	if err := m.folder(folder); err != nil {
		return err
	}
	r := newRand(m.seed, "message", m.name, n)
	t, ok := dateOf(data)
	if !ok {
		// No usable Date: a time from the three years before the log.
		t = between(r, m.end.AddDate(-3, 0, 0), m.end)
	}
	sub, info, kw := flagsFor(r, kind, m.keywords)

	// Dovecot's names are <secs>.M<usecs>P<pid>.<host>: the microseconds
	// are made a bijection of n so no two messages of a user share a name.
	usec := int((uint64(n)*769_871 + uint64(m.usec0)) % 1_000_000)
	pid := 1000 + r.IntN(64000)
	host := m.hosts[0]
	if len(m.hosts) > 1 && r.Float64() < 0.2 {
		host = pick(r, m.hosts) // delivered before the user last moved
	}
	base := fmt.Sprintf("%d.M%dP%d.%s,S=%d,W=%d", t.Unix(), usec, pid, host, len(data), vsize(data))
	name := base + info
	p := filepath.Join(m.maildir(), folder, sub, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(p, t, t); err != nil {
		return err
	}
	m.mu.Lock()
	m.msgs = append(m.msgs, msgMeta{folder: folder, base: base, t: t, size: int64(len(data)), kw: kw})
	m.mu.Unlock()
	return nil
}

// dateOf returns the time of a message's Date header, parsed by net/mail,
// if it has one that a file system can hold (the corpus has dates in year
// 1 and 2).
func dateOf(data []byte) (time.Time, bool) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return time.Time{}, false
	}
	t, err := msg.Header.Date()
	if err != nil || t.Year() < 1980 || t.Year() >= 2100 {
		return time.Time{}, false
	}
	return t, true
}

// vsize is the size with CRLF line ends, which Dovecot puts in W=.
func vsize(data []byte) int {
	return len(data) + bytes.Count(data, []byte{'\n'}) - bytes.Count(data, []byte("\r\n"))
}

// flagsFor picks where a message lies and its flags: mostly seen, some
// answered or flagged, a few unseen, and a few just delivered (in new/,
// with no flags part at all).
func flagsFor(r *rand.Rand, kind folderKind, withKeywords bool) (sub, info string, kw bool) {
	x := r.Float64()
	var f string
	switch kind {
	case kindInbox:
		switch {
		case x < 0.03:
			return "new", "", false
		case x < 0.08:
			f = ""
		case x < 0.18:
			f = "RS"
		case x < 0.24:
			f = "FS"
		case x < 0.26:
			f = "FRS"
		default:
			f = "S"
		}
	case kindSent:
		f = "S"
		if x < 0.03 {
			f = "FS"
		}
	case kindTrash:
		f = "ST"
		if x < 0.3 {
			f = "S"
		}
	default:
		switch {
		case x < 0.03:
			f = ""
		case x < 0.11:
			f = "RS"
		case x < 0.15:
			f = "FS"
		default:
			f = "S"
		}
	}
	if withKeywords && kind != kindTrash && r.Float64() < 0.15 {
		kw = true
		f += string(rune('a' + r.IntN(len(keywords))))
	}
	return "cur", ":2," + f, kw
}

// finish writes what Dovecot keeps beside the messages (dovecot-uidlist
// in every folder, dovecot-keywords where keywords are used, the
// subscriptions), gives the tree to its owner when running as root, and
// dates every folder and metadata file by the mailbox, not the clock.
func (m *mbox) finish(b *builder, uid, gid int) error {
	if err := m.folder(""); err != nil {
		return err
	}
	if m.created.IsZero() {
		m.created = b.logEnd.AddDate(-1, 0, 0)
		for _, msg := range m.msgs {
			if msg.t.Before(m.created) {
				m.created = msg.t
			}
		}
		m.created = m.created.Add(-24 * time.Hour)
	}
	m.stamp = m.created
	for _, msg := range m.msgs {
		if msg.t.After(m.stamp) && !msg.t.After(b.logEnd) {
			m.stamp = msg.t
		}
	}

	byFolder := map[string][]msgMeta{}
	for _, msg := range m.msgs {
		byFolder[msg.folder] = append(byFolder[msg.folder], msg)
	}
	var subs []string
	for folder := range m.folders {
		if folder != "" {
			subs = append(subs, strings.TrimPrefix(folder, "."))
		}
		msgs := byFolder[folder]
		slices.SortFunc(msgs, func(a, b msgMeta) int {
			if c := a.t.Compare(b.t); c != 0 {
				return c
			}
			return strings.Compare(a.base, b.base)
		})
		if err := m.writeUIDList(folder, msgs); err != nil {
			return err
		}
		if slices.ContainsFunc(msgs, func(x msgMeta) bool { return x.kw }) {
			var kb strings.Builder
			for i, k := range keywords {
				fmt.Fprintf(&kb, "%d %s\n", i, k)
			}
			if err := os.WriteFile(filepath.Join(m.maildir(), folder, "dovecot-keywords"), []byte(kb.String()), 0o600); err != nil {
				return err
			}
		}
	}
	if len(subs) > 0 {
		slices.Sort(subs)
		data := strings.Join(subs, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(m.maildir(), "subscriptions"), []byte(data), 0o600); err != nil {
			return err
		}
	}

	var dirs []string
	err := filepath.WalkDir(m.home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if b.root {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if parent := filepath.Base(filepath.Dir(p)); parent == "cur" || parent == "new" {
			return nil // a message: dated by its Date header already
		}
		return os.Chtimes(p, m.stamp, m.stamp)
	})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.Chtimes(d, m.stamp, m.stamp); err != nil {
			return err
		}
	}
	return nil
}

// writeUIDList writes a version 3 dovecot-uidlist: UIDs in delivery order,
// each line naming the message's file without its ":2," part.
func (m *mbox) writeUIDList(folder string, msgs []msgMeta) error {
	r := newRand(m.seed, "uidlist", m.name+"/"+folder, 0)
	guid := make([]byte, 16)
	for i := range guid {
		guid[i] = byte(r.IntN(256))
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "3 V%d N%d G%s\n", m.created.Unix(), len(msgs)+1, hex.EncodeToString(guid))
	for i, msg := range msgs {
		buf.WriteString(strconv.Itoa(i + 1))
		buf.WriteString(" :")
		buf.WriteString(msg.base)
		buf.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(m.maildir(), folder, "dovecot-uidlist"), buf.Bytes(), 0o600)
}
