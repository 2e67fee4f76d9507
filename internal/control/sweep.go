package control

import (
	"context"
	"log/slog"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/txn"
)

// The transaction sweeper: a coordinator that dies mid-transaction
// leaves parts and records unresolved in the partitions it touched. The
// leader of each partition looks for them every sweepEvery and resolves,
// through the transaction resolver (txn.Sweeper), what it has seen for at
// least sweepAge, so live coordinators finish their own work first;
// acting early would still be safe, since the resolver only aborts
// expired or decided transactions. The same round releases backup cut
// markers whose coordinator never did.
const (
	sweepEvery = time.Second
	sweepAge   = 2 * time.Second
)

// abandonedCut: a cut marker this old belongs to a backup whose
// coordinator never released it (it died); its hold ended with its lease,
// and the marker would only make restarts hold again.
const abandonedCut = time.Minute

// SweepEngine is what the sweeper asks of the replication engine
// (*raftstore.Engine).
type SweepEngine interface {
	Status() []raftstore.GroupStatus
	ScanTxn(group uint64, table byte, fn func(k, v []byte) bool) error
}

// SweepConfig is what the transaction sweeper needs from its node.
type SweepConfig struct {
	NodeID   uint64
	Engine   SweepEngine
	Resolver *txn.Resolver
	// CutMarks lists group's backup cut markers: id -> when it was cut,
	// in ms (raftstore.DataReader.CutMarks).
	CutMarks func(group uint64) (map[string]int64, error)
	Write    WriteFunc
	// Now is the node's clock, which ages cut markers.
	Now func() time.Time
	// RequestTimeout bounds a partition's sweep and each release.
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Sweeper resolves what dead transaction and backup coordinators left
// behind in the partitions this node leads.
type Sweeper struct{ cfg SweepConfig }

// NewSweeper builds the transaction sweeper; Run runs it.
func NewSweeper(cfg SweepConfig) *Sweeper { return &Sweeper{cfg: cfg} }

// Run sweeps every sweepEvery until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	sw := txn.NewSweeper(s.cfg.Resolver, sweepAge)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var led []uint64
		for _, g := range s.cfg.Engine.Status() {
			if g.Group != statemachine.MetaGroup && g.LeaderNode == s.cfg.NodeID {
				led = append(led, g.Group)
			}
		}
		for _, g := range led {
			sctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			err := sw.Sweep(sctx, g, func(table byte, fn func(k, v []byte) bool) error {
				return s.cfg.Engine.ScanTxn(g, table, fn)
			})
			cancel()
			if err != nil {
				s.cfg.Logger.Warn("transaction sweep could not read its tables", "partition", g, "err", err)
			}
			s.dropAbandonedCuts(ctx, g)
		}
		sw.Forget(led)
	}
}

// dropAbandonedCuts releases group's old cut markers (on its leader).
func (s *Sweeper) dropAbandonedCuts(ctx context.Context, group uint64) {
	marks, err := s.cfg.CutMarks(group)
	if err != nil || len(marks) == 0 {
		return
	}
	now := s.cfg.Now().UnixMilli()
	for id, at := range marks {
		if now-at < abandonedCut.Milliseconds() {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		s.cfg.Write(wctx, group, [][]byte{[]byte(statemachine.OpUncut), []byte(id)})
		cancel()
	}
}
