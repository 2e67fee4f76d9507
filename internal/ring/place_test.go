package ring

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// checkPlacement asserts the invariants every placement must satisfy and
// returns its largest load.
func checkPlacement(t *testing.T, cfg Config, nodes []Node, pl Placement) int {
	t.Helper()
	cfg.EnsureDefaults()
	members := idsOf(nodes)
	r := min(cfg.Replicas, len(nodes))
	if len(pl.Replicas) != cfg.Partitions {
		t.Fatalf("%d partitions placed, want %d", len(pl.Replicas), cfg.Partitions)
	}
	for p, ids := range pl.Replicas {
		if len(ids) != r {
			t.Fatalf("partition %d has %d replicas, want %d", p, len(ids), r)
		}
		for i, id := range ids {
			if !members[id] || slices.Contains(ids[:i], id) {
				t.Fatalf("partition %d: replicas %v are not distinct members", p, ids)
			}
		}
	}
	most := 0
	for _, l := range pl.Load() {
		most = max(most, l)
	}
	if limit := loadCap(cfg, len(nodes)); most > limit {
		t.Fatalf("P=%d R=%d N=%d: a node holds %d replicas, cap ceil((1+ε)·P·R/N) = %d",
			cfg.Partitions, cfg.Replicas, len(nodes), most, limit)
	}
	return most
}

// TestBalance: over random memberships no node holds more than
// ceil((1+ε)·P·R/N) replicas, and bounded loads took off the preference
// lists exactly the total excess of the plain walk, the fewest possible.
func TestBalance(t *testing.T) {
	rng := newRand(t)
	worst, swaps, corrected, n := 0.0, 0, 0, iterations(1000)
	for range n {
		cfg := randomConfig(rng)
		nodes := randomNodes(rng, 1+rng.IntN(40), 0)
		pl, st := mustPlace(t, cfg, nodes)
		most := checkPlacement(t, cfg, nodes, pl)
		worst = max(worst, float64(most)/float64(loadCap(cfg, len(nodes))))
		if over := overCap(cfg, nodes); st.corrections != over {
			t.Fatalf("%d corrections, but the plain walk exceeds the cap by %d", st.corrections, over)
		}
		if d := drift(cfg, nodes, pl); d > st.corrections+st.swaps {
			t.Fatalf("%d replicas off their lists, more than %d corrections + %d swaps", d, st.corrections, st.swaps)
		}
		swaps += st.swaps
		if st.corrections > 0 {
			corrected++
		}
	}
	t.Logf("%d memberships: largest load / cap %.3f; the plain walk broke the cap in %d; %d swaps",
		n, worst, corrected, swaps)
}

// TestTightCaps covers the corners that random memberships rarely reach:
// few nodes, one or two tokens each and a cap barely above the mean, where a
// shed replica can find every node outside its partition full (the swap)
// and leaders need long chains to fit under their cap.
func TestTightCaps(t *testing.T) {
	rng := newRand(t)
	swaps := 0
	for range iterations(3000) {
		r := 2 + rng.IntN(4)
		cfg := Config{Partitions: 1 << (2 + rng.IntN(4)), Replicas: r, VNodes: 1 + rng.IntN(2), Epsilon: 0.01}
		nodes := randomNodes(rng, r+rng.IntN(r+1), 0)
		pl, st := mustPlace(t, cfg, nodes)
		checkPlacement(t, cfg, nodes, pl)
		if d := drift(cfg, nodes, pl); d > st.corrections+st.swaps {
			t.Fatalf("%d replicas off their lists, more than %d corrections + %d swaps", d, st.corrections, st.swaps)
		}
		checkLeaders(t, cfg, nodes, pl)
		swaps += st.swaps
	}
	if swaps == 0 && !testing.Short() {
		t.Fatalf("no placement needed a swap; the fallback went untested")
	}
	t.Logf("%d swaps", swaps)
}

// TestFewerNodesThanReplicas: with N < R every partition is on all N nodes.
func TestFewerNodesThanReplicas(t *testing.T) {
	rng := newRand(t)
	cfg := Config{Partitions: 16, Replicas: 5}
	nodes := randomNodes(rng, 3, 0)
	pl, _ := mustPlace(t, cfg, nodes)
	checkPlacement(t, cfg, nodes, pl)
	checkLeaders(t, cfg, nodes, pl)
}

func TestDeterministic(t *testing.T) {
	rng := newRand(t)
	for range iterations(300) {
		cfg := randomConfig(rng)
		nodes := randomNodes(rng, 1+rng.IntN(40), rng.IntN(4))
		a, _ := mustPlace(t, cfg, nodes)
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b, _ := mustPlace(t, cfg, shuffled)
		if !slices.EqualFunc(a.Replicas, b.Replicas, slices.Equal) {
			t.Fatalf("shuffling %d nodes changed the placement", len(nodes))
		}
	}
}

// TestLeaders: no node leads more than ceil((1+ε)·P/N) partitions.
func TestLeaders(t *testing.T) {
	rng := newRand(t)
	for range iterations(1000) {
		cfg := randomConfig(rng)
		nodes := randomNodes(rng, 1+rng.IntN(40), rng.IntN(4))
		pl, _ := mustPlace(t, cfg, nodes)
		checkLeaders(t, cfg, nodes, pl)
	}
}

// checkLeaders asserts the leader cap, and that the reference matching
// agrees the replica sets allow it (the Hall argument in balanceLeaders).
func checkLeaders(t *testing.T, cfg Config, nodes []Node, pl Placement) {
	t.Helper()
	cfg.EnsureDefaults()
	limit := int(math.Ceil((1 + cfg.Epsilon) * float64(cfg.Partitions) / float64(len(nodes))))
	leads := make(map[uint64]int)
	for _, ids := range pl.Replicas {
		leads[ids[0]]++
	}
	for id, n := range leads {
		if n > limit {
			t.Fatalf("P=%d R=%d N=%d: node %d leads %d partitions, cap %d",
				cfg.Partitions, cfg.Replicas, len(nodes), id, n, limit)
		}
	}
	if best := maxLeaders(pl, limit); best != cfg.Partitions {
		t.Fatalf("reference matching leads only %d of %d partitions within the cap", best, cfg.Partitions)
	}
}

// maxLeaders is the reference: the most partitions that can get a leader
// from their own replicas with at most limit per node (augmenting paths).
func maxLeaders(pl Placement, limit int) int {
	led := make(map[uint64][]int)
	var assign func(p int, seen map[uint64]bool) bool
	assign = func(p int, seen map[uint64]bool) bool {
		for _, n := range pl.Replicas[p] {
			if seen[n] {
				continue
			}
			seen[n] = true
			if len(led[n]) < limit {
				led[n] = append(led[n], p)
				return true
			}
			for i, q := range led[n] {
				if assign(q, seen) {
					led[n][i] = p
					return true
				}
			}
		}
		return false
	}
	got := 0
	for p := range pl.Replicas {
		if assign(p, make(map[uint64]bool)) {
			got++
		}
	}
	return got
}

// TestZones: with equal-sized zones every partition spans min(R, zones)
// zones, and the cap still holds. Zones of unequal size cannot always be
// spread: a zone of one node cannot take a replica of every partition.
func TestZones(t *testing.T) {
	rng := newRand(t)
	for range iterations(600) {
		cfg := randomConfig(rng)
		zones := 1 + rng.IntN(2*cfg.Replicas)
		nodes := randomNodes(rng, zones*(1+rng.IntN(max(1, 40/zones))), zones)
		pl, _ := mustPlace(t, cfg, nodes)
		checkPlacement(t, cfg, nodes, pl)
		zoneOf := make(map[uint64]string)
		for _, n := range nodes {
			zoneOf[n.ID] = n.Zone
		}
		want := min(cfg.Replicas, zones)
		for p, ids := range pl.Replicas {
			seen := make(map[string]bool)
			for _, id := range ids {
				seen[zoneOf[id]] = true
			}
			if len(seen) != want {
				t.Fatalf("P=%d R=%d N=%d in %d zones: partition %d spans %d zones, want %d",
					cfg.Partitions, cfg.Replicas, len(nodes), zones, p, len(seen), want)
			}
		}
	}
}

// TestNoZonesIsPlainWalk: without zones the preference lists are the first R
// distinct nodes clockwise.
func TestNoZonesIsPlainWalk(t *testing.T) {
	rng := newRand(t)
	for range iterations(100) {
		cfg := randomConfig(rng)
		cfg.EnsureDefaults()
		nodes := randomNodes(rng, 1+rng.IntN(20), 0)
		plain := plainPlacement(cfg, nodes)
		for p, ids := range plain.Replicas {
			order, _ := refOrder(nodes, cfg.VNodes, partitionPos(p, cfg.Partitions))
			if want := order[:len(ids)]; !slices.Equal(ids, want) {
				t.Fatalf("partition %d: %v, plain walk %v", p, ids, want)
			}
		}
	}
}

func TestMovesAndLoad(t *testing.T) {
	from := Placement{Replicas: [][]uint64{{1, 2, 3}, {2, 3, 4}}}
	to := Placement{Replicas: [][]uint64{{3, 2, 1}, {2, 5, 6}, {1, 2, 3}}}
	if got := Moves(from, to); got != 5 {
		t.Errorf("Moves = %d, want 5 (reordering is free; 5 and 6 are new; a new partition counts in full)", got)
	}
	if got := Moves(to, from); got != 2 {
		t.Errorf("Moves back = %d, want 2 (3 and 4 are new; dropping a partition is free)", got)
	}
	got := fmt.Sprint(to.Load())
	if want := "map[1:2 2:3 3:2 5:1 6:1]"; got != want {
		t.Errorf("Load = %s, want %s", got, want)
	}
}
