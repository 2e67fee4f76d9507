package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDataTypesWhileLeadersMove: go-redis's ClusterClient drives a
// leaderboard (ZINCRBY), job queues (RPUSH, then LPOP by a consumer),
// hash counters (HINCRBY) and tag sets (SADD) over keys in every
// partition while every node hands its leaderships away. No request may
// fail, and afterwards every structure holds exactly what was
// acknowledged: each score and counter equals its increments, each queue
// gave its jobs in push order, once each.
func TestDataTypesWhileLeadersMove(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Nodes()[0].RESPAddr}, ReadTimeout: 6 * time.Second})
	defer cc.Close()

	const workers = 4
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	pushed := make([]int, workers) // jobs pushed by worker w: 0..pushed[w]-1
	popped := make([][]string, workers)
	incrs := make([]int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s worker %d: %w", time.Now().Format("15:04:05.000"), w, err))
				mu.Unlock()
			}
			q, h, board := fmt.Sprint("tq:", w), fmt.Sprint("th:", w), "tboard"
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := cc.RPush(ctx, q, i).Err(); err != nil {
					fail(err)
					return // the queue's content is no longer known
				}
				mu.Lock()
				pushed[w] = i + 1
				mu.Unlock()
				if err := cc.HIncrBy(ctx, h, "n", 1).Err(); err != nil {
					fail(err)
					return
				}
				if err := cc.ZIncrBy(ctx, board, 1, fmt.Sprint("w", w)).Err(); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				incrs[w] = i + 1
				mu.Unlock()
				if err := cc.SAdd(ctx, fmt.Sprint("ttags:", i%20), w).Err(); err != nil {
					fail(err)
				}
				if i%3 == 0 {
					v, err := cc.LPop(ctx, q).Result()
					if err != nil {
						fail(err)
						return
					}
					popped[w] = append(popped[w], v)
				}
			}
		}()
	}
	// Under way before the moves, and after them: each worker's progress
	// is polled, so the moves fall inside the load on any machine.
	progress := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for w := 0; w < workers; w++ {
				if incrs[w] < n && len(errs) == 0 {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "every worker under way", time.Minute, progress(20))
	moveLeaders(t, c)
	waitFor(t, "every worker on after the first moves", time.Minute, progress(60))
	moveLeaders(t, c)
	waitFor(t, "every worker on after the second moves", time.Minute, progress(100))
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d requests failed while leaders moved; first: %v", len(errs), errs[0])
	}
	for w := 0; w < workers; w++ {
		rest, err := cc.LRange(ctx, fmt.Sprint("tq:", w), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		all := append(append([]string(nil), popped[w]...), rest...)
		if len(all) != pushed[w] {
			t.Fatalf("worker %d pushed %d jobs; %d popped + %d left", w, pushed[w], len(popped[w]), len(rest))
		}
		for i, v := range all {
			if v != fmt.Sprint(i) {
				t.Fatalf("worker %d's queue gave job %s at position %d", w, v, i)
			}
		}
		if n, err := cc.HGet(ctx, fmt.Sprint("th:", w), "n").Int(); err != nil || n != incrs[w] {
			t.Fatalf("worker %d's hash counter %d, %v; want %d", w, n, err, incrs[w])
		}
		if s, err := cc.ZScore(ctx, "tboard", fmt.Sprint("w", w)).Result(); err != nil || int(s) != incrs[w] {
			t.Fatalf("worker %d's score %v, %v; want %d", w, s, err, incrs[w])
		}
	}
	t.Logf("%d jobs pushed, leaderboard %v", pushed, incrs)
}
