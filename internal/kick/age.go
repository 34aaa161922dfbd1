package kick

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Units of an age, as an operator writes them.
var units = map[byte]time.Duration{
	's': time.Second,
	'm': time.Minute,
	'h': time.Hour,
	'd': 24 * time.Hour,
	'w': 7 * 24 * time.Hour,
}

// ParseAge reads an age: a number and a unit, s m h d or w, several of
// them in a row ("90d", "12h", "2w", "1d12h"), or "0".
func ParseAge(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("age %q: want a number and a unit, s m h d or w (like 90d, 12h or 2w)", s)
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return bad()
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return bad()
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		unit, ok := units[rest[i]]
		if err != nil || !ok {
			return bad()
		}
		if n > int64((1<<63-1)/unit) || total > (1<<63-1)-time.Duration(n)*unit {
			return 0, fmt.Errorf("age %q is too long", s)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// FormatAge writes an age in its two largest units: "93d4h", "5h12m",
// "3m20s", "12s".
func FormatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	parts := []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	var b strings.Builder
	used := 0
	for _, p := range parts {
		if n := d / p.unit; n > 0 || (used > 0 && used < 2) {
			if n > 0 {
				fmt.Fprintf(&b, "%d%s", n, p.name)
			}
			d -= n * p.unit
			used++
		}
		if used == 2 {
			break
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
