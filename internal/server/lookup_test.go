package server

import (
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/ring"
)

// TestCommandLookedUpOncePerLayer: decode once. A SET is looked up by name
// twice in all, once at the edge and once when its entry is applied; a GET
// once at the edge and once where it is served; a cross-partition MSET once
// at the edge and once per share when its PREPARE is applied.
func TestCommandLookedUpOncePerLayer(t *testing.T) {
	tc := startCluster(t, 1, func(c *Config) { c.Replicas = 1; c.Partitions = 4 })
	ctx := ctx5(t)
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: 1})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	stop := command.OnLookup(func(name []byte) {
		mu.Lock()
		counts[strings.ToLower(string(name))]++
		mu.Unlock()
	})
	defer stop()
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		n := counts[name]
		counts[name] = 0
		return n
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := count("set"); n != 2 {
		t.Errorf("one SET was looked up %d times, want 2 (edge, apply)", n)
	}
	if err := rdb.Get(ctx, "k").Err(); err != nil {
		t.Fatal(err)
	}
	if n := count("get"); n != 2 {
		t.Errorf("one GET was looked up %d times, want 2 (edge, read)", n)
	}
	keys := ring.SpreadKeys("lk", 3, 4)
	if err := rdb.MSet(ctx, keys[0], "1", keys[1], "2", keys[2], "3").Err(); err != nil {
		t.Fatal(err)
	}
	if n := count("mset"); n != 1+3 {
		t.Errorf("one MSET over 3 partitions was looked up %d times, want 4 (edge, each share's PREPARE)", n)
	}
}
