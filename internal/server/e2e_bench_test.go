package server

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// benchClients is how many clients drive the end-to-end benchmarks at
// once: enough to keep every partition's leader busy, so the figures are
// the cluster's throughput rather than one client's round trip. It is a
// fixed number, not a multiple of GOMAXPROCS, so a figure means the same
// load on any machine.
const benchClients = 16

// BenchmarkRequestPath measures client commands through the whole request
// path — RESP parsing, routing, forwarding to the partition's leader,
// raft replication to a majority, apply, reply — on an in-process 3-node
// cluster (8 partitions, 3 replicas) over loopback TCP, driven with
// go-redis by benchClients concurrent clients all connected to node 1, as
// a client behind one address would be. Leadership is pinned round-robin
// (partition p led by node p%3+1) so every run routes alike. Each
// sub-benchmark reports ops/s (one op is one client round trip), and
// latency percentiles; pipelined-SET-16 also reports cmds/s. The cluster
// shares the machine with the clients: compare sub-benchmarks, or the same
// sub-benchmark of two builds run side by side, never absolute figures
// across runs.
//
//	go test ./internal/server -run '^$' -bench RequestPath -benchtime 2000x
func BenchmarkRequestPath(b *testing.B) {
	tc := startCluster(b, 3, func(c *Config) { c.LeaderBalanceInterval = -1 })
	pinLeaders(b, tc)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: benchClients})
	defer rdb.Close()

	val := string(bytes.Repeat([]byte("v"), 100))
	// Keys are made up front: building them would spend, on the clients,
	// CPU the cluster shares.
	const nKeys = 4096
	setKeys, getKeys := make([]string, nKeys), make([]string, nKeys)
	for i := range nKeys {
		setKeys[i] = fmt.Sprintf("rp:set:%d", i)
		getKeys[i] = fmt.Sprintf("rp:get:%d", i)
	}
	loadKeys(b, rdb, getKeys, val)
	// MSET keys, three per client so clients never wait on each other's
	// transaction locks: in one partition by a hash tag, or in three.
	partitions := tc.cfgs[0].Partitions
	var msetOne, msetCross [benchClients][]any
	for c := range benchClients {
		for _, k := range []string{"a", "b", "c"} {
			msetOne[c] = append(msetOne[c], fmt.Sprintf("{rp:one:%d}%s", c, k), val)
		}
		for _, k := range ring.SpreadKeys(fmt.Sprintf("rp:cross:%d:", c), 3, partitions) {
			msetCross[c] = append(msetCross[c], k, val)
		}
	}

	mset := func(keys *[benchClients][]any) func(int, int) error {
		return func(c, _ int) error { return wantOK(rdb.MSet(ctx, keys[c]...)) }
	}
	cases := []struct {
		name  string
		perOp int // commands per round trip
		op    func(client, i int) error
	}{
		{"SET", 1, func(_, i int) error {
			return wantOK(rdb.Set(ctx, setKeys[i%nKeys], val, 0))
		}},
		{"GET", 1, func(_, i int) error {
			got, err := rdb.Get(ctx, getKeys[i%nKeys]).Result()
			if err == nil && got != val {
				err = fmt.Errorf("GET %s = %q", getKeys[i%nKeys], got)
			}
			return err
		}},
		{"MSET-one-partition", 1, mset(&msetOne)},
		{"MSET-cross-partition", 1, mset(&msetCross)},
		{"pipelined-SET-16", 16, func(_, i int) error {
			p := rdb.Pipeline()
			cmds := make([]*redis.StatusCmd, 16)
			for j := range cmds {
				cmds[j] = p.Set(ctx, setKeys[(i*16+j)%nKeys], val, 0)
			}
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
			for _, c := range cmds {
				if err := wantOK(c); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { drive(b, c.perOp, c.op) })
	}
}

// drive runs op b.N times, spread over benchClients goroutines, and
// reports throughput and latency. op gets its client's number and the
// op's index in [0, b.N). The first failure stops every client: a broken
// cluster would otherwise make each remaining op wait out its timeout.
func drive(b *testing.B, perOp int, op func(client, i int) error) {
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == 0 {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(c, i); err != nil {
					once.Do(func() { first = err })
					failed.Add(1)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("a request failed: %v", first)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if perOp > 1 {
		b.ReportMetric(float64(b.N*perOp)/elapsed.Seconds(), "cmds/s")
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func wantOK(c *redis.StatusCmd) error {
	s, err := c.Result()
	if err == nil && s != "OK" {
		err = fmt.Errorf("%s replied %q", c.Name(), s)
	}
	return err
}

// loadKeys writes keys with val, 64 to a pipeline.
func loadKeys(b *testing.B, rdb *redis.Client, keys []string, val string) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < len(keys); start += 64 {
		p := rdb.Pipeline()
		for _, k := range keys[start:min(start+64, len(keys))] {
			p.Set(ctx, k, val, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatalf("loading keys: %v", err)
		}
	}
}

// pinLeaders moves partition p's leadership to node p%3+1 and waits until
// every node knows it, so runs are comparable: elections would otherwise
// leave a different share of the partitions on the node the clients
// reach, and balancing would move leaders while the clock runs. Balancing
// must be off (LeaderBalanceInterval < 0).
func pinLeaders(b *testing.B, tc *testCluster) {
	b.Helper()
	parts := uint64(tc.cfgs[0].Partitions)
	want := func(g uint64) uint64 { return tc.nodes[g%uint64(len(tc.nodes))].cfg.NodeID }
	byID := map[uint64]*Node{}
	for _, n := range tc.nodes {
		byID[n.cfg.NodeID] = n
	}
	waitFor(b, "leadership pinned round-robin", 30*time.Second, func() bool {
		pinned := true
		for g := range parts {
			for _, n := range tc.nodes {
				if n.router.LeaderOf(g) == want(g) {
					continue
				}
				pinned = false
				// Ask whoever leads now to hand over; asking again while
				// a transfer is under way is harmless.
				if cur := byID[n.eng.Leader(g)]; cur != nil && cur.eng.Leader(g) == cur.cfg.NodeID {
					cur.eng.TransferGroupLeader(g, want(g))
				}
			}
		}
		return pinned
	})
}
