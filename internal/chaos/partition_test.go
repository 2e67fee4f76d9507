package chaos

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Every shape cuts exactly the links it claims, and splits leave a strict
// minority on the side of the chosen node.
func TestCutPlans(t *testing.T) {
	all := []uint64{1, 2, 3, 4, 5}
	cuts := func(p cutPlan) map[[2]uint64]bool {
		m := map[[2]uint64]bool{}
		for from, tos := range p.links(all) {
			for _, to := range tos {
				m[[2]uint64{from, to}] = true
			}
		}
		return m
	}
	shapes := map[string]bool{}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		node := uint64(rng.IntN(5)) + 1
		p := planCut(rng, node, 5)
		shapes[p.shape] = true
		if !slices.Contains(p.side, node) {
			t.Fatalf("%v: side %v lacks node %d", p, p.side, node)
		}
		c := cuts(p)
		for _, a := range all {
			for _, b := range all {
				if a == b {
					continue
				}
				inA, inB := slices.Contains(p.side, a), slices.Contains(p.side, b)
				var want bool
				switch p.shape {
				case "isolate", "split":
					want = inA != inB
				case "one-way-out":
					want = inA
				case "one-way-in":
					want = inB
				}
				if c[[2]uint64{a, b}] != want {
					t.Fatalf("%v: link %d->%d cut=%v, want %v", p, a, b, c[[2]uint64{a, b}], want)
				}
			}
		}
		if p.shape == "split" && (len(p.side) < 2 || 2*len(p.side) >= len(all)) {
			t.Fatalf("%v: side %v is not a minority of at least 2", p, p.side)
		}
		if p.shape != "split" && len(p.side) != 1 {
			t.Fatalf("%v: side %v", p, p.side)
		}
	}
	if len(shapes) != 4 {
		t.Fatalf("200 seeds drew only shapes %v", shapes)
	}
	// Three nodes: a split would be an isolation, so it is never drawn.
	for seed := range uint64(100) {
		if p := planCut(rand.New(rand.NewPCG(seed, 1)), 1, 3); p.shape == "split" {
			t.Fatalf("split drawn for 3 nodes: %v", p)
		}
	}
}
