package control

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// Leadership balance. Elections after failures and restarts leave some
// nodes leading many partitions and others few, and a leader does all of a
// partition's work (proposals, ReadIndex, fsync first). Each node
// periodically hands one of its leaderships to a replica node that leads at
// least two fewer partitions, so in steady state every node leads within
// one of P/N partitions. Each node only gives its own leaderships away, one
// per round, and only to a fully caught-up replica (raftstore
// TransferGroupLeader), so moves never pile up on one partition and a
// hand-over holds proposals up only briefly.

// DefaultBalanceEvery is how often a node considers one move.
const DefaultBalanceEvery = 5 * time.Second

// balanceBurst is the pause after a move, when the next is considered
// sooner than Every: a node back from a restart leads nothing, and one
// move per node every five seconds took a minute to even a cluster of 64
// partitions out. Still one move at a time per node, and longer than the
// second the nodes wait before redirecting cluster clients to a new
// leader (edge's movedSettle): at half a second, leaderships moved faster
// than the nodes' views settled, and a go-redis client bounced between
// redirects until it gave up (2 of 10,000 requests in CI).
const balanceBurst = 1500 * time.Millisecond

// partitionLead is one partition's replicas and believed leader.
type partitionLead struct {
	group    uint64
	replicas []uint64
	leader   uint64 // 0: unknown
	hot      bool   // it applies writes at a rate the driver may move its leader for (leaderload.go)
}

// planLeaderMove picks the leadership node me should hand over now, if
// any: of the partitions it leads, one whose least-loaded replica leads
// at least two fewer partitions than me (a cold partition before a hot
// one, whose leader the driver places by load; then the least loaded such
// replica, then the lowest partition). Nothing moves while some partition
// has no known leader: the cluster is still settling.
func planLeaderMove(me uint64, nodes []uint64, parts []partitionLead) (group, to uint64, ok bool) {
	hot := false // the pick's
	count := map[uint64]int{}
	for _, id := range nodes {
		count[id] = 0
	}
	for _, p := range parts {
		if p.leader == 0 {
			return 0, 0, false
		}
		count[p.leader]++
	}
	for _, p := range parts {
		if p.leader != me {
			continue
		}
		for _, r := range p.replicas {
			if _, up := count[r]; !up || r == me || count[me]-count[r] < 2 {
				// (Not up: suspect, dead, draining, or stopping: a
				// leadership handed there would stall or move again.)
				continue
			}
			better := !ok || !p.hot && hot ||
				p.hot == hot && (count[r] < count[to] || count[r] == count[to] && p.group < group)
			if better {
				group, to, hot, ok = p.group, r, p.hot, true
			}
		}
	}
	return group, to, ok
}

// BalanceEngine is what the balancer asks of the replication engine
// (*raftstore.Engine).
type BalanceEngine interface {
	GroupStatus(group uint64) (raftstore.GroupStatus, bool)
	TransferGroupLeader(group, to uint64)
}

// BalanceConfig is what the leadership balancer needs from its node.
type BalanceConfig struct {
	NodeID uint64
	// Every is the period between moves; <= 0 disables balancing.
	Every  time.Duration
	Engine BalanceEngine
	// LeaderOf is the node believed to lead group, 0 if unknown
	// (route.Router.LeaderOf).
	LeaderOf func(group uint64) uint64
	Map      *Map
	// Nodes is the node registry with liveness derived.
	Nodes  func() []api.NodeRecord
	Logger *slog.Logger
}

// Balancer is the leadership balancer.
type Balancer struct {
	cfg   BalanceConfig
	every atomic.Int64 // ns; read every round, so SetEvery takes effect at the next
	mu    sync.Mutex
	away  map[uint64]time.Time // nodes that said they are stopping, until when
	// seen is each local replica's applied-command count when the last
	// round looked, for its rate (balanceOnce's alone).
	seen map[uint64]writesSeen
}

type writesSeen struct {
	writes uint64
	at     time.Time
}

// awayFor bounds how long a node that said it is stopping is kept from
// leadership without saying it is back (a notice lost, or a node that
// never returned): then it is judged by its heartbeats alone.
const awayFor = time.Minute

// SetAway records that node is stopping (away) or serving again: a
// stopping node hands its leaderships away, and the balancer must not
// hand them back meanwhile (it leads none, so it looks the least
// loaded).
func (b *Balancer) SetAway(node uint64, away bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.away == nil {
		b.away = map[uint64]time.Time{}
	}
	if away {
		b.away[node] = time.Now().Add(awayFor)
	} else {
		delete(b.away, node)
	}
}

// IsAway reports whether node said it is stopping (and has not said it
// is back, nor been away longer than awayFor).
func (b *Balancer) IsAway(node uint64) bool { return b.isAway(node, time.Now()) }

func (b *Balancer) isAway(node uint64, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.away[node]
	return ok && now.Before(until)
}

// NewBalancer builds the leadership balancer; Run runs it.
func NewBalancer(cfg BalanceConfig) *Balancer {
	b := &Balancer{cfg: cfg}
	b.SetEvery(cfg.Every)
	return b
}

// SetEvery changes the period from the next round on (<= 0: off).
func (b *Balancer) SetEvery(d time.Duration) { b.every.Store(int64(d)) }

// Run considers one move a round until ctx ends; after a move, the
// next round comes sooner (balanceBurst).
func (b *Balancer) Run(ctx context.Context) {
	moved := false
	for {
		every := time.Duration(b.every.Load())
		if every <= 0 {
			every = time.Second // disabled: look again later
		}
		if moved {
			every = min(every, balanceBurst)
		}
		// Jitter keeps nodes from deciding on the same stale counts at once.
		t := time.NewTimer(time.Duration(float64(every) * (0.8 + 0.4*rand.Float64())))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if b.every.Load() <= 0 {
			moved = false
			continue
		}
		moved = b.balanceOnce()
	}
}

// balanceOnce hands over one leadership if planLeaderMove finds one, and
// reports whether it did.
func (b *Balancer) balanceOnce() bool {
	m := b.cfg.Map.Current()
	var nodes []uint64
	now := time.Now()
	for _, rec := range b.cfg.Nodes() {
		if rec.State == api.NodeUp && !b.isAway(rec.ID, now) {
			nodes = append(nodes, rec.ID)
		}
	}
	parts := make([]partitionLead, 0, len(m.Parts))
	seen := make(map[uint64]writesSeen, len(m.Parts))
	for _, p := range m.Parts {
		g := uint64(p.ID)
		st, ok := b.cfg.Engine.GroupStatus(g)
		reps := p.Replicas
		hot := false
		if ok {
			reps = st.Nodes // voters only: a learner cannot lead
			seen[g] = writesSeen{st.Writes, now}
			if s, was := b.seen[g]; was && st.Writes >= s.writes && now.After(s.at) {
				hot = float64(st.Writes-s.writes)/now.Sub(s.at).Seconds() >= hotRate
			}
		}
		parts = append(parts, partitionLead{group: g, replicas: reps, leader: b.cfg.LeaderOf(g), hot: hot})
	}
	b.seen = seen
	g, to, ok := planLeaderMove(b.cfg.NodeID, nodes, parts)
	if ok {
		b.cfg.Logger.Info("moving leadership to balance load", "partition", g, "to", to)
		b.cfg.Engine.TransferGroupLeader(g, to)
	}
	return ok
}
