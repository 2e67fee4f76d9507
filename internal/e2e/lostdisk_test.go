package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestLostDiskRefusesToStart: a node killed and restarted on an empty data
// dir (its disk lost) exits with a message saying why, instead of
// rejoining its raft groups with an empty log.
func TestLostDiskRefusesToStart(t *testing.T) {
	c := startCluster(t, 3)
	nodes := c.Nodes()
	victim := nodes[1]
	deadline := time.Now().Add(20 * time.Second)
	for {
		announced := false
		for _, n := range status(t, nodes[0].HTTPAddr).Nodes {
			announced = announced || n.ID == victim.ID && n.RESPAddr != ""
		}
		if announced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d never announced itself", victim.ID)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, with a deadline
	}
	if err := c.Kill(victim.ID); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(victim.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(victim.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(victim.ID); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for c.Running(victim.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("node %d is running on an empty data dir after losing its disk", victim.ID)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	log, _ := os.ReadFile(victim.LogPath)
	if !strings.Contains(string(log), "has run in this cluster before") {
		t.Fatalf("node %d exited without saying why; log tail:\n%s", victim.ID, tail(string(log), 10))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
