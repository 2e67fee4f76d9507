package edge

import (
	"context"
	"log/slog"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/metrics"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// Config is what the edge needs from the node: who it is, and the parts
// it hands decoded commands to.
type Config struct {
	NodeID     uint64
	ClusterID  string
	RESPAddr   string // the client address as configured (CLUSTER, INFO)
	Partitions int
	Replicas   int
	// RequestTimeout bounds each request: a failure is a fast, clear
	// error, never a hang.
	RequestTimeout time.Duration
	Metrics        *metrics.Metrics
	Logger         *slog.Logger
	// Limits bound what clients can make the node hold (limits.go).
	Limits Limits
	// ProtectedMode refuses clients from other hosts while the default
	// user has no password (Redis's protected mode).
	ProtectedMode bool
	// DefaultPasswordHash, when set, is required of the default user
	// whenever the cluster's users give it no password (a password file).
	DefaultPasswordHash string
	Router              Router
	// Peers reaches the other nodes for pub/sub (nil: this node alone).
	Peers Peers
	Txns  Transactions
	View  View
	// LeaderWatchEvery: how often the edge looks at every partition's
	// leader (settle.go); 0: by the partition count; negative: never
	// (tests that move leaders by hand).
	LeaderWatchEvery time.Duration
}

// Router sends commands to the leader of their partition (route.Router).
// Each call answers, per command in order, its reply or a typed error
// (package failure) saying whether it may have been applied.
type Router interface {
	// WriteMany proposes a lane of commands, in order, through the log.
	WriteMany(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error)
	// ReadMany serves a lane of reads after one ReadIndex.
	ReadMany(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error)
	// StaleReads serves reads from the local replica (READONLY).
	StaleReads(ctx context.Context, group uint64, cmds [][][]byte) ([][]byte, []error)
	// Read serves one read.
	Read(ctx context.Context, group uint64, args [][]byte) ([]byte, error)
}

// Transactions runs commands atomically across partitions
// (txn.Coordinator): the reply, or a typed error saying whether anything
// may have been applied.
type Transactions interface {
	Exec(ctx context.Context, cmds []command.Cmd, watches []txn.Watch) ([]byte, error)
	Run(ctx context.Context, cmd command.Cmd) ([]byte, error)
	// Script runs a script on group's leader and replicates what it did
	// (txn.Coordinator.Script).
	Script(ctx context.Context, group uint64, run [][]byte) ([]byte, error)
}

// View is the cluster as this node sees it now, for redirects and for
// the topology commands. It is a hint: a stale answer costs a forward or
// a redirect, never a wrong reply.
type View interface {
	// Partitions lists the partitions, by id.
	Partitions() []api.PartitionRecord
	// Slots is the current map's slot table (nil: none yet; the edge
	// then routes by the equal ranges the cluster began with).
	Slots() *ring.SlotTable
	// RefreshMap reads the cluster map now, unless a read begun after
	// since already did (control.Map.Refresh).
	RefreshMap(ctx context.Context, since time.Time)
	// NodeRecords lists the members with their liveness, by id.
	NodeRecords() []api.NodeRecord
	// LeaderOf is the node believed to lead group, 0 if unknown.
	LeaderOf(group uint64) uint64
	// GroupNodes lists the nodes holding group, preferred leader first.
	GroupNodes(group uint64) []uint64
	// HasReplica reports whether this node holds a replica of group.
	HasReplica(group uint64) bool
	// Away reports whether node told this one it is stopping: clients
	// are not sent there.
	Away(node uint64) bool
	// Replicas counts this node's replicas and the leaderships it holds.
	Replicas() (local, leading int)
	// ClusterLevel is the cluster's feature level (api.Level) as the
	// current map has it: what every node understands.
	ClusterLevel() int
}
