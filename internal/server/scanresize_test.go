package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/control"
)

// TestScanAcrossSplitAndMerge: a SCAN walk begun before a split and
// continued through it and through the merge back returns every key
// (some perhaps twice, as Redis allows): the walk follows slot ranges,
// not partitions, and a partition checks it holds the slots it is asked
// for.
func TestScanAcrossSplitAndMerge(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) { c.Partitions = 2 })
	tc.waitKnown()
	client := redis.NewClient(&redis.Options{Addr: tc.respAddr(0)})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const keys = 600
	for i := range keys {
		if err := client.Set(ctx, fmt.Sprint("scan:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n := tc.nodes[0]
	seen := map[string]bool{}
	scan := func(cursor uint64) uint64 {
		t.Helper()
		for {
			ks, next, err := client.Scan(ctx, cursor, "scan:*", 25).Result()
			if err == nil {
				for _, k := range ks {
					seen[k] = true
				}
				return next
			}
			// TRYAGAIN while the map catches up: the same cursor again.
			if ctx.Err() != nil {
				t.Fatalf("SCAN %d: %v", cursor, err)
			}
			time.Sleep(50 * time.Millisecond) // a client's retry pause
		}
	}
	cursor := scan(0)
	for range 3 {
		cursor = scan(cursor)
	}
	// Partition 0 (slots 0-8191) splits at its middle, under the walk.
	right, err := control.SplitPartition(ctx, n.write, n.cmap, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 1 to see the split", 10*time.Second, func() bool { return len(n.view().Parts) == 3 })
	for range 3 {
		if cursor = scan(cursor); cursor == 0 {
			t.Fatal("the walk ended before the merge")
		}
	}
	// And merges back (partition 0 absorbs its right neighbour, the one
	// the split made), while the walk is inside partition 0's half: the
	// merged partition holds keys of the other half that sort before the
	// walk's last key, never looked at.
	for {
		if res, err := n.place.MergePartitions(ctx, 0); err == nil {
			if res.Survivor+res.Absorbed != right {
				t.Fatalf("merge of partition 0: %+v, want 0 and %d", res, right)
			}
			break
		} else if ctx.Err() != nil {
			t.Fatalf("merge of partition 0: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // asked again while a leader is unknown
	}
	for cursor != 0 {
		cursor = scan(cursor)
	}
	missing := 0
	for i := range keys {
		if !seen[fmt.Sprint("scan:", i)] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d keys never returned by a SCAN through a split and a merge", missing, keys)
	}
}
