package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/maildist/maildist/internal/agent/pki"
	"github.com/maildist/maildist/internal/agent/proto"
)

// smallFileLimit bounds what read and write carry: stubs' .forward files.
const smallFileLimit = 1 << 20

func (s *Server) lstat(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	fi, err := s.local.Lstat(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, proto.Stat{Mode: uint32(fi.Mode), UID: fi.UID, GID: fi.GID, Size: fi.Size})
}

// readFile reads a small file, never through a symlink.
func (s *Server) readFile(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	rp, err := s.local.RealPath(p)
	if err != nil {
		return err
	}
	fd, err := unix.Open(rp, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("read %s: a symlink: %w", p, proto.ErrNotFolder)
		}
		return &fs.PathError{Op: "read", Path: p, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return badRequest("read %s: not a regular file", p)
	}
	f := newFile(fd, rp)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, smallFileLimit+1))
	if err != nil {
		return err
	}
	if len(data) > smallFileLimit {
		return badRequest("read %s: larger than %d bytes", p, smallFileLimit)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(data)
	return err
}

func (s *Server) free(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	n, err := s.local.FreeBytes(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]int64{"bytes": n})
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	n, err := s.local.Usage(r.Context(), p)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]int64{"bytes": n})
}

func (s *Server) openFiles(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	open, err := s.local.OpenFiles(r.Context(), p)
	if err != nil {
		return err
	}
	if open == nil {
		open = []string{}
	}
	return writeJSON(w, map[string][]string{"open": open})
}

// scan answers the manifest in its text form, which keeps every byte of
// every name.
func (s *Server) scan(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	m, err := s.local.Scan(r.Context(), p, param(r, "hash") == "1")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write(b.Bytes())
	return err
}

func (s *Server) rename(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	from, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	to, err := s.pathParam(r, "to")
	if err != nil {
		return err
	}
	if err := s.local.Rename(r.Context(), from, to); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	mode, err := intParam(r, "mode", 0o700)
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
	if mode < 0 || mode > 0o7777 {
		return badRequest("mode %o", mode)
	}
	made, err := s.local.MkdirAll(r.Context(), p, fs.FileMode(mode), int(uid), int(gid))
	if err != nil {
		return err
	}
	if made == nil {
		made = []string{}
	}
	return writeJSON(w, map[string][]string{"made": made})
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	if err := s.local.Remove(r.Context(), p); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

// removeAll removes a tree, and only one of maildist's own: staging, the
// trash, what a move set aside. Homes are never removed whole through the
// API; the move engine only ever purges its own folders.
func (s *Server) removeAll(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	own := false
	for _, n := range strings.Split(p, "/") {
		if strings.HasPrefix(n, ".maildist-") {
			own = true
		}
	}
	if !own {
		return fmt.Errorf("remove %s: an agent removes whole trees only in maildist's own folders (.maildist-*): %w", p, proto.ErrForbidden)
	}
	if err := s.local.RemoveAll(r.Context(), p); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

func (s *Server) writeFile(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	p, err := s.pathParam(r, "path")
	if err != nil {
		return err
	}
	mode, err := intParam(r, "mode", 0o600)
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
	if mode < 0 || mode > 0o7777 {
		return badRequest("mode %o", mode)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, smallFileLimit+1))
	if err != nil {
		return err
	}
	if len(data) > smallFileLimit {
		return badRequest("write %s: larger than %d bytes", p, smallFileLimit)
	}
	if fi, err := s.local.Lstat(r.Context(), p); err == nil && !fi.Mode.IsRegular() {
		return fmt.Errorf("write %s: there is a %v there: %w", p, fi.Mode.Type(), proto.ErrNotFolder)
	}
	if err := s.local.WriteFile(r.Context(), p, data, fs.FileMode(mode), int(uid), int(gid)); err != nil {
		return err
	}
	return writeJSON(w, struct{}{})
}

// file is an open descriptor read as an io.Reader.
type file struct {
	fd   int
	name string
}

func newFile(fd int, name string) *file { return &file{fd: fd, name: name} }

func (f *file) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: filepath.Base(f.name), Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *file) Close() error { return unix.Close(f.fd) }
