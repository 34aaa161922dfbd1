package mailtest

import (
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sender keeps one SMTP connection open and sends message after message
// over it.
type Sender struct {
	addr string
	c    *smtp.Client
}

// Dial opens an SMTP connection to addr.
func Dial(addr string) (*Sender, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.Hello("sender.test"); err != nil {
		c.Close()
		return nil, err
	}
	return &Sender{addr: addr, c: c}, nil
}

// Send sends one message; it returns once Postfix has queued it (250
// after DATA).
func (s *Sender) Send(from string, to []string, msg []byte) error {
	if err := s.c.Mail(from); err != nil {
		s.c.Reset()
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, r := range to {
		if err := s.c.Rcpt(r); err != nil {
			s.c.Reset()
			return fmt.Errorf("RCPT TO:<%s>: %w", r, err)
		}
	}
	w, err := s.c.Data()
	if err != nil {
		s.c.Reset()
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// Close says QUIT.
func (s *Sender) Close() error { return s.c.Quit() }

// SendOne sends one message over a connection of its own.
func SendOne(addr, from string, to []string, msg []byte) error {
	s, err := Dial(addr)
	if err != nil {
		return err
	}
	if err := s.Send(from, to, msg); err != nil {
		s.c.Close()
		return err
	}
	return s.Close()
}

// NewMessage makes a small message whose headers carry id, so that a test can
// find it again wherever it lands.
func NewMessage(id, to string) []byte {
	return []byte(fmt.Sprintf("From: sender@example.org\r\nTo: %s\r\nSubject: test %s\r\nMessage-ID: <%s@mailtest>\r\nX-Mailtest-ID: %s\r\n\r\nmessage %s\r\n", to, id, id, id, id))
}

// Count is the number of messages in a Maildir folder's new/ and cur/
// (0 if it does not exist).
func Count(maildir string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		es, _ := os.ReadDir(filepath.Join(maildir, sub))
		for _, e := range es {
			if !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
	}
	return n
}
