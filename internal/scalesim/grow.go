package scalesim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/ring"
)

// Growth: the split policy at scale. The cluster starts converged, with
// its partitions over equal slot ranges, and then every partition holds
// Fill split sizes of data at once (a bulk load). What runs is the
// driver's own split choice (control.PlanSplits: the largest partitions
// over the split size that are not cooling down and have no learner, up
// to control.SplitBatch at once on distinct nodes), a batch at a time as
// the driver makes them, each taking SplitRounds rounds; a split halves the partition's slot range and data, and the
// right half is born on the left's replicas and then placed like any
// partition, by its family (ring.FamilyPos, as the driver from
// api.LevelFamilies) or, with BySlot, by its own first slot (as before
// that level), and the driver moves what its target says (PlanRound)
// while the next splits run. The scenario ends when no partition is over
// the split size and every group holds its target.

// GrowConfig is a growth scenario.
type GrowConfig struct {
	Config
	// SplitSize is --split-size (default 256 MiB); Fill is how many split
	// sizes of data each partition holds after the load (default 4).
	SplitSize uint64
	Fill      float64
	// SplitRounds is how many rounds one split takes: reserve, split
	// entry applied, records written (default 2).
	SplitRounds int
	// BySlot places each partition by its own first slot, as clusters
	// below api.LevelFamilies do, instead of by its family.
	BySlot bool
	// OneAtATime splits one partition at a time, as drivers before
	// batches of splits (control.SplitBatch) did.
	OneAtATime bool
}

// GrowReport is what a growth scenario measured.
type GrowReport struct {
	Nodes, Partitions, Replicas int // at the start
	Final                       int // partitions at the end
	Splits                      int
	// Rounds until converged, and that on the simulated clock.
	Rounds  int
	SimTime time.Duration
	// Created counts the replicas the driver created placing the right
	// halves (and any partition the load cap moved meanwhile); PerSplit
	// is Created/Splits.
	Created  int
	PerSplit float64
	// MaxBytes is the largest partition at the end, in split sizes.
	MaxBytes float64
	// MaxLoad and MeanLoad: replicas per node at the end.
	MaxLoad, MeanLoad float64
	// RoundCPU and MaxRoundCPU: the driver's decisions per round (split
	// choice included), mean and worst, on the real clock.
	RoundCPU, MaxRoundCPU time.Duration
}

func (r GrowReport) String() string {
	return fmt.Sprintf("grow N=%d P=%d R=%d: %d splits to %d partitions in %d rounds (%v simulated); %d replicas created for the new halves (%.2f per split); "+
		"largest partition %.2f split sizes; replicas per node max %.0f mean %.1f; driver round %v mean, %v worst",
		r.Nodes, r.Partitions, r.Replicas, r.Splits, r.Final, r.Rounds, r.SimTime, r.Created, r.PerSplit, r.MaxBytes,
		r.MaxLoad, r.MeanLoad, r.RoundCPU.Round(time.Microsecond), r.MaxRoundCPU.Round(time.Microsecond))
}

// slotted is a partition's slot range and data in a growth scenario.
type slotted struct {
	start, end uint16
	bytes      uint64
	splitAt    int // the round its last split finished (0: none)
}

// RunGrow plays a growth scenario.
func RunGrow(cfg GrowConfig) (GrowReport, error) {
	if cfg.SplitSize == 0 {
		cfg.SplitSize = 256 << 20
	}
	if cfg.Fill == 0 {
		cfg.Fill = 4
	}
	if cfg.SplitRounds == 0 {
		cfg.SplitRounds = 2
	}
	if err := cfg.Config.defaults(); err != nil {
		return GrowReport{}, err
	}
	if cfg.Partitions > ring.SlotCount || ring.SlotCount%cfg.Partitions != 0 {
		return GrowReport{}, fmt.Errorf("scalesim: %d partitions do not divide the %d slots", cfg.Partitions, ring.SlotCount)
	}
	if cfg.Fill < 0 || cfg.SplitRounds < 1 {
		return GrowReport{}, errors.New("scalesim: bad growth")
	}
	s, err := newSlottedSim(cfg.Config)
	if err != nil {
		return GrowReport{}, err
	}
	parts := make([]slotted, cfg.Partitions)
	width := ring.SlotCount / cfg.Partitions
	for p := range parts {
		parts[p] = slotted{start: uint16(p * width), end: uint16((p+1)*width - 1), bytes: uint64(cfg.Fill * float64(cfg.SplitSize))}
	}
	rep := GrowReport{Nodes: cfg.Nodes, Partitions: cfg.Partitions, Replicas: cfg.Replicas}
	var inner Report
	var splitting []uint64 // the batch of partitions splitting
	doneAt := 0            // the round the batch finishes
	var total time.Duration
	for rep.Rounds = 1; rep.Rounds <= cfg.MaxRounds; rep.Rounds++ {
		before := inner.Created
		cpu, settled, err := s.step(&inner)
		if err != nil {
			return rep, fmt.Errorf("round %d: %w", rep.Rounds, err)
		}
		rep.Created += inner.Created - before
		if len(splitting) > 0 && rep.Rounds >= doneAt {
			for _, g := range splitting {
				right, left := halves(parts[g], rep.Rounds)
				s.split(int(g), right.start, cfg)
				parts[g] = left
				parts = append(parts, right)
				rep.Splits++
			}
			splitting = nil
		}
		began := time.Now()
		chose := false
		if len(splitting) == 0 {
			if splitting = s.planSplits(parts, cfg.SplitSize, rep.Rounds, cfg.OneAtATime); len(splitting) > 0 {
				doneAt, chose = rep.Rounds+cfg.SplitRounds, true
			}
		}
		cpu += time.Since(began)
		total += cpu
		rep.MaxRoundCPU = max(rep.MaxRoundCPU, cpu)
		if settled && len(splitting) == 0 && !chose && !overSize(parts, cfg.SplitSize) {
			rep.SimTime = time.Duration(rep.Rounds) * cfg.Every
			rep.RoundCPU = total / time.Duration(rep.Rounds)
			rep.Final = len(parts)
			if rep.Splits > 0 {
				rep.PerSplit = float64(rep.Created) / float64(rep.Splits)
			}
			for _, p := range parts {
				rep.MaxBytes = max(rep.MaxBytes, float64(p.bytes)/float64(cfg.SplitSize))
			}
			s.balance(&inner)
			rep.MaxLoad, rep.MeanLoad = inner.MaxLoad, inner.MeanLoad
			return rep, nil
		}
	}
	return rep, fmt.Errorf("scalesim: growth did not converge in %d rounds (%d splits so far)", cfg.MaxRounds, rep.Splits)
}

// newSlottedSim is a converged cluster whose partitions are placed by
// the first slot of equal slot ranges, as a cluster created with that
// many partitions is.
func newSlottedSim(cfg Config) (*sim, error) {
	starts := make([]uint64, cfg.Partitions)
	width := ring.SlotCount / cfg.Partitions
	for p := range starts {
		starts[p] = ring.SlotPos(uint16(p * width))
	}
	return newSimAt(cfg, starts)
}

// planSplits asks the driver's split choice which partitions split now
// (with oneAtATime, the first of them only, as drivers before batches).
func (s *sim) planSplits(parts []slotted, size uint64, round int, oneAtATime bool) []uint64 {
	obs := make([]control.Observed, 0, len(parts))
	recs := make([]api.PartitionRecord, len(parts))
	for g, p := range parts {
		gr := s.groups[g]
		recs[g] = api.PartitionRecord{ID: g, SlotStart: p.start, SlotEnd: p.end, Replicas: gr.voters}
		if gr.leader == 0 {
			continue
		}
		obs = append(obs, control.Observed{Group: uint64(g), State: control.GroupState{Voters: gr.voters, Learners: gr.learners, Leader: gr.leader, Bytes: p.bytes}})
	}
	cooling := func(g uint64) bool { at := parts[g].splitAt; return at != 0 && round-at < control.SplitCooldown }
	gs := control.PlanSplits(obs, &control.ClusterMap{Parts: recs}, size, cooling)
	if oneAtATime && len(gs) > 1 {
		gs = gs[:1]
	}
	return gs
}

// split makes the right half of group g a new group with g's replicas
// (a learner added meanwhile included, as the split entry's descriptor
// has it), placed afterwards by its family or first slot (cfg.BySlot).
func (s *sim) split(g int, rightStart uint16, cfg GrowConfig) {
	gr := s.groups[g]
	s.groups = append(s.groups, group{
		voters: slices.Clone(gr.voters), learners: slices.Clone(gr.learners), addedAt: slices.Clone(gr.addedAt), leader: gr.leader,
	})
	if cfg.BySlot {
		s.starts = append(s.starts, ring.SlotPos(rightStart))
	} else {
		s.starts = append(s.starts, ring.FamilyPos(rightStart, cfg.Partitions))
	}
}

// overSize reports whether a partition that could split is over size
// (one cooling down waits, and is still over).
func overSize(parts []slotted, size uint64) bool {
	for _, p := range parts {
		if p.bytes > size && p.end > p.start {
			return true
		}
	}
	return false
}

// halves splits p at the middle of its slots, as a split with no slot
// given does, each half with half the data.
func halves(p slotted, round int) (right, left slotted) {
	at := p.start + (p.end-p.start+1)/2
	left = slotted{start: p.start, end: at - 1, bytes: p.bytes / 2, splitAt: round}
	right = slotted{start: at, end: p.end, bytes: p.bytes - p.bytes/2, splitAt: round}
	return right, left
}
