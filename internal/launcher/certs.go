package launcher

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/kintsu/kintsu/internal/pki"
)

// A secure local cluster (Options.CertsDir): the CA in CertsDir, node i's
// certificate in CertsDir/node-i, client certificates in CertsDir.

// NodeCertsDir is node id's certs directory under certsDir.
func NodeCertsDir(certsDir string, id uint64) string {
	return filepath.Join(certsDir, fmt.Sprintf("node-%d", id))
}

// CreateCerts makes a CA in certsDir and, for nodes 1..nodes, a node
// certificate in NodeCertsDir valid for 127.0.0.1 and localhost (and
// hosts[i-1] when hosts is given), and a client certificate for each of
// users in certsDir. The CA key stays in certsDir, out of the nodes'
// directories. What exists already is kept, so a cluster can be started
// again, or with more nodes, from the same directory.
func CreateCerts(certsDir string, nodes int, hosts []string, users ...string) error {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if !exists(filepath.Join(certsDir, pki.CACert)) {
		if err := pki.CreateCA(certsDir, false); err != nil {
			return err
		}
	}
	signer := pki.Signer{CACert: filepath.Join(certsDir, pki.CACert), CAKey: filepath.Join(certsDir, pki.CAKey)}
	for i := 1; i <= nodes; i++ {
		names := []string{"127.0.0.1", "localhost"}
		if len(hosts) >= i {
			names = append(names, hosts[i-1])
		}
		if exists(filepath.Join(NodeCertsDir(certsDir, uint64(i)), pki.NodeCert)) {
			continue
		}
		if err := pki.CreateNode(NodeCertsDir(certsDir, uint64(i)), signer, uint64(i), names, false); err != nil {
			return err
		}
	}
	for _, u := range users {
		if exists(filepath.Join(certsDir, pki.ClientCert(u))) {
			continue
		}
		if err := pki.CreateClient(certsDir, signer, u, false); err != nil {
			return err
		}
	}
	return nil
}

// probeTransport is the HTTP transport of readiness probes: HTTPS
// trusting the cluster's CA when the cluster is secure.
func probeTransport(certsDir string) (*http.Transport, string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	if certsDir == "" {
		return tr, "http", nil
	}
	cfg, err := pki.ClientConfig(certsDir, "")
	if err != nil {
		return nil, "", fmt.Errorf("launcher: %w", err)
	}
	tr.TLSClientConfig = cfg
	return tr, "https", nil
}

// securityArgs is how a node is told to be secure, or that it is not.
func (o Options) securityArgs(id uint64) []string {
	if o.CertsDir == "" {
		return []string{"--insecure"}
	}
	return []string{"--certs-dir", NodeCertsDir(o.CertsDir, id)}
}

// checkCerts fails early when a secure cluster lacks its CA.
func (o Options) checkCerts() error {
	if o.CertsDir == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(o.CertsDir, pki.CACert)); err != nil {
		return fmt.Errorf("CertsDir: %w (see CreateCerts)", err)
	}
	return nil
}
