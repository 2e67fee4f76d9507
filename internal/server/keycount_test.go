package server

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDBSIZEExactAfterBlindWrites: plain SET and MSET no longer read their
// keys, so a partition's stored key count is an upper bound; DBSIZE must
// still equal the number of keys after every mix of blind overwrites,
// creations, deletions and counted writes, including right after a count
// was cached and a blind write followed; and each replica's count stays a
// bound (never below the truth).
func TestDBSIZEExactAfterBlindWrites(t *testing.T) {
	tc := startCluster(t, 3, nil)
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	defer c.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	live := map[string]bool{}
	key := func() string { return fmt.Sprint("k", rng.IntN(40)) }
	for round := range 30 {
		for range 15 {
			k := key()
			var err error
			switch op := rng.IntN(6); op {
			case 0, 1: // blind
				err = c.Set(ctx5(t), k, "v", 0).Err()
				live[k] = true
			case 2: // blind, one partition (a hash tag)
				tag := fmt.Sprint("{t", rng.IntN(3), "}")
				err = c.MSet(ctx5(t), tag+"a", "1", tag+"b", "2").Err()
				live[tag+"a"], live[tag+"b"] = true, true
			case 3:
				err = c.Del(ctx5(t), k).Err()
				delete(live, k)
			case 4: // counted
				err = c.SetNX(ctx5(t), k, "nx", 0).Err()
				live[k] = true
			case 5: // counted, with an expiry far off
				err = c.Set(ctx5(t), k, "ex", 1000*time.Hour).Err()
				live[k] = true
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		// Twice: the second answer comes from the cached count.
		for range 2 {
			n, err := c.DBSize(ctx5(t)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(live)) {
				t.Fatalf("round %d: DBSIZE %d, %d keys", round, n, len(live))
			}
		}
	}
	// A leader's count, once DBSIZE found the exact number with no blind
	// write since, is stored exact again.
	for _, n := range tc.nodes {
		waitFor(t, "every leader's count exact after DBSIZE", 10*time.Second, func() bool {
			for _, st := range n.eng.Status() {
				if st.Role == "StateLeader" && st.Group != MetaGroup && st.KeysInexact {
					return false
				}
			}
			return true
		})
	}
	var bound int64
	for _, st := range tc.nodes[0].eng.Status() {
		if st.Group != MetaGroup {
			bound += st.Keys
		}
	}
	if bound < int64(len(live)) {
		t.Fatalf("node 1's counts sum to %d, below the %d keys", bound, len(live))
	}
	t.Logf("%d keys; node 1's stored counts sum to %d", len(live), bound)
}
