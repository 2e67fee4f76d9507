package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// xTransfer moves 1 from KEYS[1] to KEYS[2] and lists the move in
// KEYS[3], a list, and counts it in KEYS[4], a hash: four keys, four
// partitions.
const xTransfer = `
local a = tonumber(redis.call('get', KEYS[1]) or '0')
local b = tonumber(redis.call('get', KEYS[2]) or '0')
redis.call('set', KEYS[1], a - 1)
redis.call('set', KEYS[2], b + 1)
redis.call('rpush', KEYS[3], ARGV[1])
redis.call('hincrby', KEYS[4], 'moves', 1)
return {a, b}`

// xAudit reads the four keys in one script: a consistent view has the
// two balances summing to zero and as many list entries as counted moves.
const xAudit = `
local a = tonumber(redis.call('get', KEYS[1]) or '0')
local b = tonumber(redis.call('get', KEYS[2]) or '0')
local n = redis.call('llen', KEYS[3])
local m = tonumber(redis.call('hget', KEYS[4], 'moves') or '0')
return {a + b, n, m}`

// TestCrossPartitionScriptsAreAtomic: a script whose declared keys live in
// four partitions runs atomically. Writers run transfers through every
// node while an auditor reads the same keys in a read-only script: every
// audit sees the balances summing to zero and the list as long as the
// move count, and at the end every acknowledged transfer is there exactly
// once, and none that was refused (TRYAGAIN: the other writers starved
// it past the request's deadline). Then Redis's script semantics hold
// across partitions: an undeclared key is refused, writes before an error
// are kept, expiry travels with the value, and FCALL works the same way.
func TestCrossPartitionScriptsAreAtomic(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := c.Nodes()
	cl := client(nodes[0].RESPAddr)
	defer cl.Close()
	keys := []string{tagFor(1) + "a", tagFor(2) + "b", tagFor(3) + "log", tagFor(4) + "count"}

	var acked atomic.Int64
	var mu sync.Mutex
	refused := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fail := make(chan error, 8)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc := client(nodes[w].RESPAddr)
			defer wc.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint(w, "-", i)
				err := wc.Eval(ctx, xTransfer, keys, id).Err()
				switch {
				case err == nil:
					acked.Add(1)
				case strings.HasPrefix(err.Error(), "TRYAGAIN"):
					// Starved by the other writers until the request's
					// deadline: refused, so it must not be applied.
					mu.Lock()
					refused[id] = true
					mu.Unlock()
				default:
					fail <- fmt.Errorf("transfer through node %d: %w", w, err)
					return
				}
			}
		}()
	}
	ro := client(nodes[1].RESPAddr)
	defer ro.Close()
	deadline := time.Now().Add(6 * time.Second)
	audits := 0
	for time.Now().Before(deadline) {
		v, err := ro.EvalRO(ctx, xAudit, keys).Int64Slice()
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		if v[0] != 0 || v[1] != v[2] {
			t.Fatalf("audit %d saw a sum of %d and %d entries for %d moves: not one moment", audits, v[0], v[1], v[2])
		}
		audits++
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-fail:
		t.Fatal(err)
	default:
	}
	n := acked.Load()
	if n == 0 || audits == 0 {
		t.Fatalf("%d transfers, %d audits: the test did not run", n, audits)
	}
	if b, _ := cl.Get(ctx, keys[1]).Int64(); b != n {
		t.Fatalf("balance %d after %d acknowledged transfers", b, n)
	}
	entries := cl.LRange(ctx, keys[2], 0, -1).Val()
	seen := map[string]bool{}
	for _, e := range entries {
		switch {
		case seen[e]:
			t.Fatalf("transfer %s applied twice", e)
		case refused[e]:
			t.Fatalf("transfer %s was refused, yet applied", e)
		}
		seen[e] = true
	}
	if int64(len(entries)) != n {
		t.Fatalf("%d entries for %d acknowledged transfers", len(entries), n)
	}
	t.Logf("%d transfers, %d refused (TRYAGAIN), %d audits", n, len(refused), audits)

	// A key it did not declare is refused, as in Redis Cluster.
	x, y := tagFor(5)+"x", tagFor(6)+"y"
	err := cl.Eval(ctx, "return redis.call('get', 'undeclared')", []string{x, y}).Err()
	if err == nil || !strings.Contains(err.Error(), "non local key") {
		t.Fatalf("undeclared key: %v", err)
	}
	// Writes before an error stay, as in Redis; a run stopped by its
	// limits changes nothing.
	cl.Set(ctx, y, "text", 0)
	err = cl.Eval(ctx, "redis.call('set', KEYS[1], 'kept'); return redis.call('incr', KEYS[2])", []string{x, y}).Err()
	if err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Fatalf("INCR of text: %v", err)
	}
	if got := cl.Get(ctx, x).Val(); got != "kept" {
		t.Fatalf("a write before the error: %q", got)
	}
	// Expiry travels with a value the script writes, and with one it
	// only moves.
	cl.Set(ctx, x, "v", time.Hour)
	err = cl.Eval(ctx, `
redis.call('set', KEYS[2], redis.call('get', KEYS[1]))
redis.call('pexpire', KEYS[2], redis.call('pttl', KEYS[1]))
redis.call('append', KEYS[1], '+')
return 1`, []string{x, y}).Err()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{x, y} {
		if ttl := cl.PTTL(ctx, k).Val(); ttl < 59*time.Minute {
			t.Fatalf("%s's TTL %v after the script, want about an hour", k, ttl)
		}
	}
	if got := cl.Get(ctx, x).Val(); got != "v+" {
		t.Fatalf("APPEND through the script: %q", got)
	}
	// A key the script deletes is deleted in its partition.
	if err := cl.Eval(ctx, "return redis.call('del', KEYS[1], KEYS[2])", []string{x, y}).Err(); err != nil {
		t.Fatal(err)
	}
	if n := cl.Exists(ctx, x, y).Val(); n != 0 {
		t.Fatalf("%d keys left after DEL", n)
	}
	// FCALL, and EVAL_RO refusing a write.
	lib := "#!lua name=xlib\nredis.register_function('swap', function(keys) local a = redis.call('get', keys[1]); redis.call('set', keys[1], redis.call('get', keys[2])); redis.call('set', keys[2], a); return 'swapped' end)"
	if err := cl.FunctionLoadReplace(ctx, lib).Err(); err != nil {
		t.Fatal(err)
	}
	cl.Set(ctx, x, "1", 0)
	cl.Set(ctx, y, "2", 0)
	if got, err := cl.FCall(ctx, "swap", []string{x, y}).Text(); err != nil || got != "swapped" {
		t.Fatalf("FCALL: %q %v", got, err)
	}
	if a, b := cl.Get(ctx, x).Val(), cl.Get(ctx, y).Val(); a != "2" || b != "1" {
		t.Fatalf("after the swap: %s %s", a, b)
	}
	err = cl.EvalRO(ctx, "return redis.call('set', KEYS[1], 'no')", []string{x, y}).Err()
	if err == nil || !strings.Contains(err.Error(), "Write commands are not allowed from read-only scripts") {
		t.Fatalf("EVAL_RO write: %v", err)
	}
	if got := cl.Get(ctx, x).Val(); got != "2" {
		t.Fatalf("EVAL_RO changed the key: %q", got)
	}
}
