package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHealthWithTwoNodesPaused: with two of three real processes paused
// (SIGSTOP: their sockets stay open, nothing answers), the third says it
// is not ready and why, `kintsu ctl status` through it says the cluster is
// not ready and shows the paused nodes as not answering, within its
// deadlines; once they resume, all are ready again.
func TestHealthWithTwoNodesPaused(t *testing.T) {
	c := startCluster(t, 3)
	nodes := c.Nodes()
	// ctl finds the nodes' admin addresses in the registry, filled by
	// their first heartbeats.
	deadline := time.Now().Add(30 * time.Second)
	for known := 0; known < len(nodes); {
		if time.Now().After(deadline) {
			t.Fatalf("node 1 knows %d admin addresses after 30 s", known)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, with a deadline
		known = 0
		for _, nd := range status(t, nodes[0].HTTPAddr).Nodes {
			if nd.HTTPAddr != "" {
				known++
			}
		}
	}
	for _, nd := range nodes[1:] {
		if err := c.Pause(nd.ID); err != nil {
			t.Fatal(err)
		}
	}
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		for _, nd := range nodes[1:] {
			if err := c.Resume(nd.ID); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()
	// Every partition has two of its three replicas on the paused nodes:
	// none keeps a quorum, so within a few election timeouts node 1 names
	// them all, live all along.
	cl := http.Client{Timeout: 2 * time.Second}
	var code int
	var body string
	deadline = time.Now().Add(20 * time.Second)
	for code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprintf("and %d more have no leader with a quorum", partitions-10)) {
		if time.Now().After(deadline) {
			t.Fatalf("node 1's /readyz with two nodes paused, after 20 s: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, with a deadline
		if resp, err := cl.Get("http://" + nodes[0].HTTPAddr + "/readyz"); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
	}
	if resp, err := cl.Get("http://" + nodes[0].HTTPAddr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("node 1's /healthz with its peers paused: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	start := time.Now()
	out := run(t, 20*time.Second, binary, "ctl", "--http", nodes[0].HTTPAddr, "status")
	t.Logf("ctl status took %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{
		fmt.Sprintf(": NOT READY, 3 nodes, %d partitions, %d without a leader with a quorum, 2 not answering\n", partitions, partitions),
		"node 1 not ready: partitions ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("ctl status lacks %q:\n%s", want, out)
		}
	}
	for _, nd := range nodes[1:] {
		if !strings.Contains(out, fmt.Sprintf("  node %d: no answer", nd.ID)) {
			t.Fatalf("ctl status does not show node %d as not answering:\n%s", nd.ID, out)
		}
	}
	resume()
	waitReady(t, c)
}
