package dst

import (
	"flag"
	"testing"
	"time"
)

var (
	flagSeed  = flag.Uint64("dst.seed", 0, "replay this seed (TestReplay)")
	flagPlant = flag.String("dst.plant", "", "plant this bug (TestReplay)")
)

func TestReplay(t *testing.T) {
	if *flagSeed == 0 {
		t.Skip("give -dst.seed=N to replay a seed")
	}
	start := time.Now()
	r := Run(Options{Seed: *flagSeed, Plant: Plant(*flagPlant)})
	t.Logf("%s (%v)", r.Summary(), time.Since(start))
	if r.Failed() {
		t.Fatalf("%s\nreplay: %s", r.Failure, r.Replay())
	}
}

var flagRates = flag.Int("dst.rates", 0, "measure each plant's catch rate over this many seeds")

func TestPlantRates(t *testing.T) {
	if *flagRates == 0 {
		t.Skip("give -dst.rates=N")
	}
	plants := Plants
	if *flagPlant != "" {
		plants = []Plant{Plant(*flagPlant)}
	}
	for _, p := range plants {
		caught := 0
		for seed := uint64(1); seed <= uint64(*flagRates); seed++ {
			r := Run(Options{Seed: seed, Plant: p})
			if r.Failed() {
				caught++
				t.Logf("%s seed %d: %s", p, seed, r.Failure)
			}
		}
		t.Logf("plant %s: caught in %d of %d seeds", p, caught, *flagRates)
	}
}

var flagSeeds = flag.Int("dst.seeds", 0, "run this many clean seeds from -dst.from (TestSeeds)")
var flagFrom = flag.Uint64("dst.from", 1, "first seed of -dst.seeds")

func TestSeeds(t *testing.T) {
	if *flagSeeds == 0 {
		t.Skip("give -dst.seeds=N")
	}
	start := time.Now()
	var sim time.Duration
	for seed := *flagFrom; seed < *flagFrom+uint64(*flagSeeds); seed++ {
		r := Run(Options{Seed: seed})
		sim += r.Simulated
		if r.Failed() {
			t.Errorf("%s\nreplay: %s", r.Summary(), r.Replay())
		}
	}
	el := time.Since(start)
	t.Logf("%d seeds in %v: %.1f seeds/min, %.1fx real time", *flagSeeds, el, float64(*flagSeeds)/el.Minutes(), sim.Seconds()/el.Seconds())
}
