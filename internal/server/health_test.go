package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
)

// probe GETs path on the admin address and returns its status and body;
// 0 when the node does not answer within a second.
func probe(httpAddr, path string) (int, string) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + httpAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// lostIn parses the partitions a "not ready" body names.
func lostIn(body string) []int {
	m := regexp.MustCompile(`partitions? ([0-9, ]+) ha`).FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	var out []int
	for _, s := range strings.Split(m[1], ", ") {
		id, _ := strconv.Atoi(strings.TrimSpace(s))
		out = append(out, id)
	}
	return out
}

// A partition that loses its quorum makes /readyz of a node that
// forwards to it fail within a few seconds, naming it, though the node
// hosts no replica of it and its router still holds a leader hint (the
// old readiness took that hint as proof and stayed green).
func TestReadyzNamesAPartitionWithoutQuorum(t *testing.T) {
	tc := startCluster(t, 4, func(c *Config) {
		c.LeaderBalanceInterval = time.Hour // node 1 must stay leaderless
	})
	n1, h1 := tc.nodes[0], tc.cfgs[0].HTTPAddr
	// Node 1 leads nothing, so every write through it is forwarded and
	// its router learns every leader from a success.
	waitFor(t, "node 1 to hand over its leaderships", 15*time.Second, func() bool {
		code, body := postBody(t, "http://"+h1+"/v1/leadership/transfer", nil)
		return code == 200 && strings.Contains(body, `"still_leading":0`)
	})
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	var remote uint64 = 1 << 63 // a partition node 1 hosts no replica of
	for _, p := range n1.view().Parts {
		if err := c.Set(ctx5(t), keyIn(n1, uint64(p.ID), "h"), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if !n1.eng.HasGroup(uint64(p.ID)) && remote == 1<<63 {
			remote = uint64(p.ID)
		}
	}
	if remote == 1<<63 {
		t.Fatal("node 1 hosts every partition; the test needs one it forwards to")
	}
	if code, body := probe(h1, "/readyz"); code != 200 {
		t.Fatalf("/readyz before any failure = %d %q", code, body)
	}
	// Stop two of the three replicas of that partition.
	var stopped []uint64
	for _, id := range n1.router.GroupNodes(remote)[:2] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := tc.nodes[id-1].Stop(ctx); err != nil {
			t.Logf("stop node %d: %v", id, err)
		}
		cancel()
		stopped = append(stopped, id)
	}
	start := time.Now()
	var code int
	var body string
	for code != http.StatusServiceUnavailable || !slices.Contains(lostIn(body), int(remote)) {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("node 1's /readyz does not name partition %d (replicas on %v stopped) after 15s: %d %q", remote, stopped, code, body)
		}
		time.Sleep(20 * time.Millisecond)
		code, body = probe(h1, "/readyz")
	}
	t.Logf("after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.HasPrefix(body, "not ready: ") {
		t.Fatalf("body %q", body)
	}
	// Node 1 itself is fine: it stays live, and its status says why it is
	// not ready.
	if code, _ := probe(h1, "/healthz"); code != 200 {
		t.Fatalf("/healthz of a node whose peers stopped = %d", code)
	}
	st := n1.Status()
	if st.Ready || len(st.NotReady) == 0 || !slices.Contains(lostIn(st.NotReady[len(st.NotReady)-1]), int(remote)) {
		t.Fatalf("status: ready %v, reasons %q", st.Ready, st.NotReady)
	}
	// What the old readiness saw: a leader hint for every partition.
	for _, p := range n1.view().Parts {
		if n1.router.LeaderOf(uint64(p.ID)) == 0 {
			t.Logf("partition %d: no hint left (the old readiness would have failed too)", p.ID)
		}
	}
}

// A removed node closes its client port and its clients' connections,
// and its /readyz and status say it was removed.
func TestRemovedNodeClosesItsClientPort(t *testing.T) {
	tc := startCluster(t, 3, placementTune)
	n3, h3 := tc.nodes[2], tc.cfgs[2].HTTPAddr
	// A connection in use before the removal: raw, since a pooled client
	// would dial again once its connection closes, and the port, free by
	// then, may belong to another test's server.
	used, err := net.DialTimeout("tcp", tc.respAddr(2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer used.Close()
	ping := func() string {
		_ = used.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := used.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
			return err.Error()
		}
		buf := make([]byte, 256)
		n, err := used.Read(buf)
		if n == 0 {
			return fmt.Sprint(err)
		}
		return string(buf[:n])
	}
	if got := ping(); got != "+PONG\r\n" {
		t.Fatalf("PING before the removal: %q", got)
	}
	// An idle connection is told why before it is closed.
	raw, err := net.DialTimeout("tcp", tc.respAddr(2), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if code := post(t, "http://"+tc.cfgs[0].HTTPAddr+"/v1/nodes/3/remove?force=true"); code != http.StatusOK {
		t.Fatalf("force-remove node 3: %d", code)
	}
	waitFor(t, "node 3's client port to refuse connections", 15*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", tc.respAddr(2), time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	if got := ping(); strings.Contains(got, "PONG") {
		t.Fatalf("a connection opened before the removal still serves: %q", got)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(raw); string(b) != "-ERR this node was removed from the cluster; connect to another node\r\n" {
		t.Fatalf("an idle client of the removed node read %q before the close", b)
	}
	if code, body := probe(h3, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "node removed from the cluster") {
		t.Fatalf("/readyz of a removed node = %d %q", code, body)
	}
	code, body := probe(h3, "/v1/status")
	var st api.StatusJSON
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/v1/status of a removed node = %d %q", code, body)
	}
	if st.Ready || !st.Removed {
		t.Fatalf("status of a removed node: ready %v removed %v %q", st.Ready, st.Removed, st.NotReady)
	}
	if !n3.Health().Live() {
		t.Fatalf("a removed node is not live: %q", n3.Health().NotLive)
	}
}

// An engine loop frozen in a disk write (no error, no progress) turns
// /healthz and /readyz red, and green again once the disk comes back.
func TestFrozenLoopFailsHealthz(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.FaultInjection = c.NodeID == 1 })
	n1, h1 := tc.nodes[0], tc.cfgs[0].HTTPAddr
	n1.health.stallAfter.Store(int64(time.Second))
	if code, body := probe(h1, "/healthz"); code != 200 {
		t.Fatalf("/healthz before the stall = %d %q", code, body)
	}
	if code := put(t, h1, "/v1/fault/disk", `{"sync_delay_ms":60000}`); code != 200 {
		t.Fatalf("stall the disk: %d", code)
	}
	// Any write through node 1's engine now blocks its loop in an fsync.
	go func() {
		c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = c.Set(ctx, keyIn(n1, 0, "frozen"), "v", 0).Err()
	}()
	var body string
	waitFor(t, "node 1's /healthz to report the stalled loop", 15*time.Second, func() bool {
		var code int
		code, body = probe(h1, "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.HasPrefix(body, "not live: engine loop stalled for ") {
		t.Fatalf("/healthz body %q", body)
	}
	if code, body := probe(h1, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "engine loop stalled for ") {
		t.Fatalf("/readyz of a frozen node = %d %q", code, body)
	}
	if code := put(t, h1, "/v1/fault/disk", `{}`); code != 200 {
		t.Fatalf("heal the disk: %d", code)
	}
	waitFor(t, "node 1's /healthz to recover with its disk", 15*time.Second, func() bool {
		code, _ := probe(h1, "/healthz")
		return code == 200
	})
}
