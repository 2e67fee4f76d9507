package server

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// BenchmarkTransactions measures MULTI/EXEC within one partition (1PC)
// against MULTI/EXEC over three partitions (2PC), and MSET of 10 keys in
// one partition against 10 keys spread over partitions, on an in-process
// 3-node cluster on loopback with 16 concurrent clients. Each reports
// ops/s and latency percentiles; compare the sub-benchmarks of one run.
//
//	go test ./internal/server -run '^$' -bench Transactions -benchtime 3000x
func BenchmarkTransactions(b *testing.B) {
	tc := startCluster(b, 3, nil)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: 32})
	defer rdb.Close()
	// 16 groups of 10 keys, one group per client on average: a group's
	// keys span all 8 partitions (cross) or share one (same), so the
	// figures show the protocols' cost more than contention.
	var cross []string
	for g := 0; g < 16; g++ { // each group's first 8 keys in 8 partitions
		cross = append(cross, ring.SpreadKeys(fmt.Sprintf("x%d-", g), 10, 8)...)
	}
	same := make([]string, 160)
	for i := range same {
		same[i] = fmt.Sprintf("{same%d}%d", i/10, i)
	}
	for _, ks := range [][]string{cross, same} {
		for _, k := range ks {
			if err := rdb.Set(ctx, k, 0, 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	group := func(ks []string, i int64) []string { return ks[10*(i%16) : 10*(i%16)+10] }
	exec := func(keys []string) func(i int64) error {
		return func(i int64) error {
			_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				g := group(keys, i)
				p.DecrBy(ctx, g[0], 1)
				p.IncrBy(ctx, g[1], 1)
				p.Get(ctx, g[2])
				return nil
			})
			return err
		}
	}
	mset := func(keys []string) func(i int64) error {
		return func(i int64) error {
			args := make([]any, 0, 20)
			for _, k := range group(keys, i) {
				args = append(args, k, i)
			}
			return rdb.MSet(ctx, args...).Err()
		}
	}
	cases := []struct {
		name string
		op   func(i int64) error
	}{
		{"exec-1-partition", exec(same)},
		{"exec-3-partitions", exec(cross)},
		{"mset-10-keys-1-partition", mset(same)},
		{"mset-10-keys-cross-partition", mset(cross)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var next, failed atomic.Int64
			lat := make([]time.Duration, b.N)
			b.SetParallelism(8) // 16 clients on 2 cores
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					t0 := time.Now()
					if err := c.op(i); err != nil {
						failed.Add(1)
					}
					lat[i] = time.Since(t0)
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(failed.Load()), "failed")
		})
	}
}
