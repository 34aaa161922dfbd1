package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"slices"
	"strings"
	"time"
)

// Made-up people and places. Every address is under a reserved domain.
var (
	firstNames = []string{"Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Igor",
		"Jamal", "Keiko", "Lars", "Maria", "Nikos", "Olga", "Pedro", "Quinn", "Rosa", "Sanjay", "Tove",
		"Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zofia", "Ana", "Ben", "Carla", "David", "Elena", "Femi"}
	lastNames = []string{"Abbott", "Brandt", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
		"Ito", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quintero",
		"Rossi", "Sato", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Nguyen", "Olsen",
		"Park", "Silva", "Horvat", "Keller"}
	otherDomains = []string{"example.com", "example.org", "example.net", "lists.example.org",
		"partner.test", "vendor.test", "alumni.example.com", "mail.example.net"}
	words = strings.Fields(`the of and to in is for that on with as by this be are from at or it an
		we will have not was can all your our which their more about has one new would been when
		meeting report budget draft schedule review project committee course lecture exam grade
		student faculty department office room building library server account password backup
		storage network request approval deadline invoice contract proposal travel conference
		paper thesis data results figure table analysis model test release update notes minutes
		agenda call week month monday tuesday wednesday thursday friday morning afternoon please
		thanks regards attached below above following next last first final revised version
		question answer issue problem fix change plan team group list policy access support`)
	subjects = []string{"Meeting notes", "Budget for next year", "Re: draft report", "Schedule change",
		"Your account", "Fwd: conference travel", "Lecture slides", "Exam results", "Re: Re: server backup",
		"Minutes of the committee", "Invoice", "Reminder: deadline Friday", "Thesis draft",
		"Project update", "Re: question about the course", "Room booking", "Weekly report", "Agenda"}
	attachments = []struct{ typ, ext string }{{"application/pdf", "pdf"}, {"image/jpeg", "jpg"},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
		{"application/zip", "zip"}, {"text/csv", "csv"}}
	zones = []*time.Location{time.FixedZone("PST", -8*3600), time.FixedZone("EST", -5*3600),
		time.FixedZone("", 0), time.FixedZone("CET", 3600), time.FixedZone("", 19800),
		time.FixedZone("JST", 9*3600), time.FixedZone("", -3*3600)}
)

// userNames makes n distinct plain user names that are not in taken:
// mostly initial+surname ("jweber"), some with a digit or a dot.
func userNames(r *rand.Rand, n int, taken map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		first := strings.ToLower(pick(r, firstNames))
		last := strings.ToLower(pick(r, lastNames))
		var name string
		switch x := r.Float64(); {
		case x < 0.1:
			name = first + "." + last
		case x < 0.15:
			name = last + "-" + first[:1]
		default:
			name = first[:1] + last
		}
		for k := 2; seen[name] || taken[name]; k++ {
			name = fmt.Sprintf("%s%d", strings.TrimRight(name, "0123456789"), k)
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

// mailboxPlan says how many messages each folder of a generated user gets.
type mailboxPlan struct {
	folders []plannedFolder
	created time.Time // the account's start; messages are newer
}

type plannedFolder struct {
	name  string // "" for INBOX
	kind  folderKind
	count int
}

// size classes of generated users
const (
	sizeEmpty = iota
	sizeLight
	sizeMedium
	sizeHeavy
)

func planMailbox(r *rand.Rand, class int, end time.Time) mailboxPlan {
	p := mailboxPlan{created: end.Add(-time.Duration(30+r.IntN(5*365)) * 24 * time.Hour).Truncate(time.Second)}
	var inbox int
	switch class {
	case sizeEmpty:
		return p
	case sizeLight:
		inbox = 1 + r.IntN(15)
	case sizeMedium:
		inbox = 15 + r.IntN(45)
	case sizeHeavy:
		inbox = 100 + r.IntN(200)
	}
	p.folders = append(p.folders, plannedFolder{"", kindInbox, inbox})
	if r.Float64() < 0.5 {
		p.folders = append(p.folders, plannedFolder{".Sent", kindSent, int(float64(inbox) * (0.1 + 0.3*r.Float64()))})
	}
	if r.Float64() < 0.25 || class == sizeHeavy {
		p.folders = append(p.folders, plannedFolder{".Archive", kindOther, int(float64(inbox) * (0.2 + 0.8*r.Float64()))})
		if class == sizeHeavy && r.Float64() < 0.5 {
			year := end.Year() - 1 - r.IntN(3)
			p.folders = append(p.folders, plannedFolder{fmt.Sprintf(".Archive.%d", year), kindOther, inbox / 3})
		}
	}
	if r.Float64() < 0.3 {
		p.folders = append(p.folders, plannedFolder{".Trash", kindTrash, r.IntN(8)})
	}
	return p
}

// generate builds made-up mailboxes. It returns the names of the users
// that get a directory entry but no home.
func (b *builder) generate(ctx context.Context) ([]string, error) {
	o := b.o
	r := newRand(o.Seed, "users", "", 0)
	names := userNames(r, o.Users+o.MissingHomes, nil)
	slices.Sort(names)
	order := slices.Clone(names)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	missing := order[:o.MissingHomes]
	class := map[string]int{}
	rest := order[o.MissingHomes:]
	nEmpty, nHeavy := 0, 0
	if len(rest) >= 3 {
		nEmpty, nHeavy = max(1, len(rest)/15), max(1, len(rest)/10)
	}
	for i, name := range rest {
		switch {
		case i < nEmpty:
			class[name] = sizeEmpty
		case i < nEmpty+nHeavy:
			class[name] = sizeHeavy
		case r.Float64() < 0.35:
			class[name] = sizeMedium
		default:
			class[name] = sizeLight
		}
	}

	b.progress.countUsers(len(rest))
	p := newPool(ctx, workers())
	for _, name := range names {
		c, ok := class[name]
		if !ok {
			continue // no home
		}
		m, err := b.newMbox(name)
		if err != nil {
			p.Wait()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		b.boxes[name] = m
		if !p.Go(func() error { return b.fill(m, c, o.Domain) }) {
			break
		}
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	return missing, nil
}

// fill writes a generated user's messages.
func (b *builder) fill(m *mbox, class int, domain string) error {
	plan := planMailbox(newRand(m.seed, "plan", m.name, 0), class, b.logEnd)
	m.created = plan.created
	if err := m.folder(""); err != nil {
		return fmt.Errorf("sandbox: user %s: %w", m.name, err)
	}
	n := 0
	for _, f := range plan.folders {
		if err := m.folder(f.name); err != nil {
			return fmt.Errorf("sandbox: user %s: %w", m.name, err)
		}
		for range f.count {
			r := newRand(m.seed, "text", m.name, n)
			when := between(r, plan.created, b.logEnd.Add(-time.Hour))
			data := genMessage(r, m.name, domain, f.kind, when)
			if err := m.add(f.name, f.kind, n, data); err != nil {
				return fmt.Errorf("sandbox: user %s: %w", m.name, err)
			}
			n++
		}
	}
	b.progress.userDone()
	return nil
}

// person is a made-up correspondent.
func person(r *rand.Rand) (name, addr string) {
	first, last := pick(r, firstNames), pick(r, lastNames)
	return first + " " + last, strings.ToLower(first+"."+last) + "@" + pick(r, otherDomains)
}

// genMessage makes an RFC 5322 message as a mail store holds it: trace
// headers, most with a Message-ID, a Date (a few without one, or with one
// that does not parse), a body of skewed size, a few multipart with a
// base64 attachment, and a few stored with CRLF line ends.
func genMessage(r *rand.Rand, user, domain string, kind folderKind, when time.Time) []byte {
	var h bytes.Buffer
	me := user + "@" + domain
	otherName, other := person(r)
	from, to, sender := fmt.Sprintf("%s <%s>", otherName, other), me, other
	if kind == kindSent {
		from, to, sender = me, fmt.Sprintf("%s <%s>", otherName, other), me
	}
	received := when.Add(time.Duration(1+r.IntN(90)) * time.Second).UTC()
	fmt.Fprintf(&h, "Return-Path: <%s>\n", sender)
	if kind != kindSent {
		fmt.Fprintf(&h, "Delivered-To: %s\n", me)
		fmt.Fprintf(&h, "Received: from mx%d.%s (mx%d.%s [10.1.0.%d])\n\tby mail.%s (Postfix) with ESMTP id %X\n\tfor <%s>; %s\n",
			1+r.IntN(2), domain, 1+r.IntN(2), domain, 2+r.IntN(20), domain, r.Uint32(), me,
			received.Format("Mon, 2 Jan 2006 15:04:05 -0700 (MST)"))
		fmt.Fprintf(&h, "Received: from [192.0.2.%d] (unknown [192.0.2.%d])\n\tby smtp.%s with ESMTPSA;\n\t%s\n",
			1+r.IntN(250), 1+r.IntN(250), other[strings.IndexByte(other, '@')+1:],
			when.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	}
	zone := pick(r, zones)
	switch x := r.Float64(); {
	case x < 0.01: // no Date at all
	case x < 0.015:
		fmt.Fprintf(&h, "Date: %s\n", pick(r, []string{"yesterday", "Tue, 32 Foo 2021 99:99:99", "0"}))
	default:
		d := when.In(zone).Format("Mon, 02 Jan 2006 15:04:05 -0700")
		if n := zone.String(); n != "" && r.Float64() < 0.5 {
			d += " (" + n + ")"
		}
		fmt.Fprintf(&h, "Date: %s\n", d)
	}
	fmt.Fprintf(&h, "From: %s\n", from)
	fmt.Fprintf(&h, "To: %s\n", to)
	if r.Float64() < 0.2 {
		ccName, cc := person(r)
		fmt.Fprintf(&h, "Cc: %s <%s>\n", ccName, cc)
	}
	subject := pick(r, subjects)
	if r.Float64() < 0.05 {
		subject = mime.BEncoding.Encode("UTF-8", subject+" – "+pick(r, []string{"Über", "café", "año", "Ørsted"}))
	}
	fmt.Fprintf(&h, "Subject: %s\n", subject)
	if r.Float64() < 0.92 {
		fmt.Fprintf(&h, "Message-ID: <%s.%x@%s>\n", when.UTC().Format("20060102150405"), r.Uint64(), other[strings.IndexByte(other, '@')+1:])
	}
	h.WriteString("MIME-Version: 1.0\n")

	bodyLen := int(logNormal(r, 7.0, 1.2, 120, 300_000))
	var body bytes.Buffer
	writeText(r, &body, bodyLen, otherName)
	if r.Float64() < 0.05 {
		att := pick(r, attachments)
		boundary := fmt.Sprintf("=_%016x", r.Uint64())
		fmt.Fprintf(&h, "Content-Type: multipart/mixed; boundary=\"%s\"\n\n", boundary)
		h.WriteString("This is a multi-part message in MIME format.\n\n")
		fmt.Fprintf(&h, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n", boundary)
		h.Write(body.Bytes())
		fmt.Fprintf(&h, "\n--%s\nContent-Type: %s; name=\"file%d.%s\"\nContent-Disposition: attachment; filename=\"file%d.%s\"\nContent-Transfer-Encoding: base64\n\n",
			boundary, att.typ, r.IntN(1000), att.ext, r.IntN(1000), att.ext)
		raw := make([]byte, int(logNormal(r, 10.3, 1.0, 2_000, 250_000)))
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		for len(enc) > 76 {
			h.WriteString(enc[:76])
			h.WriteByte('\n')
			enc = enc[76:]
		}
		h.WriteString(enc)
		fmt.Fprintf(&h, "\n--%s--\n", boundary)
	} else {
		h.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
		h.Write(body.Bytes())
	}
	data := h.Bytes()
	if r.Float64() < 0.02 {
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	}
	return data
}

// writeText writes about n bytes of plain text in paragraphs of lines
// under 76 columns, signed.
func writeText(r *rand.Rand, w *bytes.Buffer, n int, signer string) {
	start := w.Len()
	col := 0
	sentence := 0
	for w.Len()-start < n {
		word := pick(r, words)
		if sentence == 0 {
			word = strings.ToUpper(word[:1]) + word[1:]
		}
		sentence++
		end := ""
		if sentence > 5 && r.IntN(8) == 0 {
			end, sentence = ".", 0
		}
		if col+len(word)+len(end)+1 > 72 {
			w.WriteByte('\n')
			col = 0
		} else if col > 0 {
			w.WriteByte(' ')
			col++
		}
		w.WriteString(word)
		w.WriteString(end)
		col += len(word) + len(end)
		if end != "" && r.IntN(5) == 0 {
			w.WriteString("\n\n")
			col = 0
		}
	}
	fmt.Fprintf(w, ".\n\n-- \n%s\n", signer)
}
