package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// composeCmd is how this machine runs Compose: the docker plugin or the
// standalone tool; nil when Docker itself is not usable, skipping the
// test (Docker is not something CI can install). Docker without Compose
// fails under CI=true.
func composeCmd(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker not installed; skipping the container deployment test")
	}
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("the Docker engine does not answer (%v: %s); skipping the container deployment test", err, strings.TrimSpace(string(out)))
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Docker is here but Compose is not: install docker-compose (see .ci/run)")
	}
	t.Skip("Docker Compose not installed; skipping the container deployment test")
	return nil
}

// TestComposeCluster: the image builds from this tree with no registry
// (scripts/image.sh, FROM scratch), deploy/compose.yaml brings up three
// nodes with TLS and a password, and clients on the host — go-redis's
// ClusterClient and redis-cli — use the cluster through the nodes'
// advertised addresses.
func TestComposeCluster(t *testing.T) {
	compose := composeCmd(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprint(rand.IntN(1 << 30))
	image, project := "kintsu:e2e-"+suffix, "kintsue2e"+suffix
	certs := t.TempDir()
	// Published ports 45xx (RESP) and 46xx (admin): clear of kintsu dev's
	// 7xxx/8xxx and of the other tests' 20000-32000.
	env := append(os.Environ(), "KINTSU_IMAGE="+image, "KINTSU_CERTS="+certs, "KINTSU_RESP_PREFIX=45", "KINTSU_HTTP_PREFIX=46")
	sh := func(timeout time.Duration, name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sh(10*time.Minute, "scripts/image.sh", image); err != nil {
		t.Fatalf("building the image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = sh(time.Minute, "docker", "rmi", "-f", image) })
	up := append(compose[1:], "-p", project, "-f", "deploy/compose.yaml")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := sh(time.Minute, compose[0], append(up, "logs", "--tail", "30")...)
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := sh(3*time.Minute, compose[0], append(up, "down", "-v", "--remove-orphans")...); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := sh(5*time.Minute, compose[0], append(up, "up", "-d")...); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join(certs, "password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the certs step wrote no usable CA")
	}
	tlsConf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	one := redis.NewClient(&redis.Options{Addr: "127.0.0.1:4501", Password: password, TLSConfig: tlsConf})
	defer one.Close()
	waitFor(t, "the containers' cluster to take a write", 2*time.Minute, func() bool {
		return one.Set(ctx, "compose", "up", 0).Err() == nil
	})
	waitFor(t, "every node to advertise its published address", time.Minute, func() bool {
		slots, err := one.ClusterSlots(ctx).Result()
		seen := map[string]bool{}
		for _, s := range slots {
			for _, n := range s.Nodes {
				seen[n.Addr] = true
			}
		}
		return err == nil && seen["127.0.0.1:4501"] && seen["127.0.0.1:4502"] && seen["127.0.0.1:4503"] && len(seen) == 3
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:4502"}, Password: password, TLSConfig: tlsConf})
	defer cc.Close()
	for i := 0; i < 100; i++ {
		if err := cc.Set(ctx, fmt.Sprint("c", i), i, 0).Err(); err != nil {
			t.Fatalf("ClusterClient write %d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ {
		if n, err := cc.Get(ctx, fmt.Sprint("c", i)).Int(); err != nil || n != i {
			t.Fatalf("ClusterClient read %d: %d %v", i, n, err)
		}
	}
	cli := needTool(t, "redis-cli")
	out, err := sh(30*time.Second, cli, "--tls", "--cacert", filepath.Join(certs, "ca.crt"), "-p", "4503", "--user", "default", "--pass", password, "--no-auth-warning", "-c", "get", "c42")
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("redis-cli -c get c42: %v\n%s", err, out)
	}
}
