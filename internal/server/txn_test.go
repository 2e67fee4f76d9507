package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// TestGoRedisWatchExample runs go-redis's documented WATCH example
// (optimistic increment, 100 concurrent clients, retry on TxFailedErr),
// once on one key and once watching and writing two keys in different
// partitions, through every node. As against Redis, it ends with 100.
func TestGoRedisWatchExample(t *testing.T) {
	tc := startCluster(t, 3, nil)
	// 100 optimistic clients on one counter retry O(100²) times in all.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var clients []*redis.Client
	for i := range tc.nodes {
		// go-redis's default 3 s read timeout is below the node's own
		// request deadline (5 s), after which it answers with a clear
		// error: a contended EXEC on a loaded machine may take longer
		// than 3 s, and the client would give up before the node.
		c := redis.NewClient(&redis.Options{Addr: tc.respAddr(i), PoolSize: 40, ReadTimeout: 10 * time.Second})
		defer c.Close()
		clients = append(clients, c)
	}
	const maxRetries = 10000
	increment := func(rdb *redis.Client, keys ...string) error {
		txf := func(tx *redis.Tx) error {
			ns := make([]int, len(keys))
			for i, key := range keys {
				n, err := tx.Get(ctx, key).Int()
				if err != nil && err != redis.Nil {
					return err
				}
				ns[i] = n + 1
			}
			_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				for i, key := range keys {
					pipe.Set(ctx, key, ns[i], 0)
				}
				return nil
			})
			return err
		}
		for i := 0; i < maxRetries; i++ {
			err := rdb.Watch(ctx, txf, keys...)
			if err == nil {
				return nil
			}
			if err == redis.TxFailedErr {
				continue
			}
			return err
		}
		return errors.New("increment reached maximum number of retries")
	}
	two := ring.SpreadKeys("counter:", 2, 8)
	for _, keys := range [][]string{{"counter3"}, two} {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := increment(clients[i%len(clients)], keys...); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("increment %v: %v", keys, err)
		}
		for _, key := range keys {
			for _, c := range clients {
				if n, err := c.Get(ctx, key).Int(); n != 100 || err != nil {
					t.Fatalf("%s = %d, %v; want 100", key, n, err)
				}
			}
		}
	}
}

// TestGoRedisTxPipelined: MULTI/EXEC through go-redis's TxPipelined over
// keys in different partitions, as documented (GET of many keys; INCR),
// and a failed WATCH answering TxFailedErr.
func TestGoRedisTxPipelined(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(1)})
	defer rdb.Close()
	// go-redis's documented example, unchanged (Output: 1 <nil>).
	{
		var incr *redis.IntCmd
		_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			incr = pipe.Incr(ctx, "tx_pipelined_counter")
			pipe.Expire(ctx, "tx_pipelined_counter", time.Hour)
			return nil
		})
		if got := fmt.Sprintln(incr.Val(), err); got != "1 <nil>\n" {
			t.Fatalf("the documented example printed %q, want \"1 <nil>\"", got)
		}
		if ttl := rdb.TTL(ctx, "tx_pipelined_counter").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("TTL after the example = %v, want about an hour", ttl)
		}
	}
	// The same with counters in different partitions (two-phase commit).
	{
		counters := ring.SpreadKeys("tx_pipelined_counter_", 2, 8)
		var a, b *redis.IntCmd
		var ea, eb *redis.BoolCmd
		_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			a = pipe.Incr(ctx, counters[0])
			ea = pipe.Expire(ctx, counters[0], time.Hour)
			b = pipe.Incr(ctx, counters[1])
			eb = pipe.Expire(ctx, counters[1], time.Hour)
			return nil
		})
		if err != nil || a.Val() != 1 || b.Val() != 1 || !ea.Val() || !eb.Val() {
			t.Fatalf("cross-partition INCR+EXPIRE: %d %v %d %v, %v", a.Val(), ea.Val(), b.Val(), eb.Val(), err)
		}
	}
	for i := 0; i < 20; i += 2 {
		if err := rdb.Set(ctx, fmt.Sprintf("key%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := 0; i < 20; i++ {
			pipe.Get(ctx, fmt.Sprintf("key%d", i))
		}
		return nil
	})
	if !errors.Is(err, redis.Nil) { // as with Redis: the first error of the replies
		t.Fatalf("TxPipelined GETs: %v", err)
	}
	for i, cmd := range cmds {
		v, err := cmd.(*redis.StringCmd).Result()
		if i%2 == 0 && (err != nil || v != fmt.Sprint(i)) || i%2 == 1 && err != redis.Nil {
			t.Fatalf("GET key%d in the transaction = %q, %v", i, v, err)
		}
	}
	var incr *redis.IntCmd
	keys := ring.SpreadKeys("tx_pipelined_counter", 3, 8)
	_, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		incr = pipe.Incr(ctx, keys[0])
		pipe.Set(ctx, keys[1], "x", 0)
		pipe.Incr(ctx, keys[2])
		return nil
	})
	if err != nil || incr.Val() != 1 {
		t.Fatalf("TxPipelined INCR = %d, %v", incr.Val(), err)
	}
	// A watched key written by someone else makes EXEC answer nil.
	other := redis.NewClient(&redis.Options{Addr: tc.respAddr(2)})
	defer other.Close()
	err = rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := other.Set(ctx, keys[0], "changed", 0).Err(); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, keys[1], "lost", 0)
			pipe.Set(ctx, keys[2], "lost", 0)
			return nil
		})
		return err
	}, keys[0], keys[1])
	if err != redis.TxFailedErr {
		t.Fatalf("EXEC after a watched key changed: %v, want TxFailedErr", err)
	}
	if v := rdb.MGet(ctx, keys[1], keys[2]).Val(); v[0] != "x" || v[1] != "1" {
		t.Fatalf("a failed transaction applied something: %v", v)
	}
}

// TestMultiExecReplies: Redis's replies for transaction misuse, errors
// while queuing, and errors at run time.
func TestMultiExecReplies(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ctx := ctx5(t)
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: 1})
	defer rdb.Close()
	conn := rdb.Conn()
	defer conn.Close()
	keys := ring.SpreadKeys("m", 3, 8)
	do := func(args ...any) string {
		v, err := conn.Do(ctx, args...).Result()
		if err != nil {
			if err == redis.Nil {
				return "(nil)"
			}
			return "ERR: " + err.Error()
		}
		return fmt.Sprint(v)
	}
	steps := []struct {
		args []any
		want string
	}{
		{[]any{"EXEC"}, "ERR: ERR EXEC without MULTI"},
		{[]any{"DISCARD"}, "ERR: ERR DISCARD without MULTI"},
		{[]any{"SET", keys[0], "notanumber"}, "OK"},
		{[]any{"MULTI"}, "OK"},
		{[]any{"MULTI"}, "ERR: ERR MULTI calls can not be nested"},
		{[]any{"WATCH", keys[1]}, "ERR: ERR WATCH inside MULTI is not allowed"},
		{[]any{"INCR", keys[0]}, "QUEUED"},
		{[]any{"SET", keys[1], "v"}, "QUEUED"},
		{[]any{"PING"}, "QUEUED"},
		{[]any{"MGET", keys[0], keys[1], keys[2]}, "QUEUED"},
		{[]any{"EXEC"}, "[ERR value is not an integer or out of range OK PONG [notanumber v <nil>]]"},
		{[]any{"MULTI"}, "OK"},
		{[]any{"SET", keys[2], "v"}, "QUEUED"},
		{[]any{"NOSUCH", keys[2]}, "ERR: ERR unknown command 'NOSUCH', with args beginning with: '" + keys[2] + "' "},
		{[]any{"GET"}, "ERR: ERR wrong number of arguments for 'get' command"},
		{[]any{"EXEC"}, "ERR: EXECABORT Transaction discarded because of previous errors."},
		{[]any{"GET", keys[2]}, "(nil)"},
		{[]any{"MULTI"}, "OK"},
		{[]any{"SET", keys[2], "v"}, "QUEUED"},
		{[]any{"DISCARD"}, "OK"},
		{[]any{"GET", keys[2]}, "(nil)"},
		{[]any{"MULTI"}, "OK"},
		{[]any{"MSETNX", keys[1], "a", keys[2], "b"}, "ERR: CROSSSLOT MSETNX with keys in different partitions cannot run inside MULTI; run it alone"},
		{[]any{"EXEC"}, "ERR: EXECABORT Transaction discarded because of previous errors."},
		{[]any{"MSETNX", keys[1], "a", keys[2], "b"}, "0"},
		{[]any{"MSETNX", keys[2], "b", "fresh" + keys[0], "c"}, "1"},
		{[]any{"MULTI"}, "OK"},
		{[]any{"EXEC"}, "[]"},
	}
	for i, s := range steps {
		if got := do(s.args...); got != s.want {
			t.Fatalf("step %d %v: got %q, want %q", i, s.args, got, s.want)
		}
	}
}

// TestReadersNeverSeeHalfATransfer: transfers between accounts in
// different partitions (MULTI DECRBY/INCRBY) race with MGETs of every
// account from other nodes; every MGET sums to the initial total.
func TestReadersNeverSeeHalfATransfer(t *testing.T) {
	// Across partitions: two-phase commit and lock-free snapshot reads. In
	// one partition: one log entry per transfer, and an MGET that must read
	// one frozen view while entries are applied.
	t.Run("across partitions", func(t *testing.T) { readersNeverSeeHalfATransfer(t, ring.SpreadKeys("acct:", 5, 8)) })
	t.Run("in one partition", func(t *testing.T) {
		readersNeverSeeHalfATransfer(t, []string{"{acct}:0", "{acct}:1", "{acct}:2", "{acct}:3", "{acct}:4"})
	})
}

func readersNeverSeeHalfATransfer(t *testing.T, accounts []string) {
	tc := startCluster(t, 3, nil)
	// The work is bounded (120 transfers, 120 reads); the deadline only
	// stops a hang, so it leaves room for a loaded machine under -race.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), PoolSize: 20})
	defer rdb.Close()
	for _, a := range accounts {
		if err := rdb.Set(ctx, a, 100, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	const total = 500
	var transfers, reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: tc.respAddr(w % 3)})
			defer c.Close()
			for i := 0; i < 30; i++ {
				from, to := accounts[(w+i)%5], accounts[(w+2*i+1)%5]
				if from == to {
					continue
				}
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.DecrBy(ctx, from, 7)
					p.IncrBy(ctx, to, 7)
					return nil
				})
				if err != nil && !strings.HasPrefix(err.Error(), "TRYAGAIN") {
					errs <- fmt.Errorf("transfer: %w", err)
					return
				}
				if err == nil {
					transfers.Add(1)
				}
			}
		}()
	}
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: tc.respAddr(r)})
			defer c.Close()
			for i := 0; i < 40; i++ {
				vals, err := c.MGet(ctx, accounts...).Result()
				if err != nil {
					if strings.HasPrefix(err.Error(), "TRYAGAIN") {
						continue
					}
					errs <- fmt.Errorf("mget: %w", err)
					return
				}
				sum := 0
				for _, v := range vals {
					var n int
					fmt.Sscan(fmt.Sprint(v), &n)
					sum += n
				}
				if sum != total {
					errs <- fmt.Errorf("MGET saw %v, sum %d, want %d", vals, sum, total)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Most attempts must have succeeded, or the race checked nothing.
	if transfers.Load() < 60 || reads.Load() < 60 {
		t.Fatalf("only %d of 120 transfers and %d of 120 reads succeeded", transfers.Load(), reads.Load())
	}
}

// TestPipelinedCrossPartitionMSETNX: redis-py's test_msetnx, pipelined.
// One key exists; fifty MSETNX of it and three keys in other partitions
// race each other for the same locks, so a veto can meet a share that is
// locked. Every one answers 0, nothing is set, and the node keeps serving.
func TestPipelinedCrossPartitionMSETNX(t *testing.T) {
	tc := startCluster(t, 3, nil)
	// 50 cross-partition commands, each a few raft rounds, one after the
	// other: a deadline for correctness, not speed (under -race on a
	// loaded 2-core machine they take over 5 s).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), ReadTimeout: time.Minute})
	defer rdb.Close()
	keys := ring.SpreadKeys("nx", 4, 8)
	if err := rdb.Set(ctx, keys[0], "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	var res []*redis.BoolCmd
	for range 50 {
		res = append(res, pipe.MSetNX(ctx, keys[0], "x", keys[1], "4", keys[2], "5", keys[3], "6"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	for i, r := range res {
		if ok, err := r.Result(); err != nil || ok {
			t.Fatalf("MSETNX %d answered %v, %v; want false", i, ok, err)
		}
	}
	if v := rdb.MGet(ctx, keys...).Val(); v[0] != "1" || v[1] != nil || v[2] != nil || v[3] != nil {
		t.Fatalf("after vetoed MSETNX: %v", v)
	}
}
