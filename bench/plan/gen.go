//go:build ignore

// gen writes a synthetic survey for benchmarking and trying out the plan:
// RUN/raw.tsv with skewed users over hosts in pools, and a hosts file.
//
//	go run gen.go -users 1000000 -hosts 200 -pools 4 -out /tmp/run
//
// Older hosts (lower numbers) hold more users, more idle ones and bigger
// mailboxes; the last host of each pool is new and empty; the first
// drains and the second takes no new users. The same flags give the same
// files.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	users := flag.Int("users", 100000, "rows of raw.tsv")
	hosts := flag.Int("hosts", 200, "hosts in all")
	pools := flag.Int("pools", 4, "pools (hosts split evenly)")
	seed := flag.Uint64("seed", 1, "random seed")
	special := flag.Bool("special", true, "make the first host of each pool drain and the second take no new users")
	out := flag.String("out", "run", "run folder to write raw.tsv into; hosts.toml goes beside raw.tsv")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	names := []string{"bp", "cg", "ep", "mx", "sp", "tp", "vp", "wp"}
	type host struct {
		name, pool string
		age        float64 // 1 oldest … 0 newest
		weight     float64
	}
	var hs []host
	per := *hosts / *pools
	for p := range *pools {
		pool := names[p%len(names)]
		if p >= len(names) {
			pool += strconv.Itoa(p)
		}
		n := per
		if p == *pools-1 {
			n = *hosts - per*(*pools-1)
		}
		for i := range n {
			w := 1.0
			if i%5 == 3 {
				w = 2 // a bigger box
			}
			hs = append(hs, host{fmt.Sprintf("%s%02d", pool, i+1), pool, 1 - float64(i)/float64(max(n-1, 1)), w})
		}
	}

	// hosts.toml
	hf, err := os.Create(filepath.Join(*out, "hosts.toml"))
	if err != nil {
		fail(err)
	}
	hw := bufio.NewWriter(hf)
	for i, h := range hs {
		first := i == 0 || hs[i-1].pool != h.pool
		second := i >= 1 && hs[i-1].pool == h.pool && (i == 1 || hs[i-2].pool != h.pool)
		fmt.Fprintf(hw, "[[host]]\nname = %q\npool = %q\nroot = \"/%s\"\nweight = %g\n", h.name, h.pool, h.name, h.weight)
		if *special && first {
			fmt.Fprintf(hw, "drain = true\n")
		}
		if *special && second {
			fmt.Fprintf(hw, "accept_new = false\n")
		}
		hw.WriteString("\n")
	}
	if err := hw.Flush(); err != nil {
		fail(err)
	}
	hf.Close()

	// Where users live: older hosts hold more (the new host holds none).
	cum := make([]float64, len(hs))
	sum := 0.0
	for i, h := range hs {
		if h.age > 0 {
			sum += h.weight * (0.4 + 1.6*h.age*h.age)
		}
		cum[i] = sum
	}
	r := rand.New(rand.NewPCG(*seed, 7))
	f, err := os.Create(filepath.Join(*out, "raw.tsv"))
	if err != nil {
		fail(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("user\thost\tpool\thome\tconnect_s\tsessions\tlast_login\tbytes\tmessages\tstatus\n")
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Unix()
	buf := make([]byte, 0, 256)
	for u := range *users {
		x := r.Float64() * sum
		lo, hi := 0, len(cum)-1
		for lo < hi {
			m := (lo + hi) / 2
			if cum[m] < x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		h := hs[lo]
		var connect, sessions int64
		last := ""
		if r.Float64() > 0.2+0.3*h.age { // idle users pile up on old hosts
			connect = int64(math.Exp(r.NormFloat64()*1.8 + 8.5))
			sessions = 1 + connect/1800
			last = time.Unix(now-int64(r.Float64()*90*86400), 0).UTC().Format(time.RFC3339)
		} else if r.Float64() < 0.5 {
			last = time.Unix(now-int64((90+r.Float64()*700)*86400), 0).UTC().Format(time.RFC3339)
		}
		var bytes, msgs int64
		if r.Float64() > 0.04 {
			bytes = int64(math.Exp(r.NormFloat64()*1.7 + 16.5 + 1.2*h.age))
			msgs = 1 + bytes/40000
		}
		status := "ok"
		switch x := r.Float64(); {
		case x < 0.004:
			status, bytes, msgs = "missing-home", 0, 0
		case x < 0.005:
			status = "unreadable"
		}
		name := "u" + strconv.Itoa(1000000+u)
		buf = buf[:0]
		buf = append(buf, name...)
		buf = append(buf, '\t')
		buf = append(buf, h.name...)
		buf = append(buf, '\t')
		buf = append(buf, h.pool...)
		buf = append(buf, "\t/"...)
		buf = append(buf, h.name...)
		buf = append(buf, '/')
		buf = append(buf, name...)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, connect, 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, sessions, 10)
		buf = append(buf, '\t')
		buf = append(buf, last...)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, bytes, 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, msgs, 10)
		buf = append(buf, '\t')
		buf = append(buf, status...)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
