package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
)

// TestAdvertisedAddresses: nodes that advertise a hostname (as containers
// behind a published port do) are given by that name in CLUSTER SLOTS,
// in MOVED and in the admin API's status, and a go-redis ClusterClient
// seeded with one node reaches them all through it.
func TestAdvertisedAddresses(t *testing.T) {
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{
			Binary: binary, Nodes: 3, Dir: dir, BasePort: base, Partitions: partitions, Replicas: 3,
			NodeArgs: func(n launcher.NodeInfo) []string {
				_, resp, _ := net.SplitHostPort(n.RESPAddr)
				_, http, _ := net.SplitHostPort(n.HTTPAddr)
				return []string{"--advertise-resp-addr", "localhost:" + resp, "--advertise-http-addr", "localhost:" + http}
			},
		}
	})
	t.Cleanup(func() { _ = c.StopAll(15 * time.Second) })
	nodes := c.Nodes()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(nodes[0].RESPAddr)
	defer cl.Close()
	waitFor(t, "every node's advertised address in CLUSTER SLOTS", 30*time.Second, func() bool {
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil || len(slots) == 0 {
			return false
		}
		hosts := map[string]bool{}
		for _, s := range slots {
			for _, n := range s.Nodes {
				hosts[n.Addr] = true
			}
		}
		for _, n := range nodes {
			_, port, _ := net.SplitHostPort(n.RESPAddr)
			if !hosts["localhost:"+port] {
				return false
			}
		}
		return len(hosts) == len(nodes)
	})
	waitFor(t, "every node's advertised addresses in the status", 30*time.Second, func() bool {
		st := status(t, nodes[1].HTTPAddr)
		for _, rec := range st.Nodes {
			if !strings.HasPrefix(rec.RESPAddr, "localhost:") || !strings.HasPrefix(rec.HTTPAddr, "localhost:") {
				return false
			}
		}
		return len(st.Nodes) == len(nodes)
	})
	// A key led elsewhere, asked on a connection that read the slots (a
	// cluster client's): MOVED names the advertised address. (A node
	// redirects only to a leader that has held for a second as it sees
	// it — edge/settle.go — and before, serves the key itself.)
	conn := cl.Conn()
	defer conn.Close()
	conn.ClusterSlots(ctx)
	var moved string
	waitFor(t, "a MOVED", 30*time.Second, func() bool {
		for i := 0; i < 200 && moved == ""; i++ {
			if err := conn.Get(ctx, fmt.Sprint("k", i)).Err(); err != nil && strings.HasPrefix(err.Error(), "MOVED") {
				moved = err.Error()
			}
		}
		return moved != ""
	})
	if !strings.Contains(moved, " localhost:") {
		t.Fatalf("MOVED: %q", moved)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].RESPAddr}})
	defer cc.Close()
	for i := 0; i < 50; i++ {
		if err := cc.Set(ctx, fmt.Sprint("adv", i), i, 0).Err(); err != nil {
			t.Fatalf("ClusterClient write %d: %v", i, err)
		}
	}
	if n, err := cc.Get(ctx, "adv49").Int(); err != nil || n != 49 {
		t.Fatalf("ClusterClient read: %d %v", n, err)
	}
}
