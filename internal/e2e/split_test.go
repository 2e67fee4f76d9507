package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
)

var splitAcceptance = flag.Bool("split.acceptance", false, "run TestSplitsBySizeUnderLoad: about 300 MB into a 3-node cluster of 4 partitions splitting at 16 MiB (minutes)")

// TestSplitsBySizeUnderLoad is issue 20's first acceptance item, behind
// -split.acceptance: a 3-node cluster started with --partitions 4
// --split-size 16MiB takes about 300 MB of writes from go-redis
// ClusterClients and ends with at least 16 partitions, none over twice
// the split size, every acknowledged write readable, and no failed
// request.
func TestSplitsBySizeUnderLoad(t *testing.T) {
	if !*splitAcceptance {
		t.Skip("minutes of load: run with -split.acceptance (go test ./internal/e2e -run TestSplitsBySizeUnderLoad -split.acceptance -timeout 30m)")
	}
	const splitSize = 16 << 20
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{Binary: binary, Nodes: 3, Dir: dir, BasePort: base, Partitions: 4, Replicas: 3,
			ExtraArgs: []string{"--split-size", "16MiB"}}
	})
	t.Cleanup(func() { _ = c.StopAll(15 * time.Second) })
	var addrs []string
	for _, nd := range c.Nodes() {
		addrs = append(addrs, nd.RESPAddr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer cc.Close()

	const (
		workers   = 16
		valueSize = 4096
		total     = 300 << 20
		perWorker = total / valueSize / workers
	)
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		first  atomic.Pointer[error]
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			v := make([]byte, valueSize)
			for i := range perWorker {
				for j := range v {
					v[j] = byte(rng.Uint32())
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := cc.Set(ctx, fmt.Sprintf("w%d:%d", w, i), v, 0).Err()
				cancel()
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d MiB written in %v by %d workers", total>>20, time.Since(start).Round(time.Second), workers)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d writes failed, first: %v", n, *first.Load())
	}

	// The splits follow the data: wait for at least 16 partitions, none
	// over twice the split size by its leader's estimate.
	deadline := time.Now().Add(10 * time.Minute)
	var parts int
	var largest float64
	for {
		parts, largest = splitState(t, c)
		if parts >= 16 && largest <= 2*splitSize {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 minutes: %d partitions, the largest %.1f MiB", parts, largest/(1<<20))
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("%d partitions, the largest %.1f MiB", parts, largest/(1<<20))

	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 9))
		v := make([]byte, valueSize)
		for i := range perWorker {
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			got, err := cc.Get(ctx, fmt.Sprintf("w%d:%d", w, i)).Result()
			cancel()
			if err != nil || got != string(v) {
				t.Fatalf("w%d:%d after the splits: %d bytes, %v", w, i, len(got), err)
			}
		}
	}
}

// splitState is the number of partitions and the largest partition's
// data on disk, from the nodes' status and their leaders' metrics.
func splitState(t *testing.T, c *launcher.Cluster) (int, float64) {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second}
	var parts int
	largest := 0.0
	for _, nd := range c.Nodes() {
		resp, err := cl.Get("http://" + nd.HTTPAddr + "/v1/status")
		if err != nil {
			continue
		}
		var st api.StatusJSON
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		parts = max(parts, len(st.Partitions))
		resp, err = cl.Get("http://" + nd.HTTPAddr + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "kintsu_partition_disk_bytes{") {
				continue
			}
			if f := strings.Fields(line); len(f) == 2 {
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					largest = max(largest, v)
				}
			}
		}
		resp.Body.Close()
	}
	return parts, largest
}
