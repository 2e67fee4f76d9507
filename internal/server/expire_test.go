package server

import (
	"context"
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer rdb.Close()
	if err := rdb.Set(ctx, "long", "stays", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, "long").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL long = %v", ttl)
	}
	const n = 40
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			p.Set(ctx, fmt.Sprint("short", i), i, 2*time.Second)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The last short key was written just now, 2 s before its time: it is
	// stored, so DBSIZE counts it (and "long").
	if v, err := rdb.Get(ctx, fmt.Sprint("short", n-1)).Result(); err != nil || v != fmt.Sprint(n-1) {
		t.Fatalf("GET short%d = %q, %v", n-1, v, err)
	}
	if got := rdb.DBSize(ctx).Val(); got < 2 {
		t.Fatalf("DBSIZE = %d with unexpired keys stored", got)
	}
	other := redis.NewClient(&redis.Options{Addr: tc.respAddr(2)})
	defer other.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		size := other.DBSize(ctx).Val()
		gone := other.Exists(ctx, "short0", "short17", fmt.Sprint("short", n-1)).Val() == 0
		if size == 1 && gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s later: DBSIZE %d, expired keys still visible: %v", size, !gone)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	if v, err := other.Get(ctx, "long").Result(); err != nil || v != "stays" {
		t.Fatalf("GET long = %q, %v", v, err)
	}
}
