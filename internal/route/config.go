package route

import (
	"context"
	"log/slog"

	"github.com/kintsu/kintsu/internal/metrics"
)

// Config is what a router needs from its node.
type Config struct {
	NodeID uint64
	// Transport calls a peer (transport.Transport).
	Transport Caller
	// Members lists the nodes holding group by the cluster map, for groups
	// this node holds no replica of.
	Members func(group uint64) []uint64
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Failpoint is called at named points (fault injection); nil: none.
	Failpoint func(name string)
	// FaultInjection arms the participant failpoint after a PREPARE.
	FaultInjection bool
	// The planted bugs (kintsu chaos --plant-bug) that live on the request
	// path: reads from the local replica without ReadIndex, SET IFEQ
	// checked when proposed instead of when applied, and one RPUSH in
	// sixteen acknowledged without being proposed. Never in production.
	UnsafeStaleReads   bool
	UnsafeCASOnPropose bool
	UnsafeLostElement  bool
}

// Caller sends a call to a peer and returns its answer.
type Caller interface {
	Call(ctx context.Context, node uint64, method string, body []byte) ([]byte, error)
	// Forward is Call for the hot path (forwarded reads and writes): many
	// calls to a peer share one stream and its frames.
	Forward(ctx context.Context, node uint64, method string, body []byte) ([]byte, error)
}
