package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA makes a CA valid now.
func testCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA(time.Now(), CALifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeCerts makes node id's Certs signed by ca, issued at now.
func nodeCerts(t *testing.T, ca *CA, id uint64, now time.Time, life time.Duration) *Certs {
	t.Helper()
	cp, kp, err := ca.IssueNode(id, []string{"127.0.0.1", "localhost"}, now, life)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &Certs{CA: ca.Cert, Pool: pool, Node: pair, NodeID: id}
}

// handshake connects a TLS client to a TLS server over loopback TCP and
// returns both sides' handshake errors and the server's view.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, st tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err error
		st  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 checks the client certificate after the client's
			// handshake returns: read until the client closes.
			_, _ = tc.Read(make([]byte, 1))
		}
		done <- result{err, tc.ConnectionState()}
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	cc := tls.Client(c, client)
	clientErr = cc.Handshake()
	if clientErr == nil {
		// The server's refusal of our certificate arrives as an alert on
		// the first read (TLS 1.3).
		_, _ = cc.Write([]byte{0})
		if _, err := cc.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(err.Error(), "EOF") {
			clientErr = err
		}
	}
	cc.Close()
	r := <-done
	return r.err, clientErr, r.st
}

func withName(c *tls.Config, name string) *tls.Config {
	c = c.Clone()
	c.ServerName = name
	return c
}

func TestPeersOfOneCAConnectAndKnowEachOther(t *testing.T) {
	ca := testCA(t)
	a, b := nodeCerts(t, ca, 1, time.Now(), CertLifetime), nodeCerts(t, ca, 2, time.Now(), CertLifetime)
	serr, cerr, st := handshake(t, a.PeerServer(), withName(b.PeerClient(1), "127.0.0.1"))
	if serr != nil || cerr != nil {
		t.Fatalf("handshake: server %v, client %v", serr, cerr)
	}
	if id, ok := NodeOf(st.VerifiedChains[0][0]); !ok || id != 2 {
		t.Fatalf("server sees node %d (%v), want 2", id, ok)
	}
	if st.Version != tls.VersionTLS13 {
		t.Errorf("peer TLS version %x, want 1.3", st.Version)
	}
}

func TestPeerClientChecksTheNodeItDials(t *testing.T) {
	ca := testCA(t)
	a, b := nodeCerts(t, ca, 1, time.Now(), CertLifetime), nodeCerts(t, ca, 2, time.Now(), CertLifetime)
	_, cerr, _ := handshake(t, a.PeerServer(), withName(b.PeerClient(3), "127.0.0.1"))
	if cerr == nil || !strings.Contains(cerr.Error(), "expected node 3") {
		t.Fatalf("dialing node 3 and reaching node 1: %v, want refused", cerr)
	}
}

func TestPeerFromAnotherCAIsRefused(t *testing.T) {
	a := nodeCerts(t, testCA(t), 1, time.Now(), CertLifetime)
	other := nodeCerts(t, testCA(t), 2, time.Now(), CertLifetime)
	// The stranger trusts our CA, so only our check of its certificate can refuse it.
	client := withName(other.PeerClient(0), "127.0.0.1")
	client.RootCAs = a.Pool
	serr, _, _ := handshake(t, a.PeerServer(), client)
	if serr == nil {
		t.Fatal("a node certificate of another CA was accepted")
	}
	// And a node does not talk to a server of another CA.
	_, cerr, _ := handshake(t, other.PeerServer(), withName(a.PeerClient(0), "127.0.0.1"))
	if cerr == nil {
		t.Fatal("a peer server of another CA was trusted")
	}
}

func TestClientCertificateCannotActAsNode(t *testing.T) {
	ca := testCA(t)
	a := nodeCerts(t, ca, 1, time.Now(), CertLifetime)
	cp, kp, err := ca.IssueClient("alice", time.Now(), CertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	client := &tls.Config{RootCAs: a.Pool, Certificates: []tls.Certificate{pair}, ServerName: "127.0.0.1"}
	serr, _, _ := handshake(t, a.PeerServer(), client)
	if serr == nil || !strings.Contains(serr.Error(), "not a node certificate") {
		t.Fatalf("a client certificate on the peer port: %v, want refused as not a node", serr)
	}
	// On the client port the same certificate names its user.
	serr, cerr, st := handshake(t, a.ClientServer(), client)
	if serr != nil || cerr != nil {
		t.Fatalf("client port: server %v, client %v", serr, cerr)
	}
	if u, ok := PeerUser(st); !ok || u != "alice" {
		t.Fatalf("client port user %q (%v), want alice", u, ok)
	}
	if _, ok := NodeOf(st.VerifiedChains[0][0]); ok {
		t.Fatal("a client certificate names a node")
	}
}

func TestExpiredCertificateIsRefused(t *testing.T) {
	ca := testCA(t)
	a := nodeCerts(t, ca, 1, time.Now(), CertLifetime)
	old := nodeCerts(t, ca, 2, time.Now().Add(-48*time.Hour), 24*time.Hour)
	serr, _, _ := handshake(t, a.PeerServer(), withName(old.PeerClient(0), "127.0.0.1"))
	if serr == nil || !strings.Contains(serr.Error(), "expired") {
		t.Fatalf("expired peer certificate: %v, want refused as expired", serr)
	}
	_, cerr, _ := handshake(t, old.PeerServer(), withName(a.PeerClient(0), "127.0.0.1"))
	if cerr == nil {
		t.Fatal("a peer server with an expired certificate was trusted")
	}
}

func TestClientPortTakesClientsWithoutCertificate(t *testing.T) {
	a := nodeCerts(t, testCA(t), 1, time.Now(), CertLifetime)
	serr, cerr, st := handshake(t, a.ClientServer(), &tls.Config{RootCAs: a.Pool, ServerName: "localhost"})
	if serr != nil || cerr != nil {
		t.Fatalf("server %v, client %v", serr, cerr)
	}
	if _, ok := PeerUser(st); ok {
		t.Fatal("a client without a certificate has a user")
	}
	// A certificate of another CA, when given, is refused.
	b := nodeCerts(t, testCA(t), 2, time.Now(), CertLifetime)
	serr, _, _ = handshake(t, a.ClientServer(), &tls.Config{RootCAs: a.Pool, ServerName: "localhost", Certificates: []tls.Certificate{b.Node}})
	if serr == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
}

func TestNodeOfNeedsExactlyOneNodeURI(t *testing.T) {
	ca := testCA(t)
	cp, _, err := ca.IssueNode(42, []string{"db.example"}, time.Now(), CertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCert(cp)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := NodeOf(cert); !ok || id != 42 {
		t.Fatalf("NodeOf = %d, %v; want 42", id, ok)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "db.example" {
		t.Errorf("DNS SANs %v", cert.DNSNames)
	}
	cert.URIs = append(cert.URIs, NodeURI(7))
	if _, ok := NodeOf(cert); ok {
		t.Error("a certificate naming two nodes names one")
	}
	if _, ok := UserOf(cert); ok {
		t.Error("a node certificate names a user")
	}
}

func TestCertsDirCommands(t *testing.T) {
	dir := t.TempDir()
	if err := CreateCA(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := CreateCA(dir, false); !errors.Is(err, ErrExists) {
		t.Fatalf("second create-ca: %v, want refused", err)
	}
	if err := CreateNode(dir, Signer{}, 3, []string{"127.0.0.1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := CreateClient(dir, Signer{}, "root", false); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CACert: 0o644, CAKey: 0o600, NodeCert: 0o644, NodeKey: 0o600, ClientCert("root"): 0o644, ClientKey("root"): 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if _, err := LoadNode(dir, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNode(dir, 4); err == nil || !strings.Contains(err.Error(), "node 3's certificate") {
		t.Fatalf("loading node 3's certificate as node 4: %v", err)
	}
	// A node's own directory, with the CA key kept elsewhere.
	nodeDir := filepath.Join(t.TempDir(), "n5")
	if err := CreateNode(nodeDir, Signer{CACert: filepath.Join(dir, CACert), CAKey: filepath.Join(dir, CAKey)}, 5, []string{"localhost"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, CAKey)); !os.IsNotExist(err) {
		t.Errorf("the CA key was copied into a node's directory: %v", err)
	}
	if _, err := LoadNode(nodeDir, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(dir, "root"); err != nil {
		t.Fatal(err)
	}
	if err := CreateClient(dir, Signer{}, "bad/name", false); err == nil {
		t.Fatal("a user name with a slash was accepted")
	}
}
