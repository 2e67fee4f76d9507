// Package metrics defines a node's Prometheus collectors. Each node owns a
// registry of its own (tests run several nodes in one process), passed to
// the parts that record into it.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector a node records into.
type Metrics struct {
	Registry *prometheus.Registry

	Proposals      prometheus.Counter   // raft entries proposed (each may carry many commands)
	ReadRounds     prometheus.Counter   // ReadIndex rounds issued by local leaders
	LeaseReads     prometheus.Counter   // reads served on a leader's read lease, without a round
	ProposedCmds   prometheus.Counter   // commands carried by those entries
	Commits        prometheus.Counter   // committed entries applied
	ApplyLatency   prometheus.Histogram // seconds to apply one cycle's committed entries
	FsyncLatency   prometheus.Histogram // seconds per synced Pebble commit
	CycleEntries   prometheus.Histogram // entries persisted per engine cycle (group commit width)
	LeadersHeld    prometheus.Gauge     // partitions this node leads
	Elections      prometheus.Counter   // campaigns started by local replicas
	LeaderChanges  prometheus.Counter   // leader changes seen by local replicas
	SnapshotsSent  prometheus.Counter
	SnapshotsRecv  prometheus.Counter
	Requests       *prometheus.CounterVec // by command and outcome
	Forwarded      prometheus.Counter     // requests forwarded to another node
	RequestLatency prometheus.Histogram
	// Transaction PREPAREs that waited on this leader for older
	// transactions' locks: how each wait ended, and how many wait now.
	LockWaits   *prometheus.CounterVec
	LockWaiters prometheus.Gauge
	// The edge's per-node bounds: connections it closed, by the limit
	// that closed them, and the bytes of client replies and partially
	// received commands it holds now.
	ClientsClosed *prometheus.CounterVec
	ClientReply   prometheus.Gauge
	ClientQuery   prometheus.Gauge
	// Splits, freezes and merges of partitions applied by local replicas,
	// by entry and outcome (applied, refused).
	Resizes *prometheus.CounterVec
}

// New creates a node's collectors on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kintsu", Name: name, Help: help})
		r.MustRegister(c)
		return c
	}
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		c := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kintsu", Name: name, Help: help, Buckets: buckets})
		r.MustRegister(c)
		return c
	}
	lat := prometheus.ExponentialBuckets(50e-6, 2, 18) // 50µs .. ~6.5s
	m := &Metrics{
		Registry:       r,
		Proposals:      f("raft_proposals_total", "Raft entries proposed by local leaders."),
		ProposedCmds:   f("raft_proposed_commands_total", "Client commands carried by proposed entries."),
		ReadRounds:     f("raft_read_rounds_total", "ReadIndex rounds issued by local leaders (each confirms many reads)."),
		LeaseReads:     f("lease_reads_total", "Linearizable reads served on a leader's read lease, without a round."),
		Commits:        f("raft_commits_total", "Committed raft entries applied."),
		ApplyLatency:   h("apply_seconds", "Time to apply one cycle's committed entries.", lat),
		FsyncLatency:   h("fsync_seconds", "Time of one synced storage commit.", lat),
		CycleEntries:   h("cycle_entries", "Raft entries persisted per engine cycle.", prometheus.ExponentialBuckets(1, 2, 14)),
		Elections:      f("raft_elections_total", "Elections won or started by local replicas."),
		LeaderChanges:  f("raft_leader_changes_total", "Leader changes observed by local replicas."),
		SnapshotsSent:  f("raft_snapshots_sent_total", "Raft snapshots streamed to followers."),
		SnapshotsRecv:  f("raft_snapshots_received_total", "Raft snapshots installed."),
		Forwarded:      f("forwarded_requests_total", "Requests forwarded to the partition leader's node."),
		RequestLatency: h("request_seconds", "Client command latency as seen by this node.", lat),
	}
	m.LeadersHeld = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kintsu", Name: "leaders_held", Help: "Partitions led by this node."})
	m.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kintsu", Name: "requests_total", Help: "Client commands by command and outcome."}, []string{"command", "outcome"})
	m.ClientsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kintsu", Name: "clients_closed_total", Help: "Client connections closed by a limit, by reason."}, []string{"reason"})
	m.ClientReply = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kintsu", Name: "client_reply_bytes", Help: "Bytes of replies built for clients and not yet written."})
	m.ClientQuery = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kintsu", Name: "client_query_bytes", Help: "Bytes of buffers holding large, partially received client commands."})
	m.LockWaits = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kintsu", Name: "txn_lock_waits_total", Help: "Transaction PREPAREs that waited on this leader for older transactions' locks, by how the wait ended."}, []string{"outcome"})
	m.LockWaiters = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kintsu", Name: "txn_lock_waiters", Help: "Transaction PREPAREs waiting on this leader for older transactions' locks."})
	m.Resizes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kintsu", Name: "partition_resizes_total", Help: "Partition splits, freezes (for a merge) and merges applied by local replicas, by entry and outcome."}, []string{"entry", "outcome"})
	r.MustRegister(m.LockWaits, m.LockWaiters, m.Resizes)
	r.MustRegister(m.LeadersHeld, m.Requests, m.ClientsClosed, m.ClientReply, m.ClientQuery)
	return m
}

// WatchRaftLog exports the raft log's footprint, read at each scrape:
// its segment files, their bytes, and the bytes of sealed segments that
// the group holding the oldest one keeps on disk (0 when every sealed
// segment is deletable). Call once per node.
func (m *Metrics) WatchRaftLog(segments, bytes, pinned func() float64) {
	g := func(name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kintsu", Name: name, Help: help}, fn)
	}
	m.Registry.MustRegister(
		g("raftlog_segments", "Segment files of the node's raft log.", segments),
		g("raftlog_bytes", "Bytes of the node's raft log segments.", bytes),
		g("raftlog_pinned_bytes", "Bytes of sealed raft log segments kept because the group holding the oldest one has not compacted past it.", pinned),
	)
}
