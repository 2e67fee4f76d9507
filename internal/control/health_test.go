package control

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Every verdict of Judge, from facts alone. The old readiness (every
// partition has a local leader or a cached hint, and no engine error)
// said ready in the rows marked "was ready".
func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fresh, stale := now.Add(-time.Second), now.Add(-time.Minute)
	base := func() HealthFacts {
		return HealthFacts{
			Now: now, LastCycle: now.Add(-20 * time.Millisecond), StallAfter: 5 * time.Second, QuorumWindow: 3 * time.Second,
			Parts: []PartFacts{
				{ID: 0, LocalLeader: 1},                                   // led here or by a peer this replica hears
				{ID: 1, LocalLeader: 2, Confirmed: 3, ConfirmedAt: stale}, // the local replica knows best
				{ID: 2, Confirmed: 3, ConfirmedAt: fresh},                 // not hosted: a peer said so a second ago
			},
		}
	}
	for _, c := range []struct {
		what            string
		change          func(*HealthFacts)
		notLive, notRdy []string
		removed, wasRdy bool
	}{
		{what: "healthy", change: func(*HealthFacts) {}, wasRdy: true},
		{what: "engine stopped", change: func(f *HealthFacts) { f.EngineErr = errors.New("pebble: /data/000042.log: no space left") },
			notLive: []string{"engine stopped on a fatal error (see the node's log)"},
			notRdy:  []string{"engine stopped on a fatal error (see the node's log)"}},
		{what: "loop frozen in a disk write (was ready)", change: func(f *HealthFacts) { f.LastCycle = now.Add(-12 * time.Second) },
			notLive: []string{"engine loop stalled for 12s"}, notRdy: []string{"engine loop stalled for 12s"}, wasRdy: true},
		{what: "loop slow but within bounds", change: func(f *HealthFacts) { f.LastCycle = now.Add(-4 * time.Second) }, wasRdy: true},
		{what: "loop stalled briefly past the bound", change: func(f *HealthFacts) { f.LastCycle = now.Add(-5300 * time.Millisecond) },
			notLive: []string{"engine loop stalled for 5.3s"}, notRdy: []string{"engine loop stalled for 5.3s"}, wasRdy: true},
		{what: "disk almost full (was ready)", change: func(f *HealthFacts) {
			f.DiskFull = "disk almost full on node 1 (12 MiB free, reserve 1024 MiB): writes refused until space is freed"
		}, notRdy: []string{"disk almost full on node 1 (12 MiB free, reserve 1024 MiB): writes refused until space is freed"}, wasRdy: true},
		{what: "loop not started", change: func(f *HealthFacts) { f.LastCycle = time.Time{} },
			notRdy: []string{"engine loop not started"}, wasRdy: true},
		{what: "removed (was ready)", change: func(f *HealthFacts) { f.Removed = true; f.Parts[2].ConfirmedAt = stale },
			notRdy: []string{"node removed from the cluster"}, removed: true, wasRdy: true},
		{what: "stale hint for a partition hosted elsewhere (was ready)", change: func(f *HealthFacts) { f.Parts[2].ConfirmedAt = stale },
			notRdy: []string{"partition 2 has no leader with a quorum"}, wasRdy: true},
		{what: "local replica lost its leader, a peer confirmed one", change: func(f *HealthFacts) {
			f.Parts[1] = PartFacts{ID: 1, Confirmed: 2, ConfirmedAt: fresh}
		}, wasRdy: true},
		{what: "local replica lost its leader, only a stale hint (was ready)", change: func(f *HealthFacts) {
			f.Parts[0] = PartFacts{ID: 0, Confirmed: 2, ConfirmedAt: stale}
			f.Parts[1] = PartFacts{ID: 1, Confirmed: 2, ConfirmedAt: stale}
		}, notRdy: []string{"partitions 0, 1 have no leader with a quorum"}, wasRdy: true},
		{what: "confirmed exactly at the window's edge", change: func(f *HealthFacts) { f.Parts[2].ConfirmedAt = now.Add(-3 * time.Second) }, wasRdy: true},
		{what: "never confirmed", change: func(f *HealthFacts) { f.Parts[2] = PartFacts{ID: 2} },
			notRdy: []string{"partition 2 has no leader with a quorum"}},
		{what: "frozen and without quorum: both said, liveness first", change: func(f *HealthFacts) {
			f.LastCycle = now.Add(-90 * time.Second)
			f.Parts[0].LocalLeader = 0
		}, notLive: []string{"engine loop stalled for 1m30s"}, notRdy: []string{"engine loop stalled for 1m30s", "partition 0 has no leader with a quorum"}},
		{what: "many partitions lost: ten named, the rest counted", change: func(f *HealthFacts) {
			f.Parts = nil
			for i := range 64 {
				f.Parts = append(f.Parts, PartFacts{ID: i, Confirmed: 1, ConfirmedAt: stale})
			}
		}, notRdy: []string{"partitions 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 54 more have no leader with a quorum"}, wasRdy: true},
	} {
		f := base()
		c.change(&f)
		h := Judge(f)
		if !slices.Equal(h.NotLive, c.notLive) || !slices.Equal(h.NotReady, c.notRdy) || h.Removed != c.removed {
			t.Errorf("%s: got live %q ready %q removed %v; want live %q ready %q removed %v", c.what, h.NotLive, h.NotReady, h.Removed, c.notLive, c.notRdy, c.removed)
		}
		if h.Live() != (len(c.notLive) == 0) || h.Ready() != (len(c.notRdy) == 0) {
			t.Errorf("%s: Live %v Ready %v disagree with the reasons", c.what, h.Live(), h.Ready())
		}
		if got := oldReady(f); got != c.wasRdy {
			t.Errorf("%s: the old rule says ready=%v, the table says %v", c.what, got, c.wasRdy)
		}
	}
}

// The lost partitions are listed in full for the status page, though the
// words name only the first ten.
func TestJudgeListsLostPartitions(t *testing.T) {
	now := time.Now()
	f := HealthFacts{Now: now, LastCycle: now, StallAfter: time.Second, QuorumWindow: time.Second}
	for i := range 12 {
		f.Parts = append(f.Parts, PartFacts{ID: i, LocalLeader: uint64(i % 2)})
	}
	if h := Judge(f); !slices.Equal(h.Lost, []int{0, 2, 4, 6, 8, 10}) {
		t.Fatalf("lost %v", h.Lost)
	}
	f.Removed = true
	if h := Judge(f); h.Lost != nil {
		t.Fatalf("a removed node lists lost partitions %v", h.Lost)
	}
}

// oldReady is the rule Judge replaces: no engine error, and every
// partition has a local leader or any cached hint, however old.
func oldReady(f HealthFacts) bool {
	if f.EngineErr != nil {
		return false
	}
	for _, p := range f.Parts {
		if p.LocalLeader == 0 && p.Confirmed == 0 {
			return false
		}
	}
	return true
}

// A partition whose replica here is being rebuilt (quarantined) is named,
// and does not make the node unready: its requests are forwarded.
func TestJudgeNamesRebuilding(t *testing.T) {
	now := time.Now()
	h := Judge(HealthFacts{Now: now, LastCycle: now, StallAfter: time.Second, QuorumWindow: time.Second,
		Parts: []PartFacts{{ID: 3, Confirmed: 2, ConfirmedAt: now}}, Rebuilding: []int{3}})
	if !h.Ready() || !slices.Equal(h.Rebuilding, []int{3}) {
		t.Fatalf("verdict %+v", h)
	}
}
