package server

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRestartRecoversAndRefusesContradictingFlags stops a whole cluster,
// restarts it from its data dirs (data intact), then tries to restart a
// node with flags that contradict its data dir and expects a clear refusal.
func TestRestartRecoversAndRefusesContradictingFlags(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	for i := 0; i < 20; i++ {
		if err := c.Set(ctx, "k"+string(rune('a'+i)), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	tc.stopAll()
	cfgs := tc.cfgs
	tc.nodes = nil

	// Contradicting flags are refused, naming each disagreement.
	bad := cfgs[0]
	bad.Listeners = nil
	bad.Partitions, bad.NodeID = 16, 1
	bad.RESPAddr, bad.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	_, err := Start(bad)
	if err == nil || !strings.Contains(err.Error(), "not --partitions 16") || !strings.Contains(err.Error(), "belongs to cluster") {
		t.Fatalf("restart with --partitions 16 over an 8-partition data dir: %v", err)
	}

	// The same flags bring the cluster back with its data.
	for i := range cfgs {
		cfgs[i].Listeners = &Listeners{Peer: listenOn(t, cfgs[i].PeerAddr), RESP: listenOn(t, cfgs[i].RESPAddr), HTTP: listenOn(t, cfgs[i].HTTPAddr)}
	}
	for _, cfg := range cfgs {
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, n)
	}
	tc.waitReady()
	c = redis.NewClient(&redis.Options{Addr: tc.respAddr(2)})
	defer c.Close()
	for i := 0; i < 20; i++ {
		got, err := c.Get(ctx, "k"+string(rune('a'+i))).Int()
		if err != nil || got != i {
			t.Fatalf("after restart k%c = %d, %v", 'a'+i, got, err)
		}
	}
}

// listenOn re-binds an address a stopped node released.
func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot re-bind %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the kernel releases the port asynchronously
	}
}
