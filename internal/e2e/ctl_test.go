package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
)

// TestCtl: kintsu ctl, pointed at any node's admin address, prints every
// node and partition, and locates a key where the ring puts it, with a
// leader among its replicas.
func TestCtl(t *testing.T) {
	c := startCluster(t, 3)
	nodes := c.Nodes()
	// Each node announces its addresses into the cluster metadata once it
	// is up; until then others print "-" for them. Poll until all are in.
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out = run(t, 30*time.Second, binary, "ctl", "--http", nodes[1].HTTPAddr, "status")
		missing := ""
		for _, nd := range nodes {
			if !strings.Contains(out, "\n"+fmt.Sprint(nd.ID)+" ") || !strings.Contains(out, nd.RESPAddr) {
				missing = fmt.Sprintf("node %d (%s)", nd.ID, nd.RESPAddr)
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s missing after 30 s:\n%s", missing, out)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition, with a deadline
	}
	if !strings.Contains(out, fmt.Sprintf("as node %d sees it", nodes[1].ID)) || !strings.Contains(out, ": ready, 3 nodes, ") {
		t.Fatalf("status header:\n%s", out)
	}
	if n := strings.Count(out, "none known"); n > 0 {
		t.Fatalf("%d partitions without a leader on a ready cluster:\n%s", n, out)
	}
	out = run(t, 30*time.Second, binary, "ctl", "--http", nodes[2].HTTPAddr, "locate", "{user:1}:name")
	slot := ring.Slot([]byte("{user:1}:name"))
	if !strings.Contains(out, fmt.Sprintf("slot        %d\n", slot)) || !strings.Contains(out, fmt.Sprintf("partition   %d (", ring.PartitionOf(slot, partitions))) {
		t.Fatalf("locate:\n%s", out)
	}
	var leader uint64
	var replicas string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "leader" {
			fmt.Sscan(f[1], &leader)
		} else if len(f) >= 2 && f[0] == "replicas" {
			replicas = line
		}
	}
	if leader == 0 || !strings.Contains(replicas, fmt.Sprint(leader, " (")) {
		t.Fatalf("leader %d not among the replicas:\n%s", leader, out)
	}
}
