package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"time"
)

// The operations of `kintsu cert`, on a certs directory.

// CreateCA writes a new CA (ca.crt, ca.key) into dir.
func CreateCA(dir string, overwrite bool) error {
	ca, err := NewCA(time.Now(), CALifetime)
	if err != nil {
		return err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	return WriteFiles(dir, []File{{CACert, ca.CertPEM, 0o644}, {CAKey, key, 0o600}}, overwrite)
}

// Signer names the CA that signs: its certificate and key files. Empty
// fields mean the certs directory's ca.crt and ca.key.
type Signer struct{ CACert, CAKey string }

func (s Signer) load(dir string) (*CA, error) {
	cert, key := s.CACert, s.CAKey
	if cert == "" {
		cert = filepath.Join(dir, CACert)
	}
	if key == "" {
		key = filepath.Join(dir, CAKey)
	}
	return ReadCA(cert, key)
}

// withCA adds ca.crt to files unless dir holds that very certificate:
// whoever uses the directory needs it, and the CA may be kept elsewhere.
func withCA(dir string, ca *CA, files []File) []File {
	if b, err := os.ReadFile(filepath.Join(dir, CACert)); err == nil && bytes.Equal(b, ca.CertPEM) {
		return files
	}
	return append([]File{{CACert, ca.CertPEM, 0o644}}, files...)
}

// CreateNode writes node id's certificate and key (node.crt, node.key)
// into dir, valid for hosts, signed by s's CA.
func CreateNode(dir string, s Signer, id uint64, hosts []string, overwrite bool) error {
	ca, err := s.load(dir)
	if err != nil {
		return err
	}
	cert, key, err := ca.IssueNode(id, hosts, time.Now(), CertLifetime)
	if err != nil {
		return err
	}
	return WriteFiles(dir, withCA(dir, ca, []File{{NodeCert, cert, 0o644}, {NodeKey, key, 0o600}}), overwrite)
}

// CreateClient writes user's client certificate and key into dir.
func CreateClient(dir string, s Signer, user string, overwrite bool) error {
	ca, err := s.load(dir)
	if err != nil {
		return err
	}
	cert, key, err := ca.IssueClient(user, time.Now(), CertLifetime)
	if err != nil {
		return err
	}
	return WriteFiles(dir, withCA(dir, ca, []File{{ClientCert(user), cert, 0o644}, {ClientKey(user), key, 0o600}}), overwrite)
}
