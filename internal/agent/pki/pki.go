// Package pki is the cluster's private certificate authority: it makes the
// CA, issues certificates to agents and coordinators, and builds the TLS
// configurations that both ends of every connection use.
//
// Words:
//
//   - CA: DIR/ca.crt and DIR/ca.key, made once by `maildist ca init`. Every
//     agent and coordinator trusts this CA and nothing else.
//   - role: what a certificate may do, kept in its subject's
//     organizational unit, which only the CA can set: "agent" (a storage
//     host's agent; a TLS server, and a client only for pushing a tree it
//     was told to push) or "coordinator" (a runner of moves; a client
//     only).
//   - name: the certificate's common name, also its first DNS name. An
//     agent's name is its host's name in the config; a client checks it,
//     not the address it dialled, so an agent may be reached through any
//     address (a proxy, a tunnel, 127.0.0.1).
//
// Keys are ECDSA P-256 (the default) or Ed25519. Leaf certificates are
// valid for one year, the CA for ten. Private keys are written mode 0600
// and never replaced: issuing a name twice is refused.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/maildist/maildist/internal/cluster"
	"github.com/maildist/maildist/internal/fsutil"
)

// Roles a certificate can have.
const (
	RoleAgent       = "agent"
	RoleCoordinator = "coordinator"
)

// Key types.
const (
	KeyECDSA   = "ecdsa"
	KeyEd25519 = "ed25519"
)

// Validity of what the CA makes.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// Files of a CA folder.
const (
	CACert = "ca.crt"
	CAKey  = "ca.key"
)

// ErrExists is wrapped when a file to be written is there already.
var ErrExists = errors.New("exists already")

func newKey(kind string) (crypto.Signer, error) {
	switch kind {
	case KeyECDSA, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("key type %q: want ecdsa or ed25519", kind)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Init makes a new CA in dir (created if missing). It refuses to replace
// an existing CA.
func Init(dir, name, keyType string, now time.Time) error {
	if name == "" {
		name = "maildist cluster CA"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("ca init: %s: %w", p, ErrExists)
		}
	}
	key, err := newKey(keyType)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"maildist"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writeCert(certPath, der)
}

// IssueOptions say what certificate to issue.
type IssueOptions struct {
	Name    string   // common name and first DNS name: the host's name for an agent
	Role    string   // RoleAgent or RoleCoordinator
	DNS     []string // further DNS names
	IPs     []net.IP // IP addresses
	KeyType string
	Out     string // folder for NAME.crt and NAME.key (default: the CA's)
	Now     time.Time
}

// Issue makes a key and a certificate signed by the CA in dir, and
// returns the paths of the certificate and the key.
func Issue(dir string, o IssueOptions) (certPath, keyPath string, err error) {
	if err := cluster.CheckUser(o.Name); err != nil {
		return "", "", fmt.Errorf("certificate name %q: not a plain name (a host name from the config, or a coordinator's name)", o.Name)
	}
	if o.Role != RoleAgent && o.Role != RoleCoordinator {
		return "", "", fmt.Errorf("role %q: want agent or coordinator", o.Role)
	}
	caCert, caKey, err := LoadCA(dir)
	if err != nil {
		return "", "", err
	}
	out := o.Out
	if out == "" {
		out = dir
	}
	certPath, keyPath = filepath.Join(out, o.Name+".crt"), filepath.Join(out, o.Name+".key")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("ca issue: %s: %w", p, ErrExists)
		}
	}
	key, err := newKey(o.KeyType)
	if err != nil {
		return "", "", err
	}
	sn, err := serial()
	if err != nil {
		return "", "", err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: o.Name, Organization: []string{"maildist"}, OrganizationalUnit: []string{o.Role}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     append([]string{o.Name}, o.DNS...),
		IPAddresses:  o.IPs,
	}
	if o.Role == RoleAgent {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return "", "", fmt.Errorf("ca issue: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", "", fmt.Errorf("ca issue: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return "", "", err
	}
	if err := writeCert(certPath, der); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := fsutil.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func writeCert(path string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := fsutil.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	return nil
}

// LoadCA reads the CA of dir.
func LoadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CACert), filepath.Join(dir, CAKey))
	if err != nil {
		return nil, nil, fmt.Errorf("load the CA in %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("load the CA in %s: %w", dir, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, CACert))
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("the CA key in %s cannot sign", dir)
	}
	return cert, signer, nil
}

// Identity is who is at the other end of a verified connection.
type Identity struct {
	Name string
	Role string
}

// IdentityOf reads the name and role of a certificate the CA signed.
func IdentityOf(c *x509.Certificate) (Identity, error) {
	if len(c.Subject.OrganizationalUnit) != 1 {
		return Identity{}, fmt.Errorf("certificate %q has no maildist role", c.Subject.CommonName)
	}
	id := Identity{Name: c.Subject.CommonName, Role: c.Subject.OrganizationalUnit[0]}
	if id.Role != RoleAgent && id.Role != RoleCoordinator {
		return Identity{}, fmt.Errorf("certificate %q: unknown role %q", id.Name, id.Role)
	}
	if cluster.CheckUser(id.Name) != nil || !slices.Contains(c.DNSNames, id.Name) {
		return Identity{}, fmt.Errorf("certificate %q: its name is not a plain name that its DNS names hold", id.Name)
	}
	return id, nil
}

// Files are the paths of a certificate, its key and the CA to trust.
type Files struct {
	CA, Cert, Key string
}

// Loaded is a certificate with its key and the CA pool to check peers
// against.
type Loaded struct {
	Pair tls.Certificate
	Leaf *x509.Certificate
	Self Identity
	Pool *x509.CertPool
}

// Load reads the files and checks that the certificate was signed by the
// CA and has the role want ("" for any).
func Load(f Files, want string) (*Loaded, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", f.CA)
	}
	if fi, err := os.Stat(f.Key); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s can be read by others (mode %04o): chmod 600 it", f.Key, fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s is not a valid certificate of the CA %s: %w", f.Cert, f.CA, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, err
	}
	if want != "" && id.Role != want {
		return nil, fmt.Errorf("%s is a certificate for the role %s; this needs %s", f.Cert, id.Role, want)
	}
	pair.Leaf = leaf
	return &Loaded{Pair: pair, Leaf: leaf, Self: id, Pool: pool}, nil
}

// ServerConfig is an agent's TLS: TLS 1.3 only, and a client certificate
// of the CA required on every connection.
func (l *Loaded) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{l.Pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    l.Pool,
		// HTTP/1.1 only: a bulk stream goes faster over it than over
		// HTTP/2's framing and flow control.
		NextProtos: []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			_, err := IdentityOf(cs.PeerCertificates[0])
			return err
		},
	}
}

// ClientConfig is the TLS of a connection to the agent of host name:
// its certificate must be the CA's, for an agent, and carry that name,
// whatever address was dialled.
func (l *Loaded) ClientConfig(name string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{l.Pair},
		NextProtos:   []string{"http/1.1"},
		// The standard check compares the dialled address with the
		// certificate; the one that matters here is the host's name, done
		// in full by VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return VerifyAgent(cs.PeerCertificates, l.Pool, name, time.Now())
		},
	}
}

// VerifyAgent checks a chain presented by an agent: signed by the CA, for
// a TLS server, with the agent role and the expected name.
func VerifyAgent(chain []*x509.Certificate, pool *x509.CertPool, name string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("the agent showed no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	id, err := IdentityOf(chain[0])
	if err != nil {
		return err
	}
	if id.Role != RoleAgent {
		return fmt.Errorf("the certificate of %s has the role %s, not agent", id.Name, id.Role)
	}
	if id.Name != name {
		return fmt.Errorf("reached the agent of %s, not of %s: check the host's agent URL", id.Name, name)
	}
	return nil
}
