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
	ciClean = []uint64{1, 2, 3, 4, 5, 6}
	// ciLeases run clean with read leases on (raftstore's ReadLeases).
	ciLeases = []uint64{1, 2, 3}
	ciPlants = map[Plant][]uint64{
		PlantLazyFsync:    {2, 3, 4},
		PlantStaleReads:   {1, 2, 3},
		PlantForgetVote:   {1, 2, 3},
		PlantReapply:      {1, 2, 3},
		PlantCompactAhead: {1, 2, 3},
		PlantCanary:       {1},
	}
)

func TestCISeedsReplayAndPass(t *testing.T) {
	for _, set := range []struct {
		seeds  []uint64
		leases bool
	}{{ciClean, false}, {ciLeases, true}} {
		seeds := set.seeds
		if raceEnabled {
			seeds = seeds[:1] // the race detector slows a run tenfold; one seed finds the races
		}
		for _, seed := range seeds {
			o := Options{Seed: seed, ReadLeases: set.leases}
			a, b := Run(o), Run(o)
			if a.Failed() {
				t.Errorf("%s\nreplay: %s", a.Summary(), a.Replay())
			}
			if set.leases && a.LeaseReads == 0 {
				t.Errorf("seed %d with read leases: no read was served on a lease", seed)
			}
			if d := FirstDivergence(a, b, func(from int) *Result {
				ot := o
				ot.Trace, ot.TraceFrom = true, from
				return Run(ot)
			}); d != nil {
				t.Error(d)
			}
		}
	}
}

func TestCISeedsCatchEveryPlant(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector slows a run tenfold; .ci/run runs this without it")
	}
	for _, p := range Plants {
		seeds := ciPlants[p]
		if len(seeds) == 0 {
			t.Errorf("plant %s has no CI seeds", p)
			continue
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

// regressionSeeds failed before the bug named was fixed, and must pass
// now. A seed stands for the simulator as it was when it was pinned: when
// a change to the simulator moves a seed off its bug, revert the fix,
// find new seeds that fail (kintsu sim --seeds 200 prints them), and pin
// those instead.
var regressionSeeds = []struct {
	seeds []uint64
	bug   string
}{
	{[]uint64{12, 13, 37}, "an installed snapshot acknowledged before its fsync (fixed in 5f4f4a8): a power cut left an empty voter its leader never repaired — a storm of rejected appends, or a replica stuck at index 0"},
	{[]uint64{1765}, "the simulator's own: a failing sync still armed when a cut-off node took in 6,148 entries at once; Pebble rotated its WAL, the failed close panicked with Pebble's lock released, and the fatal error ended the process (disk.go's calm)"},
	{[]uint64{8422, 8620}, "the simulator's own: a full disk armed while a Pebble compaction ran in the background; its MANIFEST write failed, Pebble's Fatalf ended the process (simfs now fills only the WAL)"},
	{[]uint64{1369, 2874}, "a stale learner marked removed by the control plane's hint was never destroyed: a cycle in which no replica had a Ready returned before destroyRemoved, and a node whose only replica is that idle one never has a Ready again, so the leader's new replica for the node could not be created"},
	{[]uint64{1844}, "a member that lagged while another node's replica was removed and added back under a new id refused every message of that new id, its descriptor mapping the node to the old one; once the new id led, the laggard never followed again"},
}

func TestRegressionSeeds(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector slows a run tenfold; .ci/run runs this without it")
	}
	for _, r := range regressionSeeds {
		for _, seed := range r.seeds {
			if res := Run(Options{Seed: seed}); res.Failed() {
				t.Errorf("seed %d, pinned for %s, fails: %s\nreplay: %s", seed, r.bug, res.Failure, res.Replay())
			}
		}
	}
}
