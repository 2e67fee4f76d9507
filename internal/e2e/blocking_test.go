package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestBlockingPopsServeEachJobOnce: consumers blocked in BLPOP and
// BZPOPMIN on empty keys are served as a producer pushes, while every
// node hands its leaderships away; every job reaches exactly one
// consumer, and a consumer whose timeout passes gets nil.
func TestBlockingPopsServeEachJobOnce(t *testing.T) {
	c := startCluster(t, 3)
	waitTopology(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := c.Nodes()
	opts := func(addr string) *redis.Options {
		return &redis.Options{Addr: addr, ReadTimeout: 20 * time.Second, PoolSize: 4}
	}

	// An empty key and a short timeout: nil, after about the timeout.
	cl := redis.NewClient(opts(nodes[0].RESPAddr))
	defer cl.Close()
	if _, err := cl.BLPop(ctx, 200*time.Millisecond, "bq:none").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("BLPOP on an empty key: %v, want nil", err)
	}

	const consumers, jobs = 6, 300
	var mu sync.Mutex
	got := map[string]int{}
	var errs []error
	var wg sync.WaitGroup
	for i := 0; i < consumers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := redis.NewClient(opts(nodes[i%3].RESPAddr))
			defer cc.Close()
			for {
				var v string
				if i%2 == 0 {
					kv, err := cc.BLPop(ctx, 3*time.Second, "{bq}jobs").Result()
					if errors.Is(err, redis.Nil) {
						return // the producer is done and the queue is empty
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					v = kv[1]
				} else {
					z, err := cc.BZPopMin(ctx, 3*time.Second, "{bq}prio").Result()
					if errors.Is(err, redis.Nil) {
						return
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					v = z.Member.(string)
				}
				mu.Lock()
				got[v]++
				mu.Unlock()
			}
		}()
	}
	prod := redis.NewClient(opts(nodes[1].RESPAddr))
	defer prod.Close()
	for j := 0; j < jobs; j++ {
		if j == jobs/3 || j == 2*jobs/3 {
			moveLeaders(t, c)
		}
		var err error
		if j%2 == 0 {
			err = prod.RPush(ctx, "{bq}jobs", fmt.Sprint("j", j)).Err()
		} else {
			err = prod.ZAdd(ctx, "{bq}prio", redis.Z{Score: float64(j), Member: fmt.Sprint("j", j)}).Err()
		}
		if err != nil {
			t.Fatalf("push %d: %v", j, err)
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d consumers failed; first: %v", len(errs), errs[0])
	}
	for j := 0; j < jobs; j++ {
		if n := got[fmt.Sprint("j", j)]; n != 1 {
			t.Fatalf("job j%d was delivered %d times", j, n)
		}
	}
	if len(got) != jobs {
		t.Fatalf("%d distinct jobs delivered, want %d", len(got), jobs)
	}
}

// TestBlockedClientThatLeaves: replies pipelined before a blocking pop
// arrive at once, not when the pop ends; and a client that closes its
// connection while blocked leaves no waiter behind to pop an element for
// nobody: once the node has let its connection go, a push stays in the
// list.
func TestBlockedClientThatLeaves(t *testing.T) {
	c := startCluster(t, 3)
	addr := c.Nodes()[0].RESPAddr
	rc := dialRaw(t, addr)
	if _, err := rc.c.Write([]byte("SET {bl}x 1\r\nBLPOP {bl}q 30\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := rc.rd.ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		t.Fatalf("the SET pipelined before a BLPOP answered %q, %v (held back by the pop?)", line, err)
	}
	probe := client(addr)
	defer probe.Close()
	clients := func() int {
		info, err := probe.Info(context.Background(), "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_clients:"); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		return n
	}
	before := clients() // the blocked client and the probe's
	rc.c.Close()
	waitFor(t, "the node to let the blocked client go", 20*time.Second, func() bool { return clients() < before })
	if err := probe.RPush(context.Background(), "{bl}q", "job").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := probe.LLen(context.Background(), "{bl}q").Result(); err != nil || n != 1 {
		t.Fatalf("after the blocked client left, LLEN = %d, %v; want the job still there", n, err)
	}
}

// TestBlockingMultiPops: BLMPOP and BZMPOP wait for the first of their
// keys to hold something, through a node that leads none of them.
func TestBlockingMultiPops(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(c.Nodes()[0].RESPAddr)
	defer cl.Close()
	other := client(c.Nodes()[2].RESPAddr)
	defer other.Close()
	type popped struct {
		key  string
		vals []string
		err  error
	}
	done := make(chan popped, 1)
	go func() {
		k, vs, err := cl.BLMPop(ctx, 20*time.Second, "left", 2, "{q}a", "{q}b").Result()
		done <- popped{k, vs, err}
	}()
	// Wait (bounded) until the pop is blocked (its node lists it), then
	// feed the second key.
	watcher := client(c.Nodes()[0].RESPAddr)
	defer watcher.Close()
	waitFor(t, "BLMPOP to block", 20*time.Second, func() bool {
		info, err := watcher.Do(ctx, "CLIENT", "LIST").Text()
		return err == nil && strings.Contains(info, "cmd=blmpop")
	})
	if err := other.RPush(ctx, "{q}b", "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-done:
		if p.err != nil || p.key != "{q}b" || len(p.vals) != 2 || p.vals[0] != "x" {
			t.Fatalf("BLMPOP = %q %q, %v; want {q}b [x y]", p.key, p.vals, p.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("BLMPOP never returned")
	}
	if err := other.ZAdd(ctx, "{q}z", redis.Z{Score: 2, Member: "m"}).Err(); err != nil {
		t.Fatal(err)
	}
	k, zs, err := cl.BZMPop(ctx, time.Second, "min", 1, "{q}y", "{q}z").Result()
	if err != nil || k != "{q}z" || len(zs) != 1 || zs[0].Member != "m" {
		t.Fatalf("BZMPOP = %q %v, %v", k, zs, err)
	}
	if _, _, err := cl.BLMPop(ctx, 200*time.Millisecond, "left", 1, "{q}none").Result(); err != redis.Nil {
		t.Fatalf("BLMPOP on an empty key after its timeout: %v, want nil", err)
	}
}

// TestBlockedClientsServedBeforeThePushAnswers: as in Redis, the clients
// blocked on a node are served, first come first served, before the
// command that gave their keys something answers; a move's destination
// serves its own waiters in the same way (a chain), and a key that turns
// into another type leaves them blocked.
func TestBlockedClientsServedBeforeThePushAnswers(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := c.Nodes()[0].RESPAddr
	cl := client(addr)
	defer cl.Close()
	blocked := func(n int) {
		waitFor(t, fmt.Sprintf("%d blocked clients", n), 20*time.Second, func() bool {
			info, err := cl.Info(ctx, "clients").Result()
			return err == nil && strings.Contains(info, fmt.Sprintf("blocked_clients:%d\r", n))
		})
	}
	send := func(cmd string) *rawConn {
		rc := dialRaw(t, addr)
		if _, err := rc.c.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return rc
	}
	read := func(rc *rawConn) string {
		_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, err := rc.rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if (strings.HasPrefix(line, "$") || strings.HasPrefix(line, "*")) && !strings.HasPrefix(line[1:], "-1") {
			rest, _ := rc.rd.ReadString('\n')
			line += rest
		}
		return line
	}

	// A chain: list1 -> list2 -> list3, served before RPUSH answers.
	a := send("BLMOVE {o}list1 {o}list2 RIGHT LEFT 0")
	blocked(1)
	b := send("BLMOVE {o}list2 {o}list3 LEFT RIGHT 0")
	blocked(2)
	if err := cl.RPush(ctx, "{o}list1", "foo").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"{o}list1", "{o}list2"} {
		if n := cl.LLen(ctx, k).Val(); n != 0 {
			t.Fatalf("after RPUSH answered, %s holds %d: the waiters were not served first", k, n)
		}
	}
	if got := cl.LRange(ctx, "{o}list3", 0, -1).Val(); len(got) != 1 || got[0] != "foo" {
		t.Fatalf("list3 = %q, want [foo]", got)
	}
	read(a)
	read(b)

	// First come, first served; the one whose move fails (its target is
	// a string) answers WRONGTYPE and the next is served.
	cl.Set(ctx, "{o}target1", "nolist", 0)
	first := send("BRPOPLPUSH {o}q {o}target1 0")
	blocked(1)
	second := send("BRPOPLPUSH {o}q {o}target2 0")
	blocked(2)
	cl.LPush(ctx, "{o}q", "job")
	if got := read(first); !strings.HasPrefix(got, "-WRONGTYPE") {
		t.Fatalf("the first waiter got %q, want WRONGTYPE", got)
	}
	if got := read(second); got != "$3\r\njob\r\n" {
		t.Fatalf("the second waiter got %q, want the job", got)
	}

	// A key that becomes a string leaves its waiter blocked.
	w := send("BLPOP {o}k 0")
	blocked(1)
	pipe := cl.TxPipeline()
	pipe.LPush(ctx, "{o}k", "a")
	pipe.Del(ctx, "{o}k")
	pipe.Set(ctx, "{o}k", "foo", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Del(ctx, "{o}k")
	cl.LPush(ctx, "{o}k", "b")
	if got := read(w); got != "*2\r\n$4\r\n" {
		t.Fatalf("the waiter got %q, want the array of {o}k and b", got)
	}

	// CLIENT UNBLOCK ends a wait as a timeout, or with Redis's error.
	u := send("CLIENT ID")
	id := strings.TrimSpace(strings.TrimPrefix(read(u), ":"))
	for _, c := range []struct{ how, want string }{{"TIMEOUT", "*-1\r\n"}, {"ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"}} {
		if _, err := u.c.Write([]byte("BLPOP {o}empty 0\r\n")); err != nil {
			t.Fatal(err)
		}
		blocked(1)
		if n := cl.Do(ctx, "CLIENT", "UNBLOCK", id, c.how).Val(); n != int64(1) {
			t.Fatalf("CLIENT UNBLOCK %s %s: %v", id, c.how, n)
		}
		if got := read(u); got != c.want {
			t.Fatalf("unblocked with %s: %q, want %q", c.how, got, c.want)
		}
	}
}
