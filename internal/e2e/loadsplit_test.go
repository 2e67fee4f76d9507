package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/ring"
)

// TestLoadSplitRaisesThroughput is issue 20's second acceptance item,
// behind -split.acceptance: writers hammer one range of slots (1000 to
// 1999, inside the first of two partitions) of a 3-node cluster started
// with --split-load; the partition splits at the median slot of its
// writes, the two halves end up led from two nodes, and the range's
// write throughput after the split is compared with before it, in one
// run. The figures go to docs/benchmarks.md.
func TestLoadSplitRaisesThroughput(t *testing.T) {
	if !*splitAcceptance {
		t.Skip("a minute of load: run with -split.acceptance (go test ./internal/e2e -run TestLoadSplitRaisesThroughput -split.acceptance)")
	}
	// Each node gets its own CPU budget, as a host of its own would: on
	// one machine the nodes otherwise share every core, and a second
	// leader has no spare CPU to use.
	wrap, cpuStats := cpuBudgets(t, 3, 0.4)
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{Binary: binary, Nodes: 3, Dir: dir, BasePort: base, Partitions: 2, Replicas: 3, Wrap: wrap,
			ExtraArgs: []string{"--split-load", "500", "--heartbeat-interval", "2s"}}
	})
	t.Cleanup(func() { _ = c.StopAll(15 * time.Second) })
	var addrs []string
	for _, nd := range c.Nodes() {
		addrs = append(addrs, nd.RESPAddr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 512})
	defer cc.Close()
	var hot []string
	for i := 0; len(hot) < 2000; i++ {
		k := fmt.Sprint("hot:", i)
		if s := ring.Slot([]byte(k)); s >= 1000 && s < 2000 {
			hot = append(hot, k)
		}
	}

	// Writers, and a count of acknowledged writes per 100 ms.
	workers := 192
	if n, err := strconv.Atoi(os.Getenv("KINTSU_LOADSPLIT_WRITERS")); err == nil && n > 0 {
		workers = n
	}
	var (
		acked  atomic.Int64
		failed atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += workers {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cc.Set(ctx, hot[i%len(hot)], i, 0).Err()
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					acked.Add(1)
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	rate := func(d time.Duration) float64 {
		a := acked.Load()
		t0 := time.Now()
		time.Sleep(d) // a measurement window, not synchronization
		return float64(acked.Load()-a) / time.Since(t0).Seconds()
	}
	rate(2 * time.Second) // warm-up
	before := rate(4 * time.Second)
	split := func() (int, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		slots, err := cc.ClusterSlots(ctx).Result()
		if err != nil {
			return 0, false
		}
		var masters []string
		for _, s := range slots {
			if s.Start <= 1999 && s.End >= 1000 && len(s.Nodes) > 0 {
				masters = append(masters, s.Nodes[0].Addr)
			}
		}
		return len(slots), len(masters) == 2 && masters[0] != masters[1]
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, spread := split(); spread {
			break
		}
		if time.Now().After(deadline) {
			n, _ := split()
			t.Fatalf("the hot range was not split over two leaders within a minute (%d slot ranges)", n)
		}
		rate(500 * time.Millisecond)
	}
	rate(3 * time.Second) // the new leader settles, the clients' maps refresh
	after := rate(10 * time.Second)
	n, _ := split()
	for id, p := range cpuStats {
		if b, err := os.ReadFile(p); err == nil {
			t.Logf("node %d cpu.stat: %s", id, strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ", "))
		}
	}
	t.Logf("hot range (slots 1000-1999), %d writers, nodes of 0.4 CPU each: %.0f writes/s before the split, %.0f after (%.2f×); %d slot ranges; %d writes failed", workers, before, after, after/before, n, failed.Load())
	if f := failed.Load(); f > 0 {
		t.Errorf("%d writes failed", f)
	}
	if after <= before {
		t.Errorf("the hot range's throughput did not rise: %.0f/s before, %.0f/s after", before, after)
	}
}

// cpuBudgets gives each of n nodes a CPU budget of its own (cpus cores,
// a cgroup's CFS quota) and returns the launcher's Wrap that starts node
// id inside its budget, and each node's cgroup CPU statistics file. It
// skips the test where cgroups cannot be made
// (not root, or no cpu controller).
func cpuBudgets(t *testing.T, n int, cpus float64) (wrap func(id uint64) []string, stats map[uint64]string) {
	t.Helper()
	root := ""
	for _, dir := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			root = dir
			break
		}
	}
	if root == "" || os.Geteuid() != 0 {
		t.Skip("needs root and a cgroup cpu controller, to give each node its own CPU budget")
	}
	paths, stats := map[uint64]string{}, map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		dir := filepath.Join(root, fmt.Sprintf("kintsu-e2e-%d-%d", os.Getpid(), id))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("needs a writable cgroup: %v", err)
		}
		t.Cleanup(func() { _ = os.Remove(dir) }) // after the cluster stops: cleanups run last first
		quota := int(cpus * 100000)
		var err error
		if root == "/sys/fs/cgroup" { // cgroup v2
			err = os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d 100000", quota), 0o644)
		} else {
			err = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), fmt.Append(nil, quota), 0o644)
		}
		if err != nil {
			t.Skipf("needs a cgroup CPU quota: %v", err)
		}
		paths[id] = filepath.Join(dir, "cgroup.procs")
		stats[id] = filepath.Join(dir, "cpu.stat")
	}
	return func(id uint64) []string {
		return []string{"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, paths[id]}
	}, stats
}
