package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// What an on-call engineer asks of one node, read at each scrape from
// what the node already holds (the engine's published status, its
// cluster map and registry, its health verdict, Pebble's metrics): no
// counter to keep in step, no network call, so a scrape answers even
// when every peer is silent. Partition series carry the label
// "partition", as ctl and /v1/status name them.

// BuildCommit is the commit the binary was built from, when its linker
// was told (cmd/kintsu sets it); else the Go toolchain's VCS stamp.
var BuildCommit string

var (
	descBuild = prometheus.NewDesc("kintsu_build_info", "Always 1: the version, commit and Go version of this node's binary.", []string{"version", "commit", "go_version"}, nil)
	descReady = prometheus.NewDesc("kintsu_ready", "1 when the node is ready to serve clients (its /readyz), else 0.", nil, nil)
	descLead  = prometheus.NewDesc("kintsu_partition_leader", "1 where this node's replica of the partition leads, 0 where it follows.", []string{"partition"}, nil)
	descTerm  = prometheus.NewDesc("kintsu_partition_term", "Raft term of this node's replica of the partition.", []string{"partition"}, nil)
	descApp   = prometheus.NewDesc("kintsu_partition_applied_index", "Last log index applied by this node's replica.", []string{"partition"}, nil)
	descComm  = prometheus.NewDesc("kintsu_partition_commit_index", "Last log index this node's replica knows committed; minus the applied index, its apply lag.", []string{"partition"}, nil)
	descKeys  = prometheus.NewDesc("kintsu_partition_keys", "Keys in the partition, reported by its leader only (an upper bound after blind writes until counted).", []string{"partition"}, nil)
	descBytes = prometheus.NewDesc("kintsu_partition_disk_bytes", "Disk space of the partition's data in this node's store, as Pebble estimates it; reported by its leader only.", []string{"partition"}, nil)
	descLost  = prometheus.NewDesc("kintsu_partitions_leaderless", "Partitions with no leader holding a quorum, as this node sees them.", nil, nil)
	descUnder = prometheus.NewDesc("kintsu_partitions_under_replicated", "Partitions with fewer voters on up nodes than the replica count.", nil, nil)
	descNodes = prometheus.NewDesc("kintsu_nodes", "Nodes of the cluster by state, as this node sees them.", []string{"state"}, nil)
	descConns = prometheus.NewDesc("kintsu_connected_clients", "Client connections this node holds.", nil, nil)
	descDisk  = prometheus.NewDesc("kintsu_storage_disk_bytes", "Disk space the node's Pebble store uses.", nil, nil)
	descDebt  = prometheus.NewDesc("kintsu_storage_compaction_debt_bytes", "Bytes Pebble estimates it must compact to reach a stable shape.", nil, nil)

	descCmd      = prometheus.NewDesc("kintsu_command_seconds", "Time of client commands in this node, by command (LATENCY HISTOGRAM's buckets: powers of two microseconds).", []string{"command"}, nil)
	descCmdErr   = prometheus.NewDesc("kintsu_command_errors_total", "Error replies by command and error code: refused (NOAUTH, NOPERM, arity, OOM, CROSSSLOT...), redirected (MOVED) or failed. A name Kintsu does not know counts under the name sent (the first 64; then (other)).", []string{"command", "code"}, nil)
	descTxn      = prometheus.NewDesc("kintsu_transactions_total", "Transactions coordinated by this node (MULTI/EXEC, commands across partitions), by how they ended.", []string{"outcome"}, nil)
	descConflict = prometheus.NewDesc("kintsu_transaction_conflicts_total", "Transaction attempts that met other transactions' locks and retried.", nil, nil)
	descLag      = prometheus.NewDesc("kintsu_partition_follower_lag_entries", "Raft entries a follower's log is behind, reported by the partition's leader.", []string{"partition", "node"}, nil)
	descPending  = prometheus.NewDesc("kintsu_raft_pending_requests", "Proposals and linearizable reads waiting for the raft log on this node.", nil, nil)
	descAdding   = prometheus.NewDesc("kintsu_replicas_being_added", "Replicas being added (learners catching up): placement moving or restoring replicas.", nil, nil)
	descOffset   = prometheus.NewDesc("kintsu_peer_clock_offset_seconds", "A peer's clock minus this node's, estimated from a probe every 10 s (good to half the round trip).", []string{"node"}, nil)
	descRTT      = prometheus.NewDesc("kintsu_peer_rtt_seconds", "Round trip of the last clock probe to a peer.", []string{"node"}, nil)
	descReach    = prometheus.NewDesc("kintsu_peer_reachable", "1 when a peer answered the last probe (within a second), else 0.", []string{"node"}, nil)
	descBackup   = prometheus.NewDesc("kintsu_backup_partitions_streamed_total", "Backup partition streams this node served, by result.", []string{"result"}, nil)
	descBackupB  = prometheus.NewDesc("kintsu_backup_bytes_streamed_total", "Bytes of backup streams this node served.", nil, nil)
	descRestore  = prometheus.NewDesc("kintsu_restore_steps_total", "Restore steps (begin, a chunk of records, end) this node served, by result.", []string{"result"}, nil)
)

// allDescs are the collector's series.
var allDescs = []*prometheus.Desc{descBuild, descReady, descLead, descTerm, descApp, descComm, descKeys, descBytes, descLost, descUnder, descNodes, descConns, descDisk, descDebt,
	descCmd, descCmdErr, descTxn, descConflict, descLag, descPending, descAdding, descOffset, descRTT, descReach, descBackup, descBackupB, descRestore}

// scrapeWait bounds what a scrape waits for from the replication loop.
const scrapeWait = time.Second

// scrapeFresh: what costs the node work to read (the followers' lags, on
// the replication loop; each partition's disk bytes, from Pebble) is read
// at most this often, however often /metrics — open to anyone — is asked.
const scrapeFresh = 5 * time.Second

// scrapeCache holds those readings between scrapes.
type scrapeCache struct {
	mu      sync.Mutex
	lagsAt  time.Time
	lags    []raftstore.FollowerLag
	bytesAt time.Time
	bytes   map[uint64]uint64
}

func (c *scrapeCache) followerLags(n *Node) []raftstore.FollowerLag {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.lagsAt) >= scrapeFresh {
		ctx, cancel := context.WithTimeout(n.ctx, scrapeWait)
		c.lags, c.lagsAt = n.eng.FollowerLags(ctx), time.Now()
		cancel()
	}
	return c.lags
}

func (c *scrapeCache) partitionBytes(n *Node, group uint64) (uint64, bool) {
	if n.db == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.bytesAt) >= scrapeFresh {
		c.bytes, c.bytesAt = map[uint64]uint64{}, time.Now()
	}
	b, ok := c.bytes[group]
	if !ok {
		lo, hi := storage.DataSpan(group)
		var err error
		if b, err = n.db.EstimateDiskUsage(lo, hi); err != nil {
			return 0, false
		}
		c.bytes[group] = b
	}
	return b, true
}

type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descBuild, 1, api.Version, buildCommit(), runtime.Version())
	h := n.Health()
	gauge(descReady, boolGauge(h.Ready()))
	gauge(descLost, float64(len(h.Lost)))
	for _, g := range n.eng.Status() {
		if g.Group == statemachine.MetaGroup {
			continue
		}
		p := strconv.FormatUint(g.Group, 10)
		leads := g.LeaderNode == n.cfg.NodeID
		gauge(descLead, boolGauge(leads), p)
		gauge(descTerm, float64(g.Term), p)
		gauge(descApp, float64(g.AppliedIndex), p)
		gauge(descComm, float64(g.CommitIndex), p)
		if leads {
			gauge(descKeys, float64(g.Keys), p)
			if b, ok := n.scrapes.partitionBytes(n, g.Group); ok {
				gauge(descBytes, float64(b), p)
			}
		}
	}
	nodes := n.registry.Nodes()
	members := 0
	up := map[uint64]bool{}
	states := map[string]int{api.NodeUp: 0, api.NodeSuspect: 0, api.NodeDead: 0, api.NodeDraining: 0, api.NodeRemoved: 0}
	for _, rec := range nodes {
		states[rec.State]++
		up[rec.ID] = rec.State == api.NodeUp
		if rec.State != api.NodeRemoved {
			members++
		}
	}
	for s, k := range states {
		gauge(descNodes, float64(k), s)
	}
	under := 0
	for _, p := range n.view().Parts {
		live := 0
		for _, r := range p.Replicas {
			if up[r] {
				live++
			}
		}
		if want := min(n.layout.Ident.Replicas, members); live < want {
			under++
		}
	}
	gauge(descUnder, float64(under))
	if n.front != nil {
		gauge(descConns, float64(n.front.ConnectedClients()))
	}
	if n.db != nil {
		m := n.db.Metrics()
		gauge(descDisk, float64(m.DiskSpaceUsage()))
		gauge(descDebt, float64(m.Compact.EstimatedDebt))
	}
	adding := 0
	for _, p := range n.view().Parts {
		adding += len(p.Learners)
	}
	gauge(descAdding, float64(adding))
	c.collectActivity(ch)
}

// collectActivity exports what the node's parts count as they work:
// commands, errors, transactions, replication, clocks, backups.
func (c nodeCollector) collectActivity(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if n.front != nil {
		for _, h := range n.front.LatencyHistograms() {
			buckets := make(map[float64]uint64, len(h.Cumulative))
			for i, cum := range h.Cumulative {
				buckets[edge.LatencyBucketBound(i).Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(descCmd, h.Calls, h.Sum.Seconds(), buckets, h.Command)
		}
		for _, e := range n.front.ErrorCounts() {
			counter(descCmdErr, float64(e.Count), e.Command, e.Code)
		}
	}
	if n.txns != nil {
		st := n.txns.Stats()
		counter(descTxn, float64(st.Committed), "committed")
		counter(descTxn, float64(st.WatchFailed), "watch_failed")
		counter(descTxn, float64(st.Failed), "failed")
		counter(descTxn, float64(st.GaveUp), "gave_up")
		counter(descConflict, float64(st.Conflicts))
	}
	for _, l := range n.scrapes.followerLags(n) {
		if l.Group != statemachine.MetaGroup {
			gauge(descLag, float64(l.Entries), strconv.FormatUint(l.Group, 10), strconv.FormatUint(l.Node, 10))
		}
	}
	gauge(descPending, float64(n.eng.Pending()))
	for id, pc := range n.clocks.snapshot() {
		node := strconv.FormatUint(id, 10)
		gauge(descReach, boolGauge(pc.reachable), node)
		if pc.reachable {
			gauge(descOffset, pc.offset.Seconds(), node)
			gauge(descRTT, pc.rtt.Seconds(), node)
		}
	}
	if n.admin != nil {
		b := n.admin.BackupStats()
		counter(descBackup, float64(b.PartitionsStreamed), "ok")
		counter(descBackup, float64(b.StreamsFailed), "failed")
		counter(descBackupB, float64(b.BytesStreamed))
		counter(descRestore, float64(b.RestoreSteps), "ok")
		counter(descRestore, float64(b.RestoreStepsFailed), "failed")
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func buildCommit() string {
	if BuildCommit != "" {
		return BuildCommit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "unknown"
}
