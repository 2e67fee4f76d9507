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

// A node that ran before and comes back with an empty data dir (a lost or
// replaced disk) refuses to start: bootstrapping would put empty logs back
// into raft groups that count it for quorums.
func TestEmptyDirAfterLostDiskIsRefused(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.EmptyDirCheckTimeout = time.Second })
	// Wait until node 2 has announced itself (what a first start does).
	deadline := time.Now().Add(10 * time.Second)
	for tc.nodes[0].knownMember(2) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node 2 never announced itself")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
	if err := tc.nodes[1].Stop(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	cfg := tc.cfgs[1]
	cfg.DataDir = t.TempDir() // the new, empty disk
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err := Start(cfg)
	if err == nil {
		n.Stop(ctx5(t))
		t.Fatal("a node that lost its disk started empty")
	}
	if !strings.Contains(err.Error(), "is empty, but node 2 has run in this cluster before") {
		t.Fatalf("error: %v", err)
	}
	// Nothing was written to the empty dir that would make a second try
	// look like a restart.
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	if _, err := Start(cfg); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("second try: %v", err)
	}
}
