package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/pki"
)

// devUser is the client certificate `kintsu dev --secure` makes: Redis's
// default user.
const devUser = "default"

// devSecurity is how a dev cluster is protected: nothing (certsDir "",
// loopback only), or TLS with the certificates and password in the dev dir.
type devSecurity struct {
	certsDir     string
	passwordFile string
	password     string
}

// setupDevSecurity prepares the dev dir for --secure: a CA, a certificate
// per node (127.0.0.1 and localhost), a client certificate and a random
// password, each made only once and reused when the cluster comes back.
func setupDevSecurity(dir string, secure bool, nodes int) (devSecurity, error) {
	if !secure {
		return devSecurity{}, nil
	}
	s := devSecurity{certsDir: filepath.Join(dir, "certs"), passwordFile: filepath.Join(dir, "password")}
	if err := launcher.CreateCerts(s.certsDir, nodes, nil, devUser); err != nil {
		return s, fmt.Errorf("certificates: %w", err)
	}
	b, err := os.ReadFile(s.passwordFile)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return s, err
		}
		b = []byte(hex.EncodeToString(raw) + "\n")
		if err := pki.WriteFiles(dir, []pki.File{{Name: "password", Data: b, Mode: 0o600}}, false); err != nil {
			return s, err
		}
	} else if err != nil {
		return s, err
	}
	s.password = strings.TrimSpace(string(b))
	return s, nil
}

// serverArgs are the nodes' extra flags: the password file, so clients
// and the admin API must give the password.
func (s devSecurity) serverArgs() []string {
	if s.passwordFile == "" {
		return nil
	}
	abs, err := filepath.Abs(s.passwordFile)
	if err != nil {
		abs = s.passwordFile
	}
	return []string{"--requirepass-file", abs}
}

// printTry tells how to reach the cluster: plain redis-cli, or the exact
// TLS command lines with the CA to trust.
func printTry(w io.Writer, c *launcher.Cluster, sec devSecurity) {
	first := c.Nodes()[0]
	_, port, _ := net.SplitHostPort(first.RESPAddr)
	if sec.certsDir == "" {
		fmt.Fprintf(w, "Try:  redis-cli -p %s set hello world\n", port)
		return
	}
	ca := filepath.Join(sec.certsDir, pki.CACert)
	fmt.Fprintf(w, "Try:  redis-cli --tls --cacert %s -p %s --user %s --pass %s set hello world\n", ca, port, devUser, sec.password)
	fmt.Fprintf(w, "      (client certificate: --cert %s --key %s)\n",
		filepath.Join(sec.certsDir, pki.ClientCert(devUser)), filepath.Join(sec.certsDir, pki.ClientKey(devUser)))
	fmt.Fprintf(w, "Admin: curl --cacert %s -H 'Authorization: Bearer %s:%s' https://%s/v1/status\n", ca, devUser, sec.password, first.HTTPAddr)
	fmt.Fprintf(w, "       kintsu ctl --http %s --certs-dir %s --password-file %s status\n", first.HTTPAddr, sec.certsDir, sec.passwordFile)
	fmt.Fprintf(w, "Password: %s (in %s)\n", sec.password, sec.passwordFile)
}

// devInsecureWarning is printed when the dev cluster runs without TLS.
const devInsecureWarning = "kintsu dev: WARNING: insecure cluster (no TLS, no authentication), reachable on 127.0.0.1 only; use --secure for TLS"
