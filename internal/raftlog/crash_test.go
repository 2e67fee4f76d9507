package raftlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
)

// diff reports the first difference between l and m, or nil.
func diff(l *Log, m model) error {
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range m {
			if !yield(id) {
				return
			}
		}
	})
	if got := l.Groups(); !slices.Equal(got, ids) {
		return fmt.Errorf("groups %v, want %v", got, ids)
	}
	for _, id := range ids {
		g := m[id]
		hs, err := l.HardState(id)
		if err != nil || (hardState{hs.GetTerm(), hs.GetVote(), hs.GetCommit()}) != g.hs {
			return fmt.Errorf("group %d hard state %v, want %+v", id, hs, g.hs)
		}
		first, _ := l.FirstIndex(id)
		last, _ := l.LastIndex(id)
		if first != g.ci+1 || last != g.last() {
			return fmt.Errorf("group %d log [%d, %d], want [%d, %d]", id, first, last, g.ci+1, g.last())
		}
		if t, err := l.Term(id, g.ci); err != nil || t != g.ct {
			return fmt.Errorf("group %d compacted term %d %v, want %d", id, t, err, g.ct)
		}
		if len(g.ents) == 0 {
			continue
		}
		es, err := l.Entries(id, g.ci+1, g.last()+1, math.MaxUint64)
		if err != nil || !entsEqual(es, g.ents) {
			return fmt.Errorf("group %d entries differ (%d read, err %v; want %d)", id, len(es), err, len(g.ents))
		}
	}
	return nil
}

type crashMode struct {
	name             string
	torn, corruption float64
}

var crashModes = []crashMode{
	{"synced-only", 0, 0},
	{"torn", 1, 0},
	{"torn-corrupt", 1, 0.7},
	{"mixed", 0.5, 0.3},
}

// TestPowerLoss commits random batches (some synced, some failing on an
// injected fsync error or a full disk), crashes the simulated disk, and
// checks that the recovered log is exactly the state after some commit no
// older than the last synced one: every synced batch is there, no batch is
// half there.
func TestPowerLoss(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 12
	}
	for _, mode := range crashModes {
		t.Run(mode.name, func(t *testing.T) {
			var c crashCounts
			for seed := range uint64(seeds) {
				powerLoss(t, mode, seed, &c)
			}
			t.Logf("%+v", c)
			// The test is only as good as the cases it reaches.
			if c.someUnsynced == 0 || c.lostUnsynced == 0 {
				t.Fatalf("no crash kept (%d) or lost (%d) unsynced commits", c.someUnsynced, c.lostUnsynced)
			}
			if mode.torn > 0 && (c.tornWarns == 0 || c.keptPartOfTail == 0) {
				t.Fatalf("torn tails never cut (%d) or never kept an unsynced commit (%d)", c.tornWarns, c.keptPartOfTail)
			}
		})
	}
}

type crashCounts struct {
	rounds, someUnsynced, lostUnsynced, keptPartOfTail, tornWarns int
}

func powerLoss(t *testing.T, mode crashMode, seed uint64, c *crashCounts) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fs := simfs.New(0)
	opts := smallOpts()
	if seed%4 == 0 {
		opts.SegmentSize = 1 << 20
	}
	warns := &countHandler{}
	opts.Logger = slog.New(warns)
	l := open(t, fs, opts)
	g := &gen{rng: rng, term: 1, groups: 1 + int(seed%4)}
	// states[0] is the state every synced commit reached; the later ones
	// are those of the unsynced commits after it, in order.
	states := []model{{}}
	for round := range 12 {
		ctx := fmt.Sprintf("%s seed %d round %d", mode.name, seed, round)
		broken := false
		for range rng.IntN(25) { // none: a crash right after a recovery
			b, next := g.batch(states[len(states)-1])
			sync := rng.IntN(3) == 0
			fault := rng.IntN(40)
			switch {
			case fault == 0 && sync:
				fs.FailNextSyncs(1)
			case fault == 1:
				fs.SetFull(true)
			}
			err := l.Commit(b, sync)
			fs.FailNextSyncs(0)
			fs.SetFull(false)
			switch {
			case broken && err == nil:
				t.Fatalf("%s: Commit succeeded after a failure", ctx)
			case err != nil && (broken || simfs.IsInjected(err)):
				// The batch may or may not have reached the disk; a failed
				// fsync is not a promise either way.
				if !broken {
					states = append(states, next)
				}
				broken = true
			case err != nil:
				t.Fatalf("%s: Commit: %v", ctx, err)
			case sync:
				states = []model{next}
			default:
				states = append(states, next)
			}
		}
		crashed := fs.Crash(simfs.CrashOptions{Rand: rng, TornProb: mode.torn, CorruptProb: mode.corruption})
		l.Close()
		fs = crashed
		l = open(t, fs, opts)
		found := -1
		var why error
		for i := len(states) - 1; i >= 0; i-- {
			if why = diff(l, states[i]); why == nil {
				found = i
				break
			}
		}
		if found < 0 {
			t.Fatalf("%s: recovered log matches no state since the last synced commit (%d candidates); vs the synced one: %v",
				ctx, len(states), diff(l, states[0]))
		}
		c.rounds++
		if len(states) > 1 {
			c.someUnsynced++
			if found < len(states)-1 {
				c.lostUnsynced++
			}
			if found > 0 && found < len(states)-1 {
				c.keptPartOfTail++
			}
		}
		states = []model{states[found]}
		check(t, l, states[0], rng, ctx)
	}
	l.Close()
	c.tornWarns += int(warns.n.Load())
}

// countHandler counts WARN records.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestFailedSyncSticks: after a failed fsync, no commit succeeds until the
// log is reopened, and reads keep working.
func TestFailedSyncSticks(t *testing.T) {
	fs := simfs.New(0)
	l := open(t, fs, smallOpts())
	defer l.Close()
	b := l.NewBatch()
	b.Append(1, []*pbEntry{ent(1, 1, []byte("a"))})
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	fs.FailNextSyncs(1)
	b = l.NewBatch()
	b.Append(1, []*pbEntry{ent(2, 1, []byte("b"))})
	if err := l.Commit(b, true); !errors.Is(err, simfs.ErrInjectedSync) {
		t.Fatalf("Commit with a failing fsync: %v", err)
	}
	if !errors.Is(l.Err(), simfs.ErrInjectedSync) {
		t.Fatalf("Err after a failed fsync: %v", l.Err())
	}
	b = l.NewBatch()
	b.SetHardState(1, hsOf(1, 0, 1))
	if err := l.Commit(b, false); err == nil {
		t.Fatal("Commit after a failed fsync succeeded")
	}
	if es, err := l.Entries(1, 1, 2, math.MaxUint64); err != nil || len(es) != 1 {
		t.Fatalf("read after a failed fsync: %v %v", es, err)
	}
}
