package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Certs is what a node loads from its certs directory.
type Certs struct {
	Dir    string
	CA     *x509.Certificate
	Pool   *x509.CertPool // the CA alone: nothing else is trusted
	Node   tls.Certificate
	NodeID uint64
}

// LoadNode reads dir's CA certificate and node certificate and key, and
// checks the certificate is node id's, signed by that CA and valid now.
func LoadNode(dir string, id uint64) (*Certs, error) {
	ca, pool, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, NodeCert), filepath.Join(dir, NodeKey)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w (make one with `kintsu cert create-node %d HOST... --certs-dir %s`)", err, id, dir)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certPath, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s does not verify against %s: %w", certPath, filepath.Join(dir, CACert), err)
	}
	got, ok := NodeOf(leaf)
	switch {
	case !ok:
		return nil, fmt.Errorf("%s is not a node certificate", certPath)
	case got != id:
		return nil, fmt.Errorf("%s is node %d's certificate, but this is node %d", certPath, got, id)
	}
	return &Certs{Dir: dir, CA: ca, Pool: pool, Node: pair, NodeID: id}, nil
}

func loadCA(dir string) (*x509.Certificate, *x509.CertPool, error) {
	p := filepath.Join(dir, CACert)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w (make one with `kintsu cert create-ca --certs-dir %s`)", err, dir)
	}
	ca, err := parseCert(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return ca, pool, nil
}

// PeerServer is the peer port's TLS: TLS 1.3, and the caller must
// present a node certificate of this CA.
func (c *Certs) PeerServer() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{c.Node},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        c.Pool,
		VerifyConnection: requireNode(0),
	}
}

// PeerClient is the TLS for dialing a peer: the server must present a
// node certificate of this CA, node expect's when expect is not 0 (0: any
// node, for a seed whose id is not known yet).
func (c *Certs) PeerClient(expect uint64) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{c.Node},
		RootCAs:          c.Pool,
		VerifyConnection: requireNode(expect),
	}
}

// ClientServer is the TLS of the ports clients use (RESP, admin): the
// node's certificate; a client certificate is optional, and verified
// against the CA when given.
func (c *Certs) ClientServer() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Node},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.Pool,
	}
}

// requireNode checks the verified peer is a node (node expect, unless 0).
func requireNode(expect uint64) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return errors.New("pki: peer presented no verified certificate")
		}
		id, ok := NodeOf(cs.VerifiedChains[0][0])
		switch {
		case !ok:
			return errors.New("pki: peer certificate is not a node certificate")
		case expect != 0 && id != expect:
			return fmt.Errorf("pki: peer certificate is node %d's, expected node %d", id, expect)
		}
		return nil
	}
}

// NodeOf returns the node id a certificate names, if it names exactly one.
// Only call it on a verified certificate.
func NodeOf(cert *x509.Certificate) (uint64, bool) {
	var id uint64
	found := 0
	for _, u := range cert.URIs {
		if u.Scheme != nodeURIScheme || u.Host != nodeURIHost {
			continue
		}
		found++
		n, err := strconv.ParseUint(strings.TrimPrefix(u.Path, "/"), 10, 64)
		if err != nil || n == 0 || !strings.HasPrefix(u.Path, "/") {
			return 0, false
		}
		id = n
	}
	return id, found == 1
}

// UserOf returns the user a verified client certificate names (its
// common name). A node certificate names no user.
func UserOf(cert *x509.Certificate) (string, bool) {
	if _, node := NodeOf(cert); node || len(cert.URIs) > 0 {
		return "", false
	}
	if ValidUser(cert.Subject.CommonName) != nil {
		return "", false
	}
	return cert.Subject.CommonName, true
}

// PeerUser returns the user of a TLS connection's verified client
// certificate, if it has one.
func PeerUser(cs tls.ConnectionState) (string, bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return UserOf(cs.VerifiedChains[0][0])
}

// ClientConfig is a client's TLS for talking to the cluster's client
// ports: trust dir's CA; present user's certificate if user is not "".
func ClientConfig(dir, user string) (*tls.Config, error) {
	_, pool, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if user != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCert(user)), filepath.Join(dir, ClientKey(user)))
		if err != nil {
			return nil, fmt.Errorf("client certificate of %s: %w", user, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
