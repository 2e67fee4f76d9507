package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
)

// incrLoad is a steady load of INCRs from a few goroutines, counting
// requests and keeping every failure, for tests that claim zero failures.
type incrLoad struct {
	ops  atomic.Int64
	mu   sync.Mutex
	errs []error
	stop chan struct{}
	wg   sync.WaitGroup
}

// clusterClient is a go-redis ClusterClient seeded with every node.
func clusterClient(nodes []launcher.NodeInfo) *redis.ClusterClient {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.RESPAddr)
	}
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ReadTimeout: 6 * time.Second, DialTimeout: time.Second})
}

// startIncrLoad runs workers goroutines incrementing keys prefix-W-0..99.
func startIncrLoad(ctx context.Context, c redis.Cmdable, workers int, prefix string) *incrLoad {
	l := &incrLoad{stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				k := fmt.Sprint(prefix, "-", w, "-", i%100)
				if err := c.Incr(ctx, k).Err(); err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Errorf("%s INCR %s: %w", time.Now().Format("15:04:05.000"), k, err))
					l.mu.Unlock()
				}
				l.ops.Add(1)
			}
		}()
	}
	return l
}

// halt stops the load and returns how many requests ran and the first
// failures (nil if none).
func (l *incrLoad) halt() (int64, error) {
	close(l.stop)
	l.wg.Wait()
	if len(l.errs) == 0 {
		return l.ops.Load(), nil
	}
	return l.ops.Load(), fmt.Errorf("%d failed, first: %w", len(l.errs), errors.Join(l.errs[:min(5, len(l.errs))]...))
}
