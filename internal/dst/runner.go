package dst

import (
	"fmt"
	"strings"
	"time"
)

// Divergence says where two runs of one seed parted.
type Divergence struct {
	Seed uint64
	// Step is the first step whose trace hash differs (1-based), and
	// A and B that step's trace lines in each run.
	Step int
	A, B string
}

func (d *Divergence) String() string {
	return fmt.Sprintf("seed %d is not deterministic: the runs part at step %d\n  run 1: %s\n  run 2: %s", d.Seed, d.Step, d.A, d.B)
}

// FirstDivergence compares two runs' checkpoints and, when they differ,
// runs the seed's window again (twice, with traces) to name the first
// differing step. Nil when the two agree.
func FirstDivergence(a, b *Result, again func(traceFrom int) *Result) *Divergence {
	if a.Hash == b.Hash && a.Steps == b.Steps {
		return nil
	}
	from := 0
	for i := range min(len(a.Checkpoints), len(b.Checkpoints)) {
		if a.Checkpoints[i] != b.Checkpoints[i] {
			break
		}
		from = (i + 1) * CheckpointEvery
	}
	ra, rb := again(from), again(from)
	d := &Divergence{Seed: a.Seed, Step: -1}
	for i := range max(len(ra.Trace), len(rb.Trace)) {
		la, lb := line(ra.Trace, i), line(rb.Trace, i)
		if la != lb {
			d.Step, d.A, d.B = from+i, la, lb
			return d
		}
	}
	// The re-runs agreed with each other: the difference came from the
	// process (its first run, or the other process's).
	d.Step, d.A, d.B = from, fmt.Sprintf("hash %016x after %d steps", a.Hash, a.Steps), fmt.Sprintf("hash %016x after %d steps", b.Hash, b.Steps)
	return d
}

func line(tr []string, i int) string {
	if i < len(tr) {
		return tr[i]
	}
	return "(no step)"
}

// Summary adds up many runs.
type Summary struct {
	Seeds, Failed, Diverged int
	Simulated, Elapsed      time.Duration
	Faults                  map[string]int
	Failures                []string
}

// Add counts one run.
func (s *Summary) Add(r *Result) {
	if s.Faults == nil {
		s.Faults = map[string]int{}
	}
	s.Seeds++
	s.Simulated += r.Simulated
	for k, v := range r.Faults {
		s.Faults[k] += v
	}
	if r.Failed() {
		s.Failed++
		s.Failures = append(s.Failures, fmt.Sprintf("seed %d: %s\n  replay: %s", r.Seed, r.Failure, r.Replay()))
	}
}

func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d seeds, %.2f simulated hours in %v", s.Seeds, s.Simulated.Hours(), s.Elapsed.Round(time.Second))
	if s.Elapsed > 0 {
		fmt.Fprintf(&b, " (%.1fx real time)", s.Simulated.Seconds()/s.Elapsed.Seconds())
	}
	fmt.Fprintf(&b, "\nfailed: %d, not deterministic: %d\nfaults:", s.Failed, s.Diverged)
	for _, k := range sortedStrings(s.Faults) {
		fmt.Fprintf(&b, " %s=%d", k, s.Faults[k])
	}
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "\n%s", f)
	}
	return b.String()
}
