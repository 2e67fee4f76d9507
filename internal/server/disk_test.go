package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/faultfs"
)

// TestDiskFullNOSPACE: a node whose data dir drops below its reserve
// refuses writes with NOSPACE (nothing applied), keeps serving reads, and
// takes writes again by itself once space is back. One node, so no
// leadership can move away: the refusal is what clients see.
func TestDiskFullNOSPACE(t *testing.T) {
	tc := startCluster(t, 1, func(c *Config) { c.FaultInjection, c.Replicas = true, 1 })
	n := tc.nodes[0]
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx5(t), "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n.disk.Set(faultfs.Fault{FreeBytes: 1 << 20})
	waitUntil(t, "the disk guard to see the disk full", 10*time.Second, n.eng.DiskFull)
	err := c.Set(ctx5(t), "during", "2", 0).Err()
	want := "NOSPACE disk almost full on node 1 (1 MiB free, reserve "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "MiB): writes refused until space is freed") {
		t.Fatalf("SET on a full disk: %v, want %q...", err, want)
	}
	if v, err := c.Get(ctx5(t), "before").Result(); err != nil || v != "1" {
		t.Fatalf("GET on a full disk: %q, %v", v, err)
	}
	if err := c.Get(ctx5(t), "during").Err(); err != redis.Nil {
		t.Fatalf("the refused SET was applied: %v", err)
	}

	if h := n.Health(); h.Ready() || !strings.Contains(strings.Join(h.NotReady, "; "), "disk almost full") {
		t.Errorf("health of a full node: %+v", h)
	}
	if m := scrape(t, tc.cfgs[0].HTTPAddr); !strings.Contains(m, "kintsu_disk_full 1") || !strings.Contains(m, "kintsu_disk_free_bytes 1.048576e+06") {
		t.Errorf("metrics do not show the full disk")
	}
	n.disk.Set(faultfs.Fault{})
	waitUntil(t, "the disk guard to see space again", 10*time.Second, func() bool { return !n.eng.DiskFull() })
	if err := c.Set(ctx5(t), "after", "3", 0).Err(); err != nil {
		t.Fatalf("SET with space back: %v", err)
	}
	if h := n.Health(); !h.Ready() {
		t.Errorf("health with space back: %+v", h)
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestDiskFullNodeHandsLeadershipAway: in a 3-node cluster, the node whose
// disk is almost full stops leading (its leaderships move, and stay away
// although the balancer offers them back), while writes sent through it
// keep succeeding on the other leaders and it keeps following.
func TestDiskFullNodeHandsLeadershipAway(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) {
		c.FaultInjection = c.NodeID == 1
		c.LeaderBalanceInterval = 200 * time.Millisecond // offer leaderships back often
	})
	n1 := tc.nodes[0]
	leads := func() int {
		led := 0
		for _, st := range n1.eng.Status() {
			if st.LeaderNode == 1 {
				led++
			}
		}
		return led
	}
	waitUntil(t, "node 1 to lead some partitions", 20*time.Second, func() bool { return leads() > 0 })
	n1.disk.Set(faultfs.Fault{FreeBytes: 1 << 20})
	waitUntil(t, "node 1 to see its disk full", 10*time.Second, n1.eng.DiskFull)
	waitUntil(t, "node 1 to lead nothing", 20*time.Second, func() bool { return leads() == 0 })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	for i := range 100 {
		k := "full-" + strconv.Itoa(i)
		if err := c.Set(ctx5(t), k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s through the full node: %v", k, err)
		}
		if v, err := c.Get(ctx5(t), k).Int(); err != nil || v != i {
			t.Fatalf("GET %s: %d, %v", k, v, err)
		}
	}
	n1.disk.Set(faultfs.Fault{})
	waitUntil(t, "node 1 to see space again", 10*time.Second, func() bool { return !n1.eng.DiskFull() })
	waitUntil(t, "node 1 to lead again (balancer)", 20*time.Second, func() bool { return leads() > 0 })
}

func scrape(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
