package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// File names in a certs directory.
const (
	CACert   = "ca.crt"
	CAKey    = "ca.key"
	NodeCert = "node.crt"
	NodeKey  = "node.key"
)

// ClientCert and ClientKey name a client user's files.
func ClientCert(user string) string { return "client." + user + ".crt" }
func ClientKey(user string) string  { return "client." + user + ".key" }

// Lifetimes, as cockroach cert's: the CA outlives every certificate it
// signs, so rotating node certificates never needs a new CA.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	CertLifetime = 5 * 365 * 24 * time.Hour
	// backdate absorbs clock skew between the machine that signs and the
	// machines that verify.
	backdate = time.Hour
)

// nodeURIScheme and nodeURIHost form a node's identity, kintsu://node/<id>.
const (
	nodeURIScheme = "kintsu"
	nodeURIHost   = "node"
)

// CA is a certificate authority able to sign.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA valid from now for life.
func NewCA(now time.Time, life time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"Kintsu"}, CommonName: "Kintsu CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(life),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := sign(tmpl, nil, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), Key: key}, nil
}

// ReadCA loads a CA's certificate and key from PEM files.
func ReadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s is not the key of %s", keyPath, certPath)
	}
	return &CA{Cert: cert, CertPEM: certPEM, Key: key}, nil
}

// KeyPEM is the CA key in PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

// IssueNode signs a certificate for node id, valid for the given hosts
// (IP addresses or DNS names) as a server and as a client of its peers.
func (ca *CA) IssueNode(id uint64, hosts []string, now time.Time, life time.Duration) (certPEM, keyPEM []byte, err error) {
	if id == 0 {
		return nil, nil, errors.New("node id must be a positive integer")
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("a node certificate needs at least one host (the addresses peers and clients use)")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kintsu"}, CommonName: "node." + strconv.FormatUint(id, 10)},
		URIs:        []*url.URL{NodeURI(id)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl, now, life)
}

// IssueClient signs a client certificate for user (its common name).
func (ca *CA) IssueClient(user string, now time.Time, life time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := ValidUser(user); err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Kintsu"}, CommonName: user},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, now, life)
}

// ValidUser checks a user name is fit for a certificate and a file name.
func ValidUser(user string) error {
	if user == "" || len(user) > 64 {
		return errors.New("a user name has 1 to 64 characters")
	}
	for _, r := range user {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.@", r)) {
			return fmt.Errorf("user name %q: only letters, digits and - _ . @", user)
		}
	}
	return nil
}

func (ca *CA) issue(tmpl *x509.Certificate, now time.Time, life time.Duration) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-backdate), now.Add(life)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := sign(tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), kp, nil
}

// sign fills the serial number and signs tmpl with signer; a nil parent
// self-signs.
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

// NodeURI is node id's identity in its certificate.
func NodeURI(id uint64) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Host: nodeURIHost, Path: "/" + strconv.FormatUint(id, 10)}
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// File is one file to write into a certs directory.
type File struct {
	Name string
	Data []byte
	Mode os.FileMode // 0600 for keys, 0644 for certificates
}

// ErrExists: a file to write exists and overwriting was not asked for.
var ErrExists = errors.New("exists")

// WriteFiles writes files into dir (created 0700 if missing). Unless
// overwrite, it refuses before writing anything if one of them exists.
// Each file is written to a temporary name and renamed, so a crash never
// leaves half a key.
func WriteFiles(dir string, files []File, overwrite bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !overwrite {
		for _, f := range files {
			p := filepath.Join(dir, f.Name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s %w (use --overwrite to replace it)", p, ErrExists)
			}
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		tmp, err := os.CreateTemp(dir, "."+f.Name+".*")
		if err != nil {
			return err
		}
		err = tmp.Chmod(f.Mode)
		if err == nil {
			_, err = tmp.Write(f.Data)
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}
