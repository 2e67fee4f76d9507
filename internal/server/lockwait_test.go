package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// Clients write the same keys of four partitions with MSET at once, so
// nearly every PREPARE meets another transaction's lock. The younger
// ones wait on the partitions' leaders for the older ones (route's lock
// waits) instead of letting go and retrying blind: the leaders grant
// waits, no MSET fails, and each one is atomic: the four keys end with
// one writer's values.
func TestContendedMSETWaitsOnTheLeader(t *testing.T) {
	tc := startCluster(t, 3, nil)
	keys := ring.SpreadKeys("hot:", 4, 8)
	const clients, each = 8, 4
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(c % len(tc.nodes)), ReadTimeout: 10 * time.Second})
			defer rdb.Close()
			for n := range each {
				var args []any
				for _, k := range keys {
					args = append(args, k, fmt.Sprintf("%d-%d", c, n))
				}
				if err := rdb.MSet(ctx, args...).Err(); err != nil {
					errs <- fmt.Errorf("client %d, MSET %d: %w", c, n, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer rdb.Close()
	vals, err := rdb.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		if v != vals[0] {
			t.Fatalf("MSETs interleaved: the keys hold %v", vals)
		}
	}
	granted := 0.0
	for _, n := range tc.nodes {
		var m dto.Metric
		if err := n.metrics.LockWaits.WithLabelValues("granted").Write(&m); err != nil {
			t.Fatal(err)
		}
		granted += m.GetCounter().GetValue()
	}
	if granted == 0 {
		t.Fatal("no PREPARE waited on a leader for a lock")
	}
	t.Logf("%v waits granted", granted)
}
