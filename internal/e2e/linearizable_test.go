package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/check"
	"github.com/kintsu/kintsu/internal/launcher"
)

// registerLoad runs clients doing GET and SET of unique values on a few
// keys, each op through a random node, for d. If nemesis is set, the
// leader of the busiest node is killed and restarted in a loop.
func registerLoad(t *testing.T, c *launcher.Cluster, seed uint64, d time.Duration, nemesis bool) *check.History {
	t.Helper()
	keys := []string{"reg-a", "reg-b", "reg-c", "reg-d"}
	nodes := c.Nodes()
	clients := map[uint64]*redis.Client{}
	for _, nd := range nodes {
		cl := client(nd.RESPAddr)
		cl.Options().ReadTimeout = 3 * time.Second
		clients[nd.ID] = cl
		defer cl.Close()
	}
	h := check.NewHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := 0; id < 8; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				nd := nodes[rng.IntN(len(nodes))]
				if !c.Running(nd.ID) {
					continue
				}
				cl := clients[nd.ID]
				key := keys[rng.IntN(len(keys))]
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				call := h.Now()
				if rng.IntN(2) == 0 {
					val, err := cl.Get(ctx, key).Result()
					ret := h.Now()
					switch {
					case err == nil:
						h.Ok(id, check.RegisterInput{Kind: check.Read, Key: key}, check.RegisterOutput{Value: val, Exists: true}, call, ret)
					case errors.Is(err, redis.Nil):
						h.Ok(id, check.RegisterInput{Kind: check.Read, Key: key}, check.RegisterOutput{}, call, ret)
					}
					// A failed read observed nothing: it is left out.
				} else {
					val := fmt.Sprintf("%d-%d", id, n)
					in := check.RegisterInput{Kind: check.Write, Key: key, Value: val}
					err := cl.Set(ctx, key, val, 0).Err()
					ret := h.Now()
					switch {
					case err == nil:
						h.Ok(id, in, check.RegisterOutput{}, call, ret)
					case definitelyNotApplied(err):
					default:
						h.Unknown(id, in, call)
					}
				}
				cancel()
			}
		}()
	}
	deadline := time.Now().Add(d)
	if nemesis {
		rng := rand.New(rand.NewPCG(seed, 99))
		for time.Now().Add(3 * time.Second).Before(deadline) {
			victim, _ := busiestLeader(t, c)
			if victim == 0 {
				victim = nodes[rng.IntN(len(nodes))].ID
			}
			if err := c.Kill(victim); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond) // the fault lasts a while
			if err := c.Restart(victim); err != nil {
				t.Error(err)
			}
			waitReady(t, c)
		}
	}
	time.Sleep(time.Until(deadline)) // the workload runs for its duration
	close(stop)
	wg.Wait()
	return h
}

// definitelyNotApplied tells errors that guarantee the write did not
// happen (Kintsu says so) from those that leave it unknown.
func definitelyNotApplied(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "CLUSTERDOWN") || strings.HasPrefix(s, "TRYAGAIN")
}

func TestLinearizableUnderLeaderKills(t *testing.T) {
	c := startCluster(t, 3)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	h := registerLoad(t, c, seed, 12*time.Second, true)
	res := check.CheckRegisters(h, 60*time.Second)
	t.Logf("%d operations: %s", h.Len(), res)
	if h.Len() < 200 {
		t.Fatalf("only %d operations recorded", h.Len())
	}
	if res == porcupine.Illegal {
		t.Fatalf("history is not linearizable (seed %d)", seed)
	}
}

// TestStaleReadsAreCaught proves the check can fail: with reads served by
// any replica without ReadIndex, the same workload must produce a history
// porcupine rejects.
func TestStaleReadsAreCaught(t *testing.T) {
	c := startCluster(t, 3, "--unsafe-stale-reads")
	seed := uint64(time.Now().UnixNano())
	for try := 1; try <= 5; try++ {
		h := registerLoad(t, c, seed+uint64(try), 4*time.Second, false)
		res := check.CheckRegisters(h, 60*time.Second)
		t.Logf("try %d: %d operations: %s", try, h.Len(), res)
		if res == porcupine.Illegal {
			return
		}
	}
	t.Fatal("stale reads were never detected: the linearizability check cannot fail")
}
