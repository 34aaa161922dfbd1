package kick

import (
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "90d", want: 90 * day},
		{in: "12h", want: 12 * time.Hour},
		{in: "2w", want: 14 * day},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "30m", want: 30 * time.Minute},
		{in: "0s", want: 0},
		{in: "0", want: 0},
		{in: "", bad: true},
		{in: "90", bad: true},
		{in: "d", bad: true},
		{in: "3y", bad: true},
		{in: "-1d", bad: true},
		{in: "1.5d", bad: true},
		{in: "99999999999999w", bad: true},
	} {
		got, err := ParseAge(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseAge(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestFormatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0s",
		12 * time.Second:                  "12s",
		3*time.Minute + 20*time.Second:    "3m20s",
		5*time.Hour + 12*time.Minute + 9:  "5h12m",
		93*24*time.Hour + 4*time.Hour + 7: "93d4h",
		2 * 24 * time.Hour:                "2d",
		24*time.Hour + 5*time.Minute:      "1d",
		-time.Second:                      "0s",
	} {
		if got := FormatAge(d); got != want {
			t.Errorf("FormatAge(%v) = %q, want %q", d, got, want)
		}
	}
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"90d", "1d12h", "0", "2w", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseAge(s)
		if err == nil && d < 0 {
			t.Fatalf("ParseAge(%q) = %v", s, d)
		}
	})
}
