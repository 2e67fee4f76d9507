package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// testCluster runs n in-process nodes on loopback with real sockets.
type testCluster struct {
	t     testing.TB
	nodes []*Node
	cfgs  []Config
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	ic := map[uint64]string{}
	var lns []*Listeners
	for i := 1; i <= n; i++ {
		ls := &Listeners{Peer: listen(t), RESP: listen(t), HTTP: listen(t)}
		lns = append(lns, ls)
		ic[uint64(i)] = ls.Peer.Addr().String()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	for i := 1; i <= n; i++ {
		ls := lns[i-1]
		cfg := Config{
			NodeID: uint64(i), DataDir: t.TempDir(),
			RESPAddr: ls.RESP.Addr().String(), PeerAddr: ls.Peer.Addr().String(), HTTPAddr: ls.HTTP.Addr().String(),
			InitialCluster: ic, Partitions: 8, Replicas: 3,
			TickInterval: 20 * time.Millisecond, Logger: logger, Listeners: ls,
			// Nodes start one by one on pre-opened listeners that do not
			// answer yet, so the empty-dir check would wait out its timeout
			// for every node; TestEmptyDirAfterLostDiskIsRefused runs it.
			EmptyDirCheckTimeout: -1,
		}
		if tune != nil {
			tune(&cfg)
		}
		tc.cfgs = append(tc.cfgs, cfg)
	}
	for _, cfg := range tc.cfgs {
		node, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, node)
	}
	t.Cleanup(tc.stopAll)
	tc.waitReady()
	return tc
}

func (tc *testCluster) stopAll() {
	for _, n := range tc.nodes {
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.Stop(ctx); err != nil {
			tc.t.Errorf("stop node %d: %v", n.cfg.NodeID, err)
		}
		cancel()
	}
}

func (tc *testCluster) waitReady() {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range tc.nodes {
		for !n.Ready() {
			if time.Now().After(deadline) {
				tc.t.Fatalf("node %d not ready: %+v", n.cfg.NodeID, n.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitKnown waits until every node knows every other node's client
// address, i.e. has applied their first heartbeats.
func (tc *testCluster) waitKnown() {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range tc.nodes {
		for {
			known := 0
			for _, r := range n.registry.Nodes() {
				if r.RESPAddr != "" {
					known++
				}
			}
			if known == len(tc.nodes) {
				break
			}
			if time.Now().After(deadline) {
				tc.t.Fatalf("node %d knows %d client addresses: %+v", n.cfg.NodeID, known, n.registry.Nodes())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (tc *testCluster) respAddr(i int) string { return tc.cfgs[i].RESPAddr }

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeRecord is node id's registry entry as n reads it.
func (n *Node) nodeRecord(id uint64) (api.NodeRecord, bool) {
	for _, rec := range n.registry.Nodes() {
		if rec.ID == id {
			return rec, true
		}
	}
	return api.NodeRecord{}, false
}
