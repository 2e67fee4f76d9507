package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/scalesim"
)

// runScaleSim is `kintsu sim scale`: the placement driver, liveness and
// the ring against a simulated cluster of many nodes (internal/scalesim).
func runScaleSim(args []string) int {
	fs := flag.NewFlagSet("sim scale", flag.ContinueOnError)
	nodes := fs.Int("nodes", 1000, "simulated nodes")
	parts := fs.Int("partitions", 100_000, "simulated partitions")
	replicas := fs.Int("replicas", 3, "replicas per partition")
	dead := fs.Duration("dead-timeout", time.Minute, "how long a silent node waits before it is dead")
	catchUp := fs.Int("catch-up", 2, "rounds a new replica takes to catch up")
	changes := fs.String("changes", "join,die,decommission", "the scenarios, each from the converged cluster: join, die, decommission, grow (a bulk load of --fill split sizes into every partition; --partitions must divide 16384)")
	fill := fs.Float64("fill", 4, "grow: the data each partition holds after the load, in split sizes")
	splitRounds := fs.Int("split-rounds", 2, "grow: rounds one split takes")
	bySlot := fs.Bool("by-slot", false, "grow: place each partition by its own first slot, as clusters below level 2 do, instead of by its family")
	oneAtATime := fs.Bool("one-at-a-time", false, "grow: split one partition at a time, as drivers before batches did")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "kintsu sim scale: the placement driver against a simulated cluster of many nodes (see docs/benchmarks.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	failed := false
	for _, ch := range strings.Split(*changes, ",") {
		cfg := scalesim.Config{Nodes: *nodes, Partitions: *parts, Replicas: *replicas, Dead: *dead, CatchUp: *catchUp}
		var rep fmt.Stringer
		var err error
		if ch == "grow" {
			rep, err = scalesim.RunGrow(scalesim.GrowConfig{Config: cfg, Fill: *fill, SplitRounds: *splitRounds, BySlot: *bySlot, OneAtATime: *oneAtATime})
		} else {
			rep, err = scalesim.Run(cfg, scalesim.Change(ch))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "kintsu sim scale: %s: %v\n", ch, err)
			failed = true
			continue
		}
		fmt.Println(rep)
	}
	if failed {
		return 1
	}
	return 0
}
