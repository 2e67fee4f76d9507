package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCrossPartitionMovesAreAtomic: SMOVE, LMOVE and RENAME between keys
// of different partitions run as transactions. Movers shuffle members and
// elements between two partitions while an auditor reads both sides in
// one MULTI/EXEC: the totals never change, nothing is lost or doubled,
// and a renamed key keeps its value and its expiry.
func TestCrossPartitionMovesAreAtomic(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := c.Nodes()
	cl := client(nodes[0].RESPAddr)
	defer cl.Close()
	a, b := tagFor(1)+"set", tagFor(2)+"set"
	la, lb := tagFor(3)+"list", tagFor(4)+"list"
	const members = 40
	for i := 0; i < members; i++ {
		cl.SAdd(ctx, a, fmt.Sprint("m", i))
		cl.RPush(ctx, la, fmt.Sprint("e", i))
	}

	var moves atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fail := make(chan error, 16)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mc := client(nodes[w%3].RESPAddr)
			defer mc.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := fmt.Sprint("m", (i*7+w)%members)
				src, dst := a, b
				if i%2 == 1 {
					src, dst = b, a
				}
				if err := mc.SMove(ctx, src, dst, m).Err(); err != nil {
					fail <- fmt.Errorf("SMOVE: %w", err)
					return
				}
				ls, ld := la, lb
				if i%2 == 1 {
					ls, ld = lb, la
				}
				if err := mc.LMove(ctx, ls, ld, "LEFT", "RIGHT").Err(); err != nil && !errors.Is(err, redis.Nil) {
					fail <- fmt.Errorf("LMOVE: %w", err)
					return
				}
				moves.Add(2)
			}
		}()
	}
	deadline := time.Now().Add(8 * time.Second)
	audits := 0
	for time.Now().Before(deadline) {
		cmds, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SCard(ctx, a)
			p.SCard(ctx, b)
			p.LLen(ctx, la)
			p.LLen(ctx, lb)
			return nil
		})
		if err != nil {
			t.Fatalf("audit: %v", err)
		}
		sets := cmds[0].(*redis.IntCmd).Val() + cmds[1].(*redis.IntCmd).Val()
		lists := cmds[2].(*redis.IntCmd).Val() + cmds[3].(*redis.IntCmd).Val()
		if sets != members || lists != members {
			t.Fatalf("audit %d saw %d set members and %d list elements, want %d of each", audits, sets, lists, members)
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
	if moves.Load() == 0 || audits == 0 {
		t.Fatalf("%d moves, %d audits: the test did not run", moves.Load(), audits)
	}
	t.Logf("%d moves, %d audits", moves.Load(), audits)

	// RENAME across partitions keeps the value and the expiry.
	src, dst := tagFor(5)+"k", tagFor(6)+"k"
	cl.HSet(ctx, src, "f", "v", "g", "w")
	cl.PExpire(ctx, src, time.Hour)
	if err := cl.Rename(ctx, src, dst).Err(); err != nil {
		t.Fatal(err)
	}
	if n := cl.Exists(ctx, src).Val(); n != 0 {
		t.Fatalf("the source still exists after RENAME")
	}
	if got := cl.HGetAll(ctx, dst).Val(); len(got) != 2 || got["f"] != "v" {
		t.Fatalf("renamed hash %v", got)
	}
	if ttl := cl.PTTL(ctx, dst).Val(); ttl < 59*time.Minute {
		t.Fatalf("renamed key's TTL %v, want about an hour", ttl)
	}
	// A STORE over sources of other partitions.
	z1, z2, z3 := tagFor(7)+"z", tagFor(8)+"z", tagFor(9)+"z"
	cl.ZAdd(ctx, z1, redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"})
	cl.ZAdd(ctx, z2, redis.Z{Score: 3, Member: "b"})
	if n, err := cl.ZUnionStore(ctx, z3, &redis.ZStore{Keys: []string{z1, z2}}).Result(); err != nil || n != 2 {
		t.Fatalf("ZUNIONSTORE: %d, %v", n, err)
	}
	if got := cl.ZRangeWithScores(ctx, z3, 0, -1).Val(); len(got) != 2 || got[1].Score != 5 {
		t.Fatalf("ZUNIONSTORE result %v", got)
	}
	if keys := cl.Keys(ctx, "*kintsu.tmp*").Val(); len(keys) != 0 {
		t.Fatalf("temporary keys left: %q", keys)
	}
}
