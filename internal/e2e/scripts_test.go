package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// transferScript moves one unit between two accounts, whichever way keeps both
// non-negative, and counts the move: three keys read and written at once.
var transferScript = redis.NewScript(`
local a = tonumber(redis.call('get', KEYS[1]))
local b = tonumber(redis.call('get', KEYS[2]))
if a > 0 then a, b = a - 1, b + 1 else a, b = a + 1, b - 1 end
redis.call('set', KEYS[1], a)
redis.call('set', KEYS[2], b)
return redis.call('incr', KEYS[3])`)

// auditScript reads both accounts in one read-only script.
var auditScript = redis.NewScript(`return tonumber(redis.call('get', KEYS[1])) + tonumber(redis.call('get', KEYS[2]))`)

// TestScriptsStayAtomicThroughFailover runs transfers as scripts from
// several clients while leaders move and the scripts' leader is killed
// -9 and restarted: the accounts' total never changes, in any read or at
// the end, and the count of moves is at least the acknowledged ones and
// at most those plus the ones whose outcome was unknown.
func TestScriptsStayAtomicThroughFailover(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keys := []string{"{acct}a", "{acct}b", "{acct}n"}
	const total = 1000
	setup := client(c.Nodes()[0].RESPAddr)
	defer setup.Close()
	if err := setup.MSet(ctx, keys[0], total, keys[1], 0, keys[2], 0).Err(); err != nil {
		t.Fatal(err)
	}
	group := ring.PartitionOf(ring.Slot([]byte(keys[0])), len(status(t, c.Nodes()[0].HTTPAddr).Partitions))
	var victim uint64
	for _, p := range status(t, c.Nodes()[0].HTTPAddr).Partitions {
		if p.ID == group {
			victim = p.Leader
		}
	}
	var clients []*redis.Client
	for _, nd := range c.Nodes() {
		if nd.ID != victim {
			clients = append(clients, redis.NewClient(&redis.Options{Addr: nd.RESPAddr, ReadTimeout: 8 * time.Second, MaxRetries: -1}))
		}
	}
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()

	var acked, unknown, audits atomic.Int64
	var mu sync.Mutex
	var broken []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		cl := clients[w%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%4 == 3 {
					sum, err := auditScript.EvalRO(ctx, cl, keys[:2]).Int()
					if err == nil && sum != total {
						mu.Lock()
						broken = append(broken, fmt.Sprintf("an audit saw %d", sum))
						mu.Unlock()
					}
					if err == nil {
						audits.Add(1)
					}
					continue
				}
				if err := transferScript.Run(ctx, cl, keys).Err(); err != nil {
					unknown.Add(1)
				} else {
					acked.Add(1)
				}
			}
		}()
	}
	progress := func(n int64) func() bool { return func() bool { return acked.Load() >= n } }
	waitFor(t, "transfers under way", time.Minute, progress(50))
	moveLeaders(t, c)
	waitFor(t, "transfers after the leaders moved", time.Minute, progress(150))
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	before := acked.Load()
	waitFor(t, "transfers after the kill", time.Minute, progress(before+100))
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
	before = acked.Load()
	waitFor(t, "transfers after the restart", time.Minute, progress(before+100))
	close(stop)
	wg.Wait()

	if len(broken) > 0 {
		t.Fatalf("scripts were not atomic: %v", broken)
	}
	vals, err := clients[0].MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	var a, b, n int64
	fmt.Sscan(vals[0].(string), &a)
	fmt.Sscan(vals[1].(string), &b)
	fmt.Sscan(vals[2].(string), &n)
	if a+b != total || a < 0 || b < 0 {
		t.Fatalf("accounts %d + %d, want a total of %d", a, b, total)
	}
	if n < acked.Load() || n > acked.Load()+unknown.Load() {
		t.Fatalf("%d moves counted; %d acknowledged, %d unknown", n, acked.Load(), unknown.Load())
	}
	t.Logf("%d transfers acknowledged, %d unknown, %d counted, %d audits", acked.Load(), unknown.Load(), n, audits.Load())
}

// TestScriptCacheIsTheClusters: a script loaded through one node runs by
// its SHA-1 through any other (a cluster client loads it on the nodes it
// believes primaries, which leadership moves may change), and SCRIPT
// FLUSH empties every node's cache.
func TestScriptCacheIsTheClusters(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cls []*redis.Client
	for _, nd := range c.Nodes() {
		cl := client(nd.RESPAddr)
		defer cl.Close()
		cls = append(cls, cl)
	}
	sha, err := cls[0].ScriptLoad(ctx, "return ARGV[1]").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cls[1].EvalSha(ctx, sha, nil, "x").Result(); err != nil || got != "x" {
		t.Fatalf("EVALSHA through another node: %v, %v", got, err)
	}
	if ex, err := cls[2].ScriptExists(ctx, sha).Result(); err != nil || !ex[0] {
		t.Fatalf("SCRIPT EXISTS through a third node: %v, %v", ex, err)
	}
	if err := cls[2].ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, cl := range cls {
		if err := cl.EvalSha(ctx, sha, nil, "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Fatalf("EVALSHA through node %d after SCRIPT FLUSH: %v", i, err)
		}
	}
}
