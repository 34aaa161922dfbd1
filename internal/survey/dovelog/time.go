package dovelog

import "time"

// monthOf reads an English month abbreviation; 0 if it is none.
func monthOf(b []byte) int {
	switch string(b) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

// parseTime reads the timestamp at the start of b; consecutive lines of a
// busy log share it, so the last one is remembered, and so is its minute:
// a line of the same minute only has its seconds (and fraction) read.
func (p *Parser) parseTime(b []byte) (int64, int, bool) {
	if n := p.stampLen; n > 0 && len(b) > n && b[n] == ' ' {
		if string(b[:n]) == string(p.stamp[:n]) {
			return p.stampT, n, true
		}
		if m, e := p.secAt, p.fracEnd; string(b[:m]) == string(p.stamp[:m]) && string(b[e:n]) == string(p.stamp[e:n]) {
			if sec, ok := digits(b[m : m+2]); ok && sec <= 60 {
				if frac, k := fraction(b[m+2 : n]); m+2+k == e {
					t := p.minT + int64(sec)*1e9 + frac
					copy(p.stamp[m:e], b[m:e])
					p.stampT = t
					return t, n, true
				}
			}
		}
	}
	t, n, ok := p.parseTimeSlow(b)
	if !ok {
		return 0, 0, false
	}
	if n <= len(p.stamp) {
		copy(p.stamp[:], b[:n])
		p.stampLen, p.stampT = n, t
		// The minute, for the lines after.
		p.secAt, p.fracEnd = p.slowSecAt, p.slowFracEnd
		sec, _ := digits(b[p.secAt : p.secAt+2])
		frac, _ := fraction(b[p.secAt+2 : n])
		p.minT = t - int64(sec)*1e9 - frac
	}
	return t, n, ok
}

// parseTime reads the timestamp at the start of b and returns it in Unix
// nanoseconds with the number of bytes it took. Accepted:
//
//	2024-01-02T03:04:05.123+01:00   RFC 3339 (rsyslog, journald)
//	2024-01-02 03:04:05             log_timestamp = "%Y-%m-%d %H:%M:%S "
//	Jan  2 03:04:05, Jan 02 03:04:05, Jan 2 03:04:05   syslog, Dovecot's default
//
// Times without a zone are wall clock in the parser's location. A date
// that no calendar has (Feb 30, Apr 31, Feb 29 of a year that is not a
// leap year) is not a timestamp: it is never rolled over into the next
// month. When it fails, p.bad says why.
func (p *Parser) parseTimeSlow(b []byte) (int64, int, bool) {
	p.bad = ""
	if len(b) < 14 {
		return 0, 0, false
	}
	if isDigit(b[0]) {
		return p.parseISO(b)
	}
	mon := monthOf(b[:3])
	if mon == 0 || b[3] != ' ' {
		return 0, 0, false
	}
	i := 4
	if b[i] == ' ' {
		i++
	}
	day, d0 := 0, i
	for i < len(b) && isDigit(b[i]) && i-d0 < 2 {
		day = day*10 + int(b[i]-'0')
		i++
	}
	if i == d0 || i >= len(b) || b[i] != ' ' {
		return 0, 0, false
	}
	if day < 1 || day > 31 {
		p.bad = "no such date: " + string(b[:i])
		return 0, 0, false
	}
	i++
	h, m, s, n, ok := p.clock(b[i:])
	if !ok {
		return 0, 0, false
	}
	p.slowSecAt = i + 6
	i += n
	frac, n := fraction(b[i:])
	i += n
	p.slowFracEnd = i
	year, ok := p.yearOf(mon, day)
	if !ok || day > daysIn(year, mon) {
		p.bad = noSuchDate(b[:3], day, year)
		return 0, 0, false
	}
	if year < minYear || year > maxYear {
		p.bad = "year out of range: " + itoa(year) + ", from the file's mtime"
		return 0, 0, false
	}
	return p.local(year, mon, day, h, m, s)*1e9 + frac, i, true
}

// noSuchDate says why a syslog date is not one.
func noSuchDate(mon []byte, day, year int) string {
	if day == 29 {
		// Only Feb 29 can fail for want of a leap year.
		return "no such date: " + string(mon) + " 29 in the year up to the file's mtime (the last one, in " + itoa(year) + ", is more than a year before it)"
	}
	return "no such date: " + string(mon) + " " + itoa(day)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// daysIn is the number of days of a month.
func daysIn(y, mon int) int {
	switch mon {
	case 2:
		if leap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func (p *Parser) parseISO(b []byte) (int64, int, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
		return 0, 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, false
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		p.bad = "no such date: " + string(b[:10])
		return 0, 0, false
	}
	if y < minYear || y > maxYear {
		p.bad = "year out of range: " + string(b[:10])
		return 0, 0, false
	}
	h, m, s, n, ok := p.clock(b[11:])
	if !ok {
		return 0, 0, false
	}
	p.slowSecAt = 17
	i := 11 + n
	frac, n := fraction(b[i:])
	i += n
	p.slowFracEnd = i
	// zone
	if i < len(b) {
		switch c := b[i]; {
		case c == 'Z':
			return civil(y, mo, d, h, m, s)*1e9 + frac, i + 1, true
		case c == '+' || c == '-':
			z := b[i+1:]
			var zh, zm int
			var ok bool
			switch {
			case len(z) >= 5 && z[2] == ':':
				zh, ok = digits(z[0:2])
				if ok {
					zm, ok = digits(z[3:5])
				}
				n = 6
			case len(z) >= 4:
				zh, ok = digits(z[0:2])
				if ok {
					zm, ok = digits(z[2:4])
				}
				n = 5
			}
			if !ok {
				return 0, 0, false
			}
			if zh > 23 || zm > 59 {
				p.bad = "no such zone offset: " + string(b[i:i+n])
				return 0, 0, false
			}
			off := int64(zh*3600 + zm*60)
			if c == '-' {
				off = -off
			}
			return (civil(y, mo, d, h, m, s)-off)*1e9 + frac, i + n, true
		}
	}
	return p.local(y, mo, d, h, m, s)*1e9 + frac, i, true
}

// clock reads HH:MM:SS (a leap second, :60, is taken as the next
// minute's first); a time no clock shows (25:00:00) sets p.bad.
func (p *Parser) clock(b []byte) (h, m, s, n int, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, 0, false
	}
	h, ok1 := digits(b[0:2])
	m, ok2 := digits(b[3:5])
	s, ok3 := digits(b[6:8])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, 0, false
	}
	if h > 23 || m > 59 || s > 60 {
		p.bad = "no such time: " + string(b[:8])
		return 0, 0, 0, 0, false
	}
	return h, m, s, 8, true
}

// Years a timestamp may have: Unix nanoseconds in an int64 reach from
// 1677 to 2262, and a log line from before 1900 is not one.
const minYear, maxYear = 1900, 2200

// fraction reads ".123456" as nanoseconds.
func fraction(b []byte) (int64, int) {
	if len(b) < 2 || (b[0] != '.' && b[0] != ',') || !isDigit(b[1]) {
		return 0, 0
	}
	var ns int64
	i, scale := 1, int64(1e8)
	for i < len(b) && isDigit(b[i]) {
		if scale > 0 {
			ns += int64(b[i]-'0') * scale
			scale /= 10
		}
		i++
	}
	return ns, i
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// yearOf picks the year of a date that has none: the anchor's year, or the
// year before when that would put the date more than two days after the
// anchor (a log that runs from December into January, read in January).
// So a date lands in the year that ends two days after the anchor (the
// file's mtime): a log without years cannot say more.
//
// Feb 29 goes to the last leap year whose Feb 29 is at most two days
// after the anchor, but only if that day is less than a year (366 days)
// before that point; if it is further back, ok is false and the line is
// malformed, rather than placed years back where no other line of the
// file can be.
func (p *Parser) yearOf(mon, day int) (year int, ok bool) {
	key := mon*32 + day
	if key == p.ymKey {
		return p.ymYear, p.ymOK
	}
	y := p.ref.Year()
	limit := p.ref.Unix() + 2*86400
	const anyZone = 14 * 3600 // the widest UTC offset
	ok = true
	if mon == 2 && day == 29 {
		for !leap(y) || civil(y, 2, 29, 0, 0, 0)-anyZone > limit {
			y--
		}
		ok = civil(y, 3, 1, 0, 0, 0)+anyZone > limit-366*86400
	} else if civil(y, mon, day, 0, 0, 0)-anyZone > limit {
		y--
	}
	p.ymKey, p.ymYear, p.ymOK = key, y, ok
	return y, ok
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// local converts wall clock time in the parser's location to Unix seconds.
func (p *Parser) local(y, mo, d, h, m, s int) int64 {
	if p.loc == time.UTC {
		return civil(y, mo, d, h, m, s)
	}
	key := ((int64(y)*13+int64(mo))*32+int64(d))*24 + int64(h)
	if key != p.hourKey || p.hourUnix == 0 {
		p.hourKey = key
		p.hourUnix = time.Date(y, time.Month(mo), d, h, 0, 0, 0, p.loc).Unix()
	}
	return p.hourUnix + int64(m*60+s)
}

// civil is Unix seconds of a UTC date and time (days from civil, Howard
// Hinnant's algorithm).
func civil(y, mo, d, h, m, s int) int64 {
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (mo + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era)*146097 + int64(doe) - 719468
	return days*86400 + int64(h*3600+m*60+s)
}
