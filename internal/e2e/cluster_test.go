package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
)

// waitTopology waits until CLUSTER NODES on the first node lists every
// node, i.e. every node's client address is in the cluster metadata.
func waitTopology(t *testing.T, c *launcher.Cluster) {
	t.Helper()
	cl := client(c.Nodes()[0].RESPAddr)
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		nodes, err := cl.ClusterNodes(ctx).Result()
		cancel()
		if err == nil && strings.Count(nodes, "\n") == len(c.Nodes()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CLUSTER NODES never listed every node: %q, %v", nodes, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// moveLeaders makes every node in turn hand all its leaderships away.
func moveLeaders(t *testing.T, c *launcher.Cluster) {
	t.Helper()
	hc := http.Client{Timeout: 15 * time.Second}
	for _, n := range c.Nodes() {
		resp, err := hc.Post("http://"+n.HTTPAddr+"/v1/leadership/transfer", "", nil)
		if err != nil {
			t.Errorf("transfer leadership of node %d: %v", n.ID, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("transfer leadership of node %d: %s", n.ID, resp.Status)
		}
	}
}

// TestClusterAwareClients: redis-cli -c, redis-benchmark --cluster and
// go-redis's ClusterClient work against the cluster and keep working, with
// zero failed requests, while every node hands its leaderships away.
func TestClusterAwareClients(t *testing.T) {
	cli := needTool(t, "redis-cli")
	bench := needTool(t, "redis-benchmark")
	c := startCluster(t, 3)
	waitTopology(t, c)
	nodes := c.Nodes()

	for i := 0; i < 20; i++ {
		h, p := hostPort(t, nodes[i%3].RESPAddr)
		k := fmt.Sprint("cli-", i)
		if out := run(t, 10*time.Second, cli, "-c", "-h", h, "-p", p, "set", k, k); strings.TrimSpace(out) != "OK" {
			t.Fatalf("redis-cli -c set %s: %q", k, out)
		}
		h, p = hostPort(t, nodes[(i+1)%3].RESPAddr)
		if out := run(t, 10*time.Second, cli, "-c", "-h", h, "-p", p, "get", k); strings.TrimSpace(out) != k {
			t.Fatalf("redis-cli -c get %s: %q", k, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].RESPAddr}, ReadTimeout: 6 * time.Second})
	defer cc.Close()
	load := startIncrLoad(ctx, cc, 4, "cc")
	h, p := hostPort(t, nodes[1].RESPAddr)
	benchCmd := exec.CommandContext(ctx, bench, "-h", h, "-p", p, "--cluster", "-t", "set,get", "-n", "20000", "-c", "20", "--csv")
	var benchOut strings.Builder
	benchCmd.Stdout, benchCmd.Stderr = &benchOut, &benchOut
	if err := benchCmd.Start(); err != nil {
		t.Fatal(err)
	}
	moveLeaders(t, c)
	benchErr := benchCmd.Wait()
	moveLeaders(t, c) // and once more for the go-redis load alone
	ops, loadErr := load.halt()

	out := benchOut.String()
	if benchErr != nil || !strings.Contains(out, `"SET"`) || !strings.Contains(out, `"GET"`) || strings.Contains(out, "rror") || strings.Contains(out, "MOVED") {
		t.Fatalf("redis-benchmark --cluster while leaders moved: %v\n%s", benchErr, out)
	}
	t.Logf("redis-benchmark --cluster while leaders moved:\n%s", out)
	if loadErr != nil {
		t.Fatalf("of %d ClusterClient requests while leaders moved, %v", ops, loadErr)
	}
	t.Logf("go-redis ClusterClient: %d requests, none failed", ops)
}
