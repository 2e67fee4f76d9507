package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/pki"
)

// startSecureCluster starts n real nodes with certificates of a fresh CA
// and a password file, as `kintsu dev --secure` does.
func startSecureCluster(t *testing.T, n int, password string) (*launcher.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := launcher.CreateCerts(certs, n, nil, "default"); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{
			Binary: binary, Nodes: n, Dir: dir, BasePort: base,
			Partitions: partitions, Replicas: 3, CertsDir: certs, ExtraArgs: []string{"--requirepass-file", pw},
		}
	})
	t.Cleanup(func() { _ = c.StopAll(15 * time.Second) })
	return c, certs
}

// TestSecureClusterWithRealClients (issue 15's acceptance, by the tools a
// user has): with certificates and a password, redis-cli --tls, redis-py
// with ssl and go-redis with TLS work; plaintext, a missing password and
// an admin call without credentials are refused.
func TestSecureClusterWithRealClients(t *testing.T) {
	cli := needTool(t, "redis-cli")
	const password = "s3cret-e2e"
	c, certs := startSecureCluster(t, 3, password)
	ca := filepath.Join(certs, pki.CACert)
	nd := c.Nodes()[1]
	host, port := hostPort(t, nd.RESPAddr)

	out, err := exec.Command(cli, "--tls", "--cacert", ca, "-h", host, "-p", port, "--user", "default", "--pass", password, "--no-auth-warning", "set", "tls-key", "v1").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli --tls set: %v %q", err, out)
	}
	out, _ = exec.Command(cli, "--tls", "--cacert", ca, "-h", host, "-p", port, "get", "tls-key").CombinedOutput()
	if !strings.Contains(string(out), "NOAUTH") {
		t.Fatalf("redis-cli --tls without a password: %q, want NOAUTH", out)
	}
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ = exec.CommandContext(pctx, cli, "-h", host, "-p", port, "--user", "default", "--pass", password, "--no-auth-warning", "get", "tls-key").CombinedOutput()
	if strings.Contains(string(out), "v1") {
		t.Fatalf("a plaintext client read a value from a TLS port: %q", out)
	}

	// go-redis with TLS.
	pool := x509.NewCertPool()
	b, err := os.ReadFile(ca)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("CA: %v", err)
	}
	g := redis.NewClient(&redis.Options{Addr: c.Nodes()[2].RESPAddr, Password: password, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, MaxRetries: -1})
	defer g.Close()
	if v, err := g.Get(pctx, "tls-key").Result(); err != nil || v != "v1" {
		t.Fatalf("go-redis over TLS: %q %v", v, err)
	}

	// redis-py with ssl, where Debian's python3-redis is installed.
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import redis").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-redis is required under CI=true (see .ci/run)")
		}
		t.Log("python3-redis not installed: skipping its TLS check")
	} else {
		script := `import redis, sys
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), password=sys.argv[3], ssl=True, ssl_ca_certs=sys.argv[4])
assert r.get("tls-key") == b"v1"
assert r.set("py-tls", "x")
print("python tls ok")`
		if out := run(t, time.Minute, py, "-c", script, host, port, password, ca); !strings.Contains(out, "python tls ok") {
			t.Fatalf("redis-py over TLS: %s", out)
		}
	}

	// The admin API: 401 without credentials, 200 with the password.
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + nd.HTTPAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin call without credentials: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+nd.HTTPAddr+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer default:"+password)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin call with the password: %d", resp.StatusCode)
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		if resp, err := hc.Get("https://" + nd.HTTPAddr + probe); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s without credentials: %v %v", probe, resp, err)
		} else {
			resp.Body.Close()
		}
	}
}
