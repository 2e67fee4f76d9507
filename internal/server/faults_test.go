package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

func put(t *testing.T, httpAddr, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+httpAddr+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The fault hooks exist only with FaultInjection, validate their input,
// and take effect at once.
func TestFaultHooks(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.FaultInjection = c.NodeID == 1 })
	n1, h1, h2 := tc.nodes[0], tc.cfgs[0].HTTPAddr, tc.cfgs[1].HTTPAddr
	for _, path := range []string{"/v1/fault/cut", "/v1/fault/disk", "/v1/fault/clock"} {
		if code := put(t, h2, path, "{}"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Fatalf("%s without fault injection answered %d", path, code)
		}
	}
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/v1/fault/clock", `{"offset_ms":1500,"rate":2}`, 200},
		{"/v1/fault/clock", `{"rate":50}`, 400},
		{"/v1/fault/clock", `{"offset_ms":7200000}`, 400},
		{"/v1/fault/clock", `{"speed":2}`, 400},
		{"/v1/fault/disk", `{"sync_delay_ms":300}`, 200},
		{"/v1/fault/disk", `{"sync_delay_ms":-1}`, 400},
		{"/v1/fault/disk", `not json`, 400},
		{"/v1/fault/cut", `{"nodes":[2]}`, 200},
	} {
		if code := put(t, h1, c.path, c.body); code != c.want {
			t.Fatalf("PUT %s %s = %d, want %d", c.path, c.body, code, c.want)
		}
	}
	if off, rate := n1.clock.Skewed(); off != 1500*time.Millisecond || rate != 2 {
		t.Fatalf("clock skew %v ×%v after refused changes", off, rate)
	}
	if f := n1.disk.Fault(); f.SyncDelay != 300*time.Millisecond || f.FailWrites {
		t.Fatalf("disk fault %+v", f)
	}
	for _, path := range []string{"/v1/fault/cut", "/v1/fault/disk", "/v1/fault/clock"} {
		if code := put(t, h1, path, "{}"); code != 200 {
			t.Fatalf("healing %s answered %d", path, code)
		}
	}
	if off, rate := n1.clock.Skewed(); off != 0 || rate != 1 {
		t.Fatalf("clock not healed: %v ×%v", off, rate)
	}
	if f := n1.disk.Fault(); f.SyncDelay != 0 {
		t.Fatalf("disk not healed: %+v", f)
	}
}

// A node whose disk fails fences itself: its engine stops, /healthz turns
// 503, and the rest of the cluster keeps acknowledging writes, every one of
// which stays readable.
func TestFailingDiskFencesTheNode(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.FaultInjection = c.NodeID == 1 })
	n1 := tc.nodes[0]
	c2 := redis.NewClient(&redis.Options{Addr: tc.respAddr(1), MaxRetries: -1})
	defer c2.Close()
	if code := put(t, tc.cfgs[0].HTTPAddr, "/v1/fault/disk", `{"fail_writes":true}`); code != 200 {
		t.Fatalf("fail_writes answered %d", code)
	}
	acked := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	fenced := false
	for i := 0; !fenced || len(acked) < 50; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("fenced=%v after %d acknowledged writes", fenced, len(acked))
		}
		k, v := fmt.Sprint("k", i), fmt.Sprint(i)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if c2.Set(ctx, k, v, 0).Err() == nil {
			acked[k] = v
		}
		cancel()
		select {
		case <-n1.Failed():
			fenced = true
		default:
		}
	}
	if n1.Err() == nil {
		t.Fatal("node 1's engine stopped without an error")
	}
	resp, err := http.Get("http://" + tc.cfgs[0].HTTPAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/healthz of the fenced node = %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range acked {
		if got, err := c2.Get(ctx, k).Result(); err != nil || got != v {
			t.Fatalf("GET %s = %q, %v; want %q", k, got, err, v)
		}
	}
	// Its storage refuses to close cleanly; that is expected here.
	_ = n1.Stop(ctx)
	tc.nodes[0] = nil
}

// Crash failpoints fire once, where they are armed: the coordinator's
// after a cross-partition transaction's prepares and after its decision,
// a participant leader's after its PREPARE applied.
func TestCrashFailpoints(t *testing.T) {
	crashed := make(chan uint64, 16)
	tc := startCluster(t, 3, func(c *Config) {
		c.FaultInjection = true
		id := c.NodeID
		c.crash = func() { crashed <- id }
	})
	h1 := tc.cfgs[0].HTTPAddr
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"at":"somewhere"}`, 400},
		{`{"at":"after-prepare","extra":1}`, 400},
		{`{}`, 200},
	} {
		if code := put(t, h1, "/v1/fault/crash", c.body); code != c.want {
			t.Fatalf("PUT /v1/fault/crash %s = %d, want %d", c.body, code, c.want)
		}
	}
	cl := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer cl.Close()
	keys := ring.SpreadKeys("crash", 2, 8)
	transfer := func() {
		t.Helper()
		_, err := cl.TxPipelined(ctx5(t), func(p redis.Pipeliner) error {
			p.IncrBy(ctx5(t), keys[0], -1)
			p.IncrBy(ctx5(t), keys[1], 1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want uint64) {
		t.Helper()
		select {
		case got := <-crashed:
			if want != 0 && got != want {
				t.Fatalf("node %d crashed, want node %d", got, want)
			}
		default:
			t.Fatal("the armed failpoint did not fire")
		}
	}
	for _, at := range []string{"after-prepare", "after-decision"} {
		if code := put(t, h1, "/v1/fault/crash", fmt.Sprintf(`{"at":%q}`, at)); code != 200 {
			t.Fatalf("arming %s: %d", at, code)
		}
		transfer() // the stub returns, so the transaction still completes
		expect(1)
		transfer()
		if len(crashed) != 0 {
			t.Fatalf("failpoint %s fired twice", at)
		}
	}
	// A participant leader: arm every node; the leaders of the two
	// partitions each reach it once (which nodes depends on the elections).
	for _, cfg := range tc.cfgs {
		if code := put(t, cfg.HTTPAddr, "/v1/fault/crash", `{"at":"participant-prepared"}`); code != 200 {
			t.Fatalf("arming participant-prepared: %d", code)
		}
	}
	transfer()
	expect(0)
}
