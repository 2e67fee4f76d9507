package ring

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized tests; 0 picks a fresh one, printed by every test that uses it")

// newRand returns the test's random source and logs its seed, so a failure
// replays with -seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay: go test -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// iterations scales a randomized test down under -short.
func iterations(n int) int {
	if testing.Short() {
		return max(1, n/10)
	}
	return n
}

// randomNodes returns n nodes with distinct random non-zero IDs; with
// zones > 0 they are dealt round-robin into that many zones.
func randomNodes(rng *rand.Rand, n, zones int) []Node {
	nodes := make([]Node, 0, n)
	seen := make(map[uint64]bool)
	for len(nodes) < n {
		id := rng.Uint64()
		if id == 0 || seen[id] {
			continue
		}
		seen[id] = true
		nd := Node{ID: id}
		if zones > 0 {
			nd.Zone = fmt.Sprintf("zone-%d", len(nodes)%zones)
		}
		nodes = append(nodes, nd)
	}
	return nodes
}

// randomConfig draws from the grid the movement and balance properties are
// checked on.
func randomConfig(rng *rand.Rand) Config {
	return Config{
		Partitions: []int{16, 64, 256}[rng.IntN(3)],
		Replicas:   []int{1, 3, 5}[rng.IntN(3)],
	}
}

func mustPlace(t testing.TB, cfg Config, nodes []Node) (Placement, stats) {
	t.Helper()
	pl, st, err := place(cfg, nodes, nil)
	if err != nil {
		t.Fatalf("place(%+v, %d nodes): %v", cfg, len(nodes), err)
	}
	return pl, st
}

// plainPlacement is the placement without load bounds or leader balancing:
// the preference lists alone. It is the strictly monotone baseline that the
// movement bounds are measured against.
func plainPlacement(cfg Config, nodes []Node) Placement {
	cfg.EnsureDefaults()
	r := newRing(nodes, cfg.VNodes)
	return r.placement(r.preferenceLists(equalStarts(cfg.Partitions), min(cfg.Replicas, len(nodes))))
}

// drift is how many replicas of pl are not on their preference list.
func drift(cfg Config, nodes []Node, pl Placement) int {
	return Moves(plainPlacement(cfg, nodes), pl)
}

// overCap is the total by which the preference lists exceed the load cap:
// the fewest replicas any capped placement must take off them.
func overCap(cfg Config, nodes []Node) int {
	cfg.EnsureDefaults()
	limit := loadCap(cfg, len(nodes))
	over := 0
	for _, l := range plainPlacement(cfg, nodes).Load() {
		over += max(0, l-limit)
	}
	return over
}

// loadCap is the balance bound ceil((1+ε)·P·R/N), written out independently
// of capacity but rounded in the same order.
func loadCap(cfg Config, n int) int {
	cfg.EnsureDefaults()
	r := min(cfg.Replicas, n)
	return int(math.Ceil((1 + cfg.Epsilon) * float64(cfg.Partitions) / float64(n) * float64(r)))
}

func without(nodes []Node, i int) []Node {
	return slices.Concat(nodes[:i], nodes[i+1:])
}

func idsOf(nodes []Node) map[uint64]bool {
	m := make(map[uint64]bool, len(nodes))
	for _, n := range nodes {
		m[n.ID] = true
	}
	return m
}
