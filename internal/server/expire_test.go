package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys with an expiry disappear for every node's clients once their time
// has come, and the leaders' expiry sweep removes them from storage
// (DBSIZE counts stored keys) without anyone reading them again.
func TestKeysExpireAndAreSwept(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer rdb.Close()
	const n = 40
	for i := range n {
		if err := rdb.Set(ctx, fmt.Sprint("short", i), i, 300*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Set(ctx, "long", "stays", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got := rdb.DBSize(ctx).Val(); got != n+1 {
		t.Fatalf("DBSIZE = %d right after the writes, want %d", got, n+1)
	}
	if ttl := rdb.PTTL(ctx, "short0").Val(); ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("PTTL short0 = %v", ttl)
	}
	other := redis.NewClient(&redis.Options{Addr: tc.respAddr(2)})
	defer other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		size := other.DBSize(ctx).Val()
		gone := other.Exists(ctx, "short0", "short17", "short39").Val() == 0
		if size == 1 && gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s later: DBSIZE %d, expired keys still visible: %v", size, !gone)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	if v, err := other.Get(ctx, "long").Result(); err != nil || v != "stays" {
		t.Fatalf("GET long = %q, %v", v, err)
	}
}
