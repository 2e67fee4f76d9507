package chaos

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/pki"
)

// A secure run (--secure) starts the cluster with certificates of a CA
// made for the run: the workloads speak TLS to the client ports and the
// checks HTTPS to the admin API (no password is set, so it serves
// loopback), and the stranger nemesis can hold a certificate of the
// cluster's own CA for a node id that is not a member.

// strangerID is the non-member node id the stranger claims.
const strangerID = 99

// trust is how this run reaches the nodes: nil for plaintext.
var trust struct {
	mu    sync.Mutex
	tls   *tls.Config // the run's CA; nil: plaintext
	certs string      // the run's certificates directory
}

// setTrust sets (or, with nil, clears) the TLS the run's clients use and
// where the run's certificates are.
func setTrust(c *tls.Config, certs string) {
	trust.mu.Lock()
	trust.tls, trust.certs = c, certs
	trust.mu.Unlock()
}

// runCerts is the secure run's certificates directory ("" if plaintext).
func runCerts() string {
	trust.mu.Lock()
	defer trust.mu.Unlock()
	return trust.certs
}

func clientTLS() *tls.Config {
	trust.mu.Lock()
	defer trust.mu.Unlock()
	if trust.tls == nil {
		return nil
	}
	return trust.tls.Clone()
}

// adminClient is an HTTP client for the nodes' admin API.
func adminClient(timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if t := clientTLS(); t != nil {
		c.Transport = &http.Transport{TLSClientConfig: t}
	}
	return c
}

// adminURL is the URL of path on a node's admin address.
func adminURL(addr, path string) string {
	if clientTLS() != nil {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// secureSetup makes the run's CA, the nodes' certificates and the
// stranger's (a node certificate of the same CA for strangerID), and
// returns the clients' TLS.
func secureSetup(dir string, nodes int) (string, *tls.Config, error) {
	certs := filepath.Join(dir, "certs")
	// Twice the nodes: the replace nemesis adds nodes with new ids.
	if err := launcher.CreateCerts(certs, 2*nodes, nil); err != nil {
		return "", nil, err
	}
	signer := pki.Signer{CACert: filepath.Join(certs, pki.CACert), CAKey: filepath.Join(certs, pki.CAKey)}
	if err := pki.CreateNode(strangerCerts(certs), signer, strangerID, []string{"127.0.0.1"}, true); err != nil {
		return "", nil, err
	}
	b, err := os.ReadFile(filepath.Join(certs, pki.CACert))
	if err != nil {
		return "", nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return "", nil, errors.New("the run's CA certificate does not parse")
	}
	return certs, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// strangerCerts is where the stranger's certificate is.
func strangerCerts(certs string) string { return filepath.Join(certs, "stranger") }
