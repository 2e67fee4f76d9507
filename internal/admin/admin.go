package admin

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/faultfs"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// Engine is what the admin API asks of the node's replication engine;
// *raftstore.Engine satisfies it.
type Engine interface {
	// Err is the fatal error that stopped the engine, if any.
	Err() error
	// Status lists the replicas this node hosts.
	Status() []raftstore.GroupStatus
	// TransferLeadership hands every leadership of this node away.
	TransferLeadership(ctx context.Context) error
	// OpenCut opens this node's snapshot of group at a backup cut.
	OpenCut(group uint64, id string) (*raftstore.Cut, bool)
	// DropCut releases this node's snapshots of a cut.
	DropCut(id string)
}

// Config is everything the admin API needs from the node. The funcs are
// called from HTTP handlers, concurrently; the slices they return are
// shared with the node and must not be modified.
type Config struct {
	NodeID    uint64
	ClusterID string
	// Replicas is the replication factor every partition is placed with.
	Replicas int
	Engine   Engine
	// Write proposes args to group through the node's router (leader
	// hints, retries, deduplication) and returns the RESP reply; it gives
	// up at ctx's deadline.
	Write func(ctx context.Context, group uint64, args [][]byte) []byte
	// Partitions is the cluster map's partition table, by partition id.
	Partitions func() []api.PartitionRecord
	// ClusterLevel is the cluster's feature level as the node's map has
	// it (nil: not reported).
	ClusterLevel func() int
	// Nodes is the node registry by id, with liveness derived and this
	// node's own addresses filled in.
	Nodes func() []api.NodeRecord
	// Leader is the node believed to lead group, 0 if unknown.
	Leader func(group uint64) uint64
	// GroupNodes lists the nodes holding group, voters first.
	GroupNodes func(group uint64) []uint64
	// PartitionOf maps a user key to its partition.
	PartitionOf func(key []byte) uint64
	// Health is the node's verdict on itself, for /healthz, /readyz
	// and the status page; cheap, and never blocks on a peer.
	Health func() api.Health
	// SetNodeState records an operator's membership decision.
	SetNodeState func(ctx context.Context, id uint64, state string) error
	// SplitPartition splits partition left at slot at (0: its middle)
	// and returns the new partition (control.SplitPartition).
	SplitPartition func(ctx context.Context, left int, at uint16) (int, error)
	// MergePartitions merges partition id with a neighbour, or finishes
	// its pending merge (control.Placement.MergePartitions); an answer
	// with Pending set is a merge reserved that the driver finishes.
	MergePartitions func(ctx context.Context, id int) (api.MergeJSON, error)
	// RefreshMap reads the cluster map again now (nil: never).
	RefreshMap func(ctx context.Context)
	Metrics    prometheus.Gatherer
	// RequestTimeout bounds a membership change.
	RequestTimeout time.Duration
	// Context ends when the node stops: backup streams are cut off then,
	// and the cleanup of an abandoned cut gives up.
	Context context.Context
	Logger  *slog.Logger
	// Faults, when set, adds the fault-injection routes (--fault-injection).
	Faults *Faults
	// Users gives the node's copy of the cluster's users for the credentials
	// check (auth.go); nil serves every route unchecked (tests of other
	// routes). ProtectedMode: see auth.go.
	Users         func(ctx context.Context) (*acl.Table, error)
	ProtectedMode bool
	// EnablePprof adds /debug/pprof (--enable-pprof), behind the check.
	EnablePprof bool
	// Load is every serving node's load, and Events their latest events
	// (at most limit, newest first), for the web console (console.go).
	// Each asks the other nodes and bounds its wait.
	Load   func(ctx context.Context) []api.NodeLoad
	Events func(ctx context.Context, limit int) []api.Event
	// DropCutOnPeers asks the other nodes to drop their snapshots of a
	// backup cut, each within a bounded wait.
	DropCutOnPeers func(ctx context.Context, id string)
}

// Faults are the node's parts the fault hooks act on.
type Faults struct {
	Links Links
	Clock Clock
	Disk  Disk
	// ArmCrash arms the crash failpoint at (one of api.CrashPoints), or
	// disarms it when at is "".
	ArmCrash func(at string)
}

// Links is the transport's cut switch (*transport.Transport).
type Links interface{ SetCut(nodes []uint64) }

// Clock is the node's skewable clock (*clock.Clock).
type Clock interface {
	Skew(offset time.Duration, rate float64) error
}

// Disk is the fault-injecting file system under storage (*faultfs.FS).
type Disk interface{ Set(faultfs.Fault) }

// API is a node's admin HTTP API.
type API struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	backups backupStats // backup.go
}

// New builds the admin API; serve it with Handler.
func New(cfg Config) *API {
	a := &API{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	a.statusRoutes(a.mux)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	a.memberRoutes(a.mux)
	a.backupRoutes(a.mux)
	a.consoleRoutes(a.mux)
	if cfg.Faults != nil {
		a.faultRoutes(a.mux)
	}
	if cfg.EnablePprof {
		a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		a.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return a
}

// Handler serves the admin API, every route but the open ones behind
// the credentials check.
func (a *API) Handler() http.Handler { return a.guard(a.mux) }
