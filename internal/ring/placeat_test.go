package ring

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestPlaceAtEqualRangesIsPlace: placing by the equal ranges' first slots
// is exactly Place, so a cluster whose ranges never split sees no change.
func TestPlaceAtEqualRangesIsPlace(t *testing.T) {
	rng := newRand(t)
	for range iterations(200) {
		cfg := randomConfig(rng)
		nodes := randomNodes(rng, 1+rng.IntN(30), rng.IntN(4))
		want, err := Place(cfg, nodes)
		if err != nil {
			t.Fatal(err)
		}
		starts := make([]uint64, cfg.Partitions)
		for p := range starts {
			first, _ := SlotRange(p, cfg.Partitions)
			starts[p] = SlotPos(first)
		}
		got, err := PlaceAt(Config{Replicas: cfg.Replicas}, nodes, starts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got.Replicas, want.Replicas, slices.Equal) {
			t.Fatalf("P=%d R=%d N=%d: PlaceAt differs from Place", cfg.Partitions, cfg.Replicas, len(nodes))
		}
	}
}

// TestSplitMovement: splitting a partition adds one start and changes no
// other partition's preference list, so the partitions that existed move
// only by the cap's corrections before and after (their drift), and the
// new right half is placed by its own start. A split that moved replicas
// of unrelated partitions would make every split a rebalancing.
func TestSplitMovement(t *testing.T) {
	rng := newRand(t)
	moved, splits := 0, iterations(300)
	for range splits {
		cfg := Config{Replicas: []int{1, 3, 5}[rng.IntN(3)]}
		nodes := randomNodes(rng, 1+rng.IntN(30), 0)
		// Random distinct slot starts, slot 0 among them.
		n := 4 + rng.IntN(60)
		set := map[uint16]bool{0: true}
		for len(set) < n {
			set[uint16(rng.IntN(SlotCount))] = true
		}
		var slots []uint16
		for s := range set {
			slots = append(slots, s)
		}
		slices.Sort(slots)
		// Split one range at a slot strictly inside it, if it has one.
		p := rng.IntN(len(slots))
		end := SlotCount
		if p+1 < len(slots) {
			end = int(slots[p+1])
		}
		if end-int(slots[p]) < 2 {
			continue
		}
		at := slots[p] + 1 + uint16(rng.IntN(end-int(slots[p])-1))
		before := positions(slots)
		after := append(positions(slots), SlotPos(at))

		plBefore, stBefore := mustPlaceAt(t, cfg, nodes, before)
		plAfter, stAfter := mustPlaceAt(t, cfg, nodes, after)
		old := Placement{Replicas: plAfter.Replicas[:len(before)]}
		m := Moves(plBefore, old)
		if bound := stBefore.corrections + stBefore.swaps + stAfter.corrections + stAfter.swaps; m > bound {
			t.Fatalf("R=%d N=%d, %d ranges, split at %d: %d replicas of old partitions moved, more than the corrections before and after (%d)",
				cfg.Replicas, len(nodes), len(slots), at, m, bound)
		}
		moved += m
	}
	t.Logf("%d splits moved %d replicas of other partitions in all", splits, moved)
}

func positions(slots []uint16) []uint64 {
	out := make([]uint64, len(slots))
	for i, s := range slots {
		out[i] = SlotPos(s)
	}
	return out
}

func mustPlaceAt(t testing.TB, cfg Config, nodes []Node, starts []uint64) (Placement, stats) {
	t.Helper()
	pl, st, err := place(cfg, nodes, starts)
	if err != nil {
		t.Fatalf("place(%+v, %d nodes, %d starts): %v", cfg, len(nodes), len(starts), err)
	}
	return pl, st
}

func TestPlaceAtRefusesNoPartitions(t *testing.T) {
	if _, err := PlaceAt(Config{}, []Node{{ID: 1}}, nil); !errors.Is(err, ErrNoPartitions) {
		t.Fatalf("PlaceAt with no starts: %v, want ErrNoPartitions", err)
	}
}

// BenchmarkPlaceAtScale: the placement a driver computes per round at
// the scale of issue 20's simulation, with partitions spread evenly over
// the ring (more partitions than slots exist only in simulation).
func BenchmarkPlaceAtScale(b *testing.B) {
	for _, sc := range []struct{ nodes, parts int }{{100, 10_000}, {1000, 100_000}} {
		b.Run(fmt.Sprintf("N=%d/P=%d", sc.nodes, sc.parts), func(b *testing.B) {
			nodes := make([]Node, sc.nodes)
			for i := range nodes {
				nodes[i].ID = uint64(i + 1)
			}
			starts := make([]uint64, sc.parts)
			step := ^uint64(0) / uint64(sc.parts)
			for p := range starts {
				starts[p] = uint64(p) * step
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := PlaceAt(Config{}, nodes, starts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
