package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/maildist/maildist/internal/activity"
	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/delivery"
	"github.com/maildist/maildist/internal/host"
	"github.com/maildist/maildist/internal/survey"
)

// Hold operations.
const (
	HoldCheck = "check"
	HoldStart = "start"
	HoldUndo  = "undo"
	HoldEnd   = "end"
)

// hold runs this host's own hold of the asked kind: a rename here, or the
// hold and release commands of this agent's config, run here where the
// MTA is.
func (s *Server) hold(w http.ResponseWriter, r *http.Request, id pki.Identity) error {
	op, kind, user := param(r, "op"), param(r, "kind"), param(r, "user")
	if err := cluster.CheckUser(user); err != nil {
		return badRequest("user %q: not a plain name", user)
	}
	home, err := s.pathParam(r, "home")
	if err != nil {
		return err
	}
	uid, err := intParam(r, "uid", -1)
	if err != nil {
		return err
	}
	gid, err := intParam(r, "gid", -1)
	if err != nil {
		return err
	}
	d := s.cfg.Delivery
	d.Hold = kind
	if kind == "command" && (len(d.HoldCmd) == 0 || len(d.Release) == 0) {
		return fmt.Errorf("hold = \"command\" on %s: its config has no delivery.hold_command and release_command", s.name)
	}
	h, err := delivery.New(d, host.RunCommand)
	if err != nil {
		return badRequest("%v", err)
	}
	if rn, ok := h.(*delivery.Rename); ok {
		rn.AllowUnsafe = param(r, "allow_unsafe") == "1"
	}
	if held := h.HeldPath(home); held != home {
		if err := s.checkPath(held); err != nil {
			return err
		}
	}
	ctx := r.Context()
	var held string
	switch op {
	case HoldCheck:
		err = h.Check(ctx, s.local, user, home, int(uid), int(gid))
	case HoldStart:
		held, err = h.Start(ctx, s.local, user, home)
		if err == nil {
			s.holdsMu.Lock()
			if _, ok := s.holds[user]; !ok {
				s.holds[user] = time.Now()
				s.metrics.held.Inc()
			}
			s.holdsMu.Unlock()
			s.logf("held %s (%s) for %s", user, kind, id.Name)
		}
	case HoldUndo, HoldEnd:
		if op == HoldUndo {
			err = h.Undo(ctx, s.local, user, home)
		} else {
			err = h.End(ctx, s.local, user, home)
		}
		if err == nil {
			s.holdsMu.Lock()
			if t, ok := s.holds[user]; ok {
				delete(s.holds, user)
				s.metrics.held.Dec()
				s.metrics.holdTime.Observe(time.Since(t).Seconds())
			}
			s.holdsMu.Unlock()
			outcome := "moved"
			if op == HoldUndo {
				outcome = "undone"
			}
			s.metrics.moves.WithLabelValues(outcome).Inc()
			s.logf("released %s (%s, %s) for %s", user, kind, op, id.Name)
		}
	default:
		return badRequest("hold op %q: want check, start, undo or end", op)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"held": held})
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	user := param(r, "user")
	if user != "" {
		if err := cluster.CheckUser(user); err != nil {
			return badRequest("user %q: not a plain name", user)
		}
	}
	uid, err := intParam(r, "uid", -1)
	if err != nil {
		return err
	}
	ss, err := s.activity.Sessions(r.Context(), user, int(uid))
	if err != nil {
		return err
	}
	for i := range ss {
		ss[i].Host = s.name
	}
	if ss == nil {
		ss = []activity.Session{}
	}
	return writeJSON(w, map[string][]activity.Session{"sessions": ss})
}

// flush runs this agent's own delivery.flush: a coordinator cannot make
// an agent run anything else.
func (s *Server) flush(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	argv := s.cfg.Delivery.Flush
	if len(argv) == 0 {
		return writeJSON(w, map[string]string{"ran": ""})
	}
	if _, err := host.RunCommand(r.Context(), argv); err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"ran": strings.Join(argv, " ")})
}

// queue runs this agent's own delivery.queue and answers its output.
func (s *Server) queue(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	argv := s.cfg.Delivery.Queue
	if len(argv) == 0 {
		return errors.New("this agent has no delivery.queue command in its config")
	}
	out, err := host.RunCommand(r.Context(), argv)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write(out)
	return err
}

// homes lists the homes under a root, as the layout places them.
func (s *Server) homes(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	root := param(r, "root")
	if !slices.Contains(s.roots, root) {
		return fmt.Errorf("root %q is not a root of the cluster: %w", root, host.ErrOutside)
	}
	// The root and every folder above it must be real folders, as for
	// any path: a name in the root stands for it.
	if err := s.checkPath(path.Join(root, "home")); err != nil {
		return err
	}
	depth := 1
	if strings.Contains(s.cfg.HomeLayout, "{hash2}") {
		depth = 2
	}
	var homes []string
	var walk func(dir string, d int) error
	walk = func(dir string, d int) error {
		ents, err := os.ReadDir(filepath.Join(s.opt.FSRoot, dir))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && d == 1 {
				return nil
			}
			return err
		}
		for _, e := range ents {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".maildist-") || strings.HasSuffix(e.Name(), ".moving") {
				continue
			}
			p := path.Join(dir, e.Name())
			if d == depth {
				homes = append(homes, p)
			} else if err := walk(p, d+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 1); err != nil {
		return err
	}
	if homes == nil {
		homes = []string{}
	}
	return writeJSON(w, map[string][]string{"homes": homes})
}

func (s *Server) diskHost() *cluster.Host {
	return &cluster.Host{Name: s.name, FSRoot: s.opt.FSRoot}
}

func (s *Server) surveyCheck(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	home, err := s.pathParam(r, "home")
	if err != nil {
		return err
	}
	if err := (survey.LocalDisk{}).Check(r.Context(), s.diskHost(), home); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

func (s *Server) surveyUsage(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	home, err := s.pathParam(r, "home")
	if err != nil {
		return err
	}
	b, m, err := (survey.LocalDisk{}).Usage(r.Context(), s.diskHost(), home)
	if errors.Is(err, survey.ErrMissingHome) {
		return err
	}
	u := proto.Usage{Bytes: b, Messages: m}
	if err != nil {
		u.Error = &proto.Error{Code: proto.CodeOf(err), Message: err.Error()}
	}
	return writeJSON(w, u)
}

// logStreams are this host's Dovecot logs, from its config's survey.logs.
func (s *Server) logStreams() ([]proto.LogStream, error) {
	if len(s.cfg.Survey.Logs) == 0 {
		return []proto.LogStream{}, nil
	}
	streams, _, err := survey.FindLogs(s.cfg.Survey.Logs)
	if err != nil {
		return nil, err
	}
	out := []proto.LogStream{}
	for _, st := range streams {
		ls := proto.LogStream{Name: st.Name}
		for _, f := range st.Files {
			var size int64
			if fi, err := os.Stat(f.Name); err == nil {
				size = fi.Size()
			}
			ls.Files = append(ls.Files, proto.LogFile{Name: f.Name, Ref: f.Ref, Size: size})
		}
		out = append(out, ls)
	}
	return out, nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	ls, err := s.logStreams()
	if err != nil {
		return err
	}
	return writeJSON(w, map[string][]proto.LogStream{"streams": ls})
}

// logRead sends one of the files logs listed, as it is (gzip too): no
// other file can be read this way.
func (s *Server) logRead(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	name := param(r, "name")
	ls, err := s.logStreams()
	if err != nil {
		return err
	}
	for _, st := range ls {
		for _, f := range st.Files {
			if f.Name != name {
				continue
			}
			fh, err := os.Open(name)
			if err != nil {
				return err
			}
			defer fh.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			_, err = io.Copy(w, fh)
			return err
		}
	}
	return fmt.Errorf("%q is not one of this host's logs: %w", name, proto.ErrForbidden)
}
