package dst

import (
	"testing"
)

// The CI seed set: a few clean seeds, each run twice (the two trace
// hashes must agree), and for every planted bug a few pinned seeds of
// which at least one must catch it. A change that makes a plant slip
// through every one of its seeds weakens the simulator: find new seeds
// with `go test ./internal/dst -run TestPlantRates -dst.rates=40` and say
// why in the commit.
var (
	ciClean  = []uint64{1, 2, 3, 4, 5, 6}
	ciPlants = map[Plant][]uint64{
		PlantLazyFsync:  {2, 3, 4},
		PlantStaleReads: {1, 2, 3},
		PlantForgetVote: {1, 2, 3},
		PlantReapply:    {1, 2, 3},
		PlantCanary:     {1},
	}
)

func TestCISeedsReplayAndPass(t *testing.T) {
	seeds := ciClean
	if raceEnabled {
		seeds = seeds[:2] // the race detector slows a run tenfold
	}
	for _, seed := range seeds {
		a := Run(Options{Seed: seed})
		b := Run(Options{Seed: seed})
		if a.Failed() {
			t.Errorf("%s\nreplay: %s", a.Summary(), a.Replay())
		}
		if d := FirstDivergence(a, b, func(from int) *Result {
			return Run(Options{Seed: seed, Trace: true, TraceFrom: from})
		}); d != nil {
			t.Error(d)
		}
	}
}

func TestCISeedsCatchEveryPlant(t *testing.T) {
	for _, p := range Plants {
		seeds := ciPlants[p]
		if len(seeds) == 0 {
			t.Errorf("plant %s has no CI seeds", p)
			continue
		}
		if raceEnabled {
			seeds = seeds[:1]
		}
		caught := 0
		for _, seed := range seeds {
			r := Run(Options{Seed: seed, Plant: p})
			if r.Failed() {
				caught++
				t.Logf("%s caught by seed %d: %s", p, seed, r.Failure)
			}
		}
		if caught == 0 {
			t.Errorf("planted bug %s slipped through seeds %v: the simulator's checks no longer catch it", p, seeds)
		}
	}
}
