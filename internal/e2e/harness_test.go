package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/testbin"
)

const partitions = 16

var binary string

func TestMain(m *testing.M) {
	testbin.Main(func(b string) int {
		binary = b
		return m.Run()
	})
}

// startCluster starts n real server processes and waits until they are
// ready (see launch).
func startCluster(t *testing.T, n int, extra ...string) *launcher.Cluster {
	t.Helper()
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{
			Binary: binary, Nodes: n, Dir: dir, BasePort: base,
			Partitions: partitions, Replicas: 3, ExtraArgs: extra,
		}
	})
	t.Cleanup(func() {
		if err := c.StopAll(15 * time.Second); err != nil {
			t.Logf("stopping cluster: %v", err)
		}
		if t.Failed() {
			for _, nd := range c.Nodes() {
				b, _ := os.ReadFile(nd.LogPath)
				lines := strings.Split(string(b), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("--- node %d log tail ---\n%s", nd.ID, strings.Join(lines, "\n"))
			}
		}
	})
	return c
}

// launch starts a cluster on ports chosen at random below 32768 (above it
// the kernel hands out ephemeral ports) and waits until it is ready. When
// a port is taken — at the launcher's check, or by another test between
// that check and a node's own listen — it starts again on other ports.
func launch(t *testing.T, opts func(base int, dir string) launcher.Options) *launcher.Cluster {
	t.Helper()
	for try := 0; ; try++ {
		base := 20000 + 10*rand.IntN(200) // RESP base+i, HTTP base+1000+i, peer base+10000+i < 32768
		c, err := launcher.Start(opts(base, t.TempDir()))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err = c.WaitReady(ctx)
			cancel()
			if err == nil {
				return c
			}
			_ = c.StopAll(15 * time.Second)
		}
		var pe *launcher.PortError
		if !errors.As(err, &pe) || try == 9 {
			t.Fatal(err)
		}
	}
}

func waitReady(t *testing.T, c *launcher.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:        addr,
		MaxRetries:  -1, // the test decides what a failure means
		DialTimeout: time.Second,
		ReadTimeout: 6 * time.Second, // above the server's 5s request deadline
	})
}

// status fetches /v1/status from a node.
func status(t *testing.T, httpAddr string) api.StatusJSON {
	t.Helper()
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + httpAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st api.StatusJSON
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// busiestLeader returns the node leading the most partitions.
func busiestLeader(t *testing.T, c *launcher.Cluster) (uint64, int) {
	st := status(t, c.Nodes()[0].HTTPAddr)
	count := map[uint64]int{}
	for _, p := range st.Partitions {
		count[p.Leader]++
	}
	var best uint64
	for id, n := range count {
		if id != 0 && (best == 0 || n > count[best]) {
			best = id
		}
	}
	return best, count[best]
}

// tagFor returns a hash tag whose keys all land in partition p.
func tagFor(p int) string {
	for i := 0; ; i++ {
		tag := fmt.Sprint("p", p, "-", i)
		if ring.PartitionOf(ring.Slot([]byte(tag)), partitions) == p {
			return "{" + tag + "}"
		}
	}
}

// needTool returns the path of an outside tool, skipping the test when it
// is missing — except under CI=true, where a missing tool is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true (install it: see .ci/run)", name)
		}
		t.Skipf("%s not installed; skipping (install Debian's redis-tools / python3-redis to run it)", name)
	}
	return p
}
