package server

import (
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/statemachine"
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
	descLost  = prometheus.NewDesc("kintsu_partitions_leaderless", "Partitions with no leader holding a quorum, as this node sees them.", nil, nil)
	descUnder = prometheus.NewDesc("kintsu_partitions_under_replicated", "Partitions with fewer voters on up nodes than the replica count.", nil, nil)
	descNodes = prometheus.NewDesc("kintsu_nodes", "Nodes of the cluster by state, as this node sees them.", []string{"state"}, nil)
	descConns = prometheus.NewDesc("kintsu_connected_clients", "Client connections this node holds.", nil, nil)
	descDisk  = prometheus.NewDesc("kintsu_storage_disk_bytes", "Disk space the node's Pebble store uses.", nil, nil)
	descDebt  = prometheus.NewDesc("kintsu_storage_compaction_debt_bytes", "Bytes Pebble estimates it must compact to reach a stable shape.", nil, nil)
)

type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descReady, descLead, descTerm, descApp, descComm, descKeys, descLost, descUnder, descNodes, descConns, descDisk, descDebt} {
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
