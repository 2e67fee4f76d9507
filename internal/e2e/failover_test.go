package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/launcher"
)

// writers writes unique keys to every partition from clients on the
// given nodes and remembers what was acknowledged and when.
type writers struct {
	mu    sync.Mutex
	acked map[string]string   // guarded by mu
	okAt  map[int][]time.Time // guarded by mu; per partition, success times
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startWriters(c *launcher.Cluster, nodes []uint64) *writers {
	w := &writers{acked: map[string]string{}, okAt: map[int][]time.Time{}, stop: make(chan struct{})}
	for p := 0; p < partitions; p++ {
		tag := tagFor(p)
		cl := client(c.Node(nodes[p%len(nodes)]).RESPAddr)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cl.Close()
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				key, val := fmt.Sprintf("%s:%d", tag, i), fmt.Sprint(i)
				ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
				err := cl.Set(ctx, key, val, 0).Err()
				cancel()
				if err != nil {
					// Not acknowledged (it may still have applied: that is
					// allowed). Back off a little so a dead node is not hammered.
					select {
					case <-w.stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				w.mu.Lock()
				w.acked[key] = val
				w.okAt[p] = append(w.okAt[p], time.Now())
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *writers) halt() {
	close(w.stop)
	w.wg.Wait()
}

// waitAcked waits until at least n more writes were acknowledged.
func (w *writers) waitAcked(t *testing.T, n int) {
	t.Helper()
	w.mu.Lock()
	target := len(w.acked) + n
	w.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		got := len(w.acked)
		w.mu.Unlock()
		if got >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes acknowledged in 30s", got, target)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recovery returns, per partition, the time from since to its first
// acknowledged write after since (or -1 if none).
func (w *writers) recovery(since time.Time) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Duration, partitions)
	for p := range out {
		out[p] = -1
		for _, at := range w.okAt[p] {
			if at.After(since) {
				out[p] = at.Sub(since)
				break
			}
		}
	}
	return out
}

// verifyAcked reads every acknowledged key through every running node.
func verifyAcked(t *testing.T, c *launcher.Cluster, w *writers) {
	t.Helper()
	for _, nd := range c.Nodes() {
		if !c.Running(nd.ID) {
			continue
		}
		cl := client(nd.RESPAddr)
		missing := 0
		for key, val := range w.acked {
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			got, err := cl.Get(ctx, key).Result()
			cancel()
			if err != nil || got != val {
				missing++
				if missing <= 5 {
					t.Errorf("node %d: acknowledged %s=%s reads %q, %v", nd.ID, key, val, got, err)
				}
			}
		}
		cl.Close()
		if missing > 0 {
			t.Fatalf("node %d: %d of %d acknowledged writes missing", nd.ID, missing, len(w.acked))
		}
	}
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// TestKillLeaderUnderWrites kills -9 the node leading the most partitions
// while writes flow through the other nodes, measures how long each
// partition it led takes to accept writes again, restarts it, and checks
// that every acknowledged write is readable through every node.
func TestKillLeaderUnderWrites(t *testing.T) {
	c := startCluster(t, 3)
	victim, led := busiestLeader(t, c)
	st := status(t, c.Node(victim).HTTPAddr)
	var affected []int
	for _, p := range st.Partitions {
		if p.Leader == victim {
			affected = append(affected, p.ID)
		}
	}
	var others []uint64
	for _, nd := range c.Nodes() {
		if nd.ID != victim {
			others = append(others, nd.ID)
		}
	}
	w := startWriters(c, others)
	w.waitAcked(t, 200)
	killedAt := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until every partition took a write after the kill.
	deadline := time.Now().Add(15 * time.Second)
	for {
		rec := w.recovery(killedAt)
		if !slices.Contains(rec, -1) {
			break
		}
		if time.Now().After(deadline) {
			w.halt()
			t.Fatalf("partitions still unwritable 15s after the kill: %v", rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := w.recovery(killedAt)
	var ds []time.Duration
	for _, p := range affected {
		ds = append(ds, rec[p])
	}
	t.Logf("killed node %d (leader of %d partitions); writable again after: p50 %v, max %v (per partition %v)",
		victim, led, percentile(ds, 0.5), percentile(ds, 1), ds)
	if m := percentile(ds, 1); m > 5*time.Second {
		t.Errorf("a partition took %v to accept writes after its leader died", m)
	}
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 200)
	w.halt()
	waitReady(t, c)
	verifyAcked(t, c, w)
}

// TestKillAllDuringWrites is a power loss: every node is killed -9 at once
// while writes flow; after a restart every acknowledged write is there.
func TestKillAllDuringWrites(t *testing.T) {
	c := startCluster(t, 3)
	var all []uint64
	for _, nd := range c.Nodes() {
		all = append(all, nd.ID)
	}
	w := startWriters(c, all)
	w.waitAcked(t, 300)
	var wg sync.WaitGroup
	for _, id := range all {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Kill(id) }()
	}
	wg.Wait()
	w.halt()
	for _, id := range all {
		if err := c.Restart(id); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(t, c)
	t.Logf("%d acknowledged writes before the power loss", len(w.acked))
	verifyAcked(t, c, w)
}
