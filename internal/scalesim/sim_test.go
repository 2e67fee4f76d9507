package scalesim

import (
	"fmt"
	"testing"
)

// TestChangesConverge: each membership change converges with the real
// driver, every step applicable, creating at most 1.25× the replicas
// the change needs (issue 20's bound), and leaves no node over the
// ring's load cap.
func TestChangesConverge(t *testing.T) {
	for _, sc := range []struct{ nodes, parts int }{{5, 64}, {50, 2048}} {
		for _, ch := range []Change{Join, Die, Decommission} {
			rep, err := Run(Config{Nodes: sc.nodes, Partitions: sc.parts, Dead: 10 * 1e9}, ch)
			if err != nil {
				t.Fatalf("N=%d P=%d %s: %v", sc.nodes, sc.parts, ch, err)
			}
			t.Log(rep)
			if rep.Ratio() > 1.25 {
				t.Errorf("%s: created %d replicas, %.3f× the optimum %.0f", ch, rep.Created, rep.Ratio(), rep.Optimum)
			}
			if limit := 1.25*rep.MeanLoad + 1; rep.MaxLoad > limit {
				t.Errorf("%s: a node holds %.0f replicas, over the cap %.0f", ch, rep.MaxLoad, limit)
			}
		}
	}
}

// BenchmarkDriverRound: one round of the driver's decisions (liveness,
// placement, plan) over a converged cluster, at issue 20's scale.
func BenchmarkDriverRound(b *testing.B) {
	for _, sc := range []struct{ nodes, parts int }{{100, 10_000}, {1000, 100_000}} {
		b.Run(fmt.Sprintf("N=%d/P=%d", sc.nodes, sc.parts), func(b *testing.B) {
			cfg := Config{Nodes: sc.nodes, Partitions: sc.parts}
			if err := cfg.defaults(); err != nil {
				b.Fatal(err)
			}
			s, err := newSim(cfg)
			if err != nil {
				b.Fatal(err)
			}
			var rep Report
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.step(&rep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGrowthSplitsAndPlaces: a bulk load of four split sizes into every
// partition ends with every partition at or under the split size (three
// splits per partition, one at a time), each right half moved to where
// the ring places it, and the replicas balanced.
func TestGrowthSplitsAndPlaces(t *testing.T) {
	rep, err := RunGrow(GrowConfig{Config: Config{Nodes: 10, Partitions: 16, Dead: 10 * 1e9}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Final != 64 || rep.Splits != 48 || rep.MaxBytes > 1 {
		t.Fatalf("%d splits to %d partitions, largest %.2f split sizes; want 48 to 64, none over 1", rep.Splits, rep.Final, rep.MaxBytes)
	}
	if limit := 1.25*rep.MeanLoad + 1; rep.MaxLoad > limit {
		t.Errorf("a node holds %.0f replicas, over the cap %.0f", rep.MaxLoad, limit)
	}
	// Splits run in batches on distinct nodes: fewer rounds than one at
	// a time would take.
	one, err := RunGrow(GrowConfig{Config: Config{Nodes: 10, Partitions: 16, Dead: 10 * 1e9}, OneAtATime: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(one)
	if one.Rounds < one.Splits*2 || rep.Rounds >= one.Rounds {
		t.Errorf("%d splits in %d rounds one at a time, %d in batches", one.Splits, one.Rounds, rep.Rounds)
	}
	// Placed by their own first slot (below api.LevelFamilies), the right
	// halves move away from their parents: more replicas created.
	own, err := RunGrow(GrowConfig{Config: Config{Nodes: 10, Partitions: 16, Dead: 10 * 1e9}, BySlot: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(own)
	if rep.Created >= own.Created {
		t.Errorf("placed by family, the splits created %d replicas; by own slot, %d", rep.Created, own.Created)
	}
}
