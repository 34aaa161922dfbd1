// Command hold-writer is the mail system and the user at work on a
// Maildir while bench/hold moves it: every -every (100 ms) it delivers a
// message as a delivery agent does (written in tmp/, fsynced, renamed into
// new/) and changes the flags of an existing message (a rename in cur/,
// or new/ to cur/ as a first read does). While the home is held (renamed
// away) a delivery fails, as it would for the MTA, and is tried again at
// the next tick; the writer never creates the home or its folders.
//
// It runs until SIGINT or SIGTERM, then prints one line of JSON:
// delivered, deferred (deliveries that found no home), renamed, failed
// renames.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	home := flag.String("home", "", "the user's home (its Maildir is HOME/Maildir)")
	every := flag.Duration("every", 100*time.Millisecond, "time between deliveries")
	flag.Parse()
	if *home == "" {
		fmt.Fprintln(os.Stderr, "hold-writer: -home is required")
		os.Exit(2)
	}
	md := filepath.Join(*home, "Maildir")
	w := &writer{md: md, r: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	if err := w.load(); err != nil {
		fmt.Fprintln(os.Stderr, "hold-writer:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			json.NewEncoder(os.Stdout).Encode(w.stats)
			return
		case <-tick.C:
			w.deliver()
			w.flag()
		}
	}
}

type stats struct {
	Delivered    int `json:"delivered"`
	Deferred     int `json:"deferred"`
	Renamed      int `json:"renamed"`
	RenameFailed int `json:"rename_failed"`
}

type writer struct {
	md    string
	r     *rand.Rand
	cur   []string // names in cur/, as this writer believes
	new   []string // names in new/
	n     int
	stats stats
}

// load lists the Maildir once: listing 45,000 names at every tick would
// cost more than everything else the writer does.
func (w *writer) load() error {
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(w.md, sub))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if sub == "cur" {
				w.cur = append(w.cur, e.Name())
			} else {
				w.new = append(w.new, e.Name())
			}
		}
	}
	return nil
}

func (w *writer) deliver() {
	w.n++
	now := time.Now()
	body := fmt.Sprintf("Return-Path: <bench@example.edu>\nDate: %s\nSubject: delivery %d\n\n%s",
		now.Format(time.RFC1123Z), w.n, strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 20+w.r.IntN(100)))
	name := fmt.Sprintf("%d.M%dP%d.bench,S=%d", now.Unix(), now.Nanosecond()/1000, os.Getpid(), len(body))
	tmp := filepath.Join(w.md, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		w.stats.Deferred++ // no home: the MTA keeps it queued
		return
	}
	_, err = f.WriteString(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.md, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
		w.stats.Deferred++
		return
	}
	w.stats.Delivered++
	w.new = append(w.new, name)
}

// flag renames one message: a first read (new/ to cur/) now and then,
// else new flags for a message in cur/.
func (w *writer) flag() {
	if len(w.new) > 0 && w.r.IntN(4) == 0 {
		i := w.r.IntN(len(w.new))
		name := w.new[i]
		if w.rename(filepath.Join("new", name), filepath.Join("cur", name+":2,S")) {
			w.new = append(w.new[:i], w.new[i+1:]...)
			w.cur = append(w.cur, name+":2,S")
		}
		return
	}
	if len(w.cur) == 0 {
		return
	}
	i := w.r.IntN(len(w.cur))
	base, _, _ := strings.Cut(w.cur[i], ":2,")
	flags := []string{"S", "RS", "FS", "FRS", ""}[w.r.IntN(5)]
	to := base + ":2," + flags
	if to == w.cur[i] {
		to = base + ":2,T"
	}
	if w.rename(filepath.Join("cur", w.cur[i]), filepath.Join("cur", to)) {
		w.cur[i] = to
	}
}

func (w *writer) rename(from, to string) bool {
	if err := os.Rename(filepath.Join(w.md, from), filepath.Join(w.md, to)); err != nil {
		w.stats.RenameFailed++
		return false
	}
	w.stats.Renamed++
	return true
}
