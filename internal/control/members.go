package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Membership: joining, decommissioning and removing nodes. The registry
// in the metadata group is the single record of who is a member; the
// placement driver (placement.go) moves replicas to match it.
//
// Invariants:
//   - A node id names one life of one machine. A record that ever
//     heartbeated cannot be joined again: a node that lost its disk must
//     join under a new id, or it would come back with empty logs into
//     raft groups that count its old replicas.
//   - Removed is final: a removed id never rejoins, heartbeats nothing,
//     and placement never puts a replica on it.
//   - Decommission only marks the node draining; the driver moves its
//     replicas away first and marks it removed once it holds none, so
//     redundancy never drops below R while a node leaves.

// joinSeed is the transport's name for the node a joining node was told
// to contact, whose id it does not know yet.
const joinSeed = statemachine.ReservedNodeID

// MembersConfig is what the membership service needs from its node.
type MembersConfig struct {
	// Identity is the cluster's, as this node's data dir records it; a
	// joining node is sent it with its own id.
	Identity api.Identity
	Write    WriteFunc
	// Peers is told a joining node's address.
	Peers Addresses
	Map   *Map
	// Nodes is the node registry with liveness derived.
	Nodes func() []api.NodeRecord
}

// Members records membership decisions in the metadata group: a node
// joining (ServeJoin) and an operator's decommission or removal
// (SetNodeState).
type Members struct{ cfg MembersConfig }

// NewMembers builds the membership service.
func NewMembers(cfg MembersConfig) *Members { return &Members{cfg: cfg} }

// ServeJoin answers MethodJoin: it records the new node and tells it what
// cluster it joined.
func (m *Members) ServeJoin(ctx context.Context, body []byte) ([]byte, error) {
	var req api.JoinRequest
	if err := json.Unmarshal(body, &req); err != nil || req.ID == 0 || req.PeerAddr == "" {
		return nil, ErrMalformed
	}
	// From level 1 a join carries the joining build's level (the
	// metadata refuses one below its own); below it, it must not, since
	// replicas of older builds may apply it.
	lvl := m.cfg.Map.Current().Level
	if req.Level < lvl {
		return nil, errors.New(statemachine.OlderBuild(req.ID, strconv.Itoa(req.Level), lvl))
	}
	cmd := [][]byte{[]byte(statemachine.CmdNodeJoin), []byte(strconv.FormatUint(req.ID, 10)), []byte(req.PeerAddr)}
	withLevel := append(slices.Clone(cmd), []byte(strconv.Itoa(req.Level)))
	if lvl > 0 {
		cmd = withLevel
	}
	reply := m.cfg.Write(ctx, statemachine.MetaGroup, cmd)
	if lvl == 0 && strings.Contains(string(reply), statemachine.ErrJoinWithoutLevel) {
		// This node's map is older than the level the metadata holds:
		// every replica is of level 1 or later, so the level may go.
		reply = m.cfg.Write(ctx, statemachine.MetaGroup, withLevel)
	}
	if string(reply) != okReply {
		return nil, errors.New(replyText(reply))
	}
	m.cfg.Peers.SetPeer(req.ID, req.PeerAddr)
	jr := api.JoinJSON{Identity: m.cfg.Identity, Nodes: m.cfg.Nodes(), Map: m.cfg.Map.Current().JSON()}
	jr.Identity.NodeID = req.ID
	return json.Marshal(jr)
}

// SetNodeState records an operator's membership decision for node id.
func (m *Members) SetNodeState(ctx context.Context, id uint64, state string) error {
	reply := m.cfg.Write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdNodeState), []byte(strconv.FormatUint(id, 10)), []byte(state)})
	if string(reply) != okReply {
		return errors.New(replyText(reply))
	}
	return nil
}

// replyText is a RESP error reply's text.
func replyText(reply []byte) string {
	v, _, err := resp.ParseValue(reply)
	if err != nil {
		return string(reply)
	}
	return string(v.Str)
}

// JoinConfig is what a node started with --join needs to join.
type JoinConfig struct {
	NodeID   uint64
	PeerAddr string
	// Seed is a member's peer address (--join).
	Seed string
	// Timeout bounds the whole attempt; RequestTimeout*2 bounds each call.
	Timeout, RequestTimeout time.Duration
	Peers                   Peers
	// Save keeps the cluster map the answer brings, so the node's first
	// map already names the metadata nodes (MapConfig.Save).
	Save   func(b []byte)
	Logger *slog.Logger
}

// Join asks the seed to add this node, and returns the cluster's identity
// as seen from this node. It retries until the timeout (the seed may be
// starting too) unless the cluster refuses. On success the transport
// knows every member and the cluster map is saved.
func Join(ctx context.Context, cfg JoinConfig) (api.Identity, error) {
	cfg.Peers.SetPeer(joinSeed, cfg.Seed)
	body, _ := json.Marshal(api.JoinRequest{NodeRecord: api.NodeRecord{ID: cfg.NodeID, PeerAddr: cfg.PeerAddr}, Level: api.Level})
	deadline := time.Now().Add(cfg.Timeout)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*cfg.RequestTimeout)
		b, err := cfg.Peers.Call(cctx, joinSeed, MethodJoin, body)
		cancel()
		if err == nil {
			var jr api.JoinJSON
			if err := json.Unmarshal(b, &jr); err != nil {
				return api.Identity{}, fmt.Errorf("join via %s: malformed answer: %w", cfg.Seed, err)
			}
			joined(cfg, jr)
			return jr.Identity, nil
		}
		last = err
		if isRefusal(err) {
			break
		}
		if !clock.Sleep(ctx, 200*time.Millisecond) { // the seed may still be starting
			return api.Identity{}, fmt.Errorf("join via %s: %w", cfg.Seed, ctx.Err())
		}
	}
	return api.Identity{}, fmt.Errorf("join via %s: %w", cfg.Seed, last)
}

// joined takes in the join answer: the map to start from, and the
// members to reach.
func joined(cfg JoinConfig, jr api.JoinJSON) {
	if len(jr.Map.Nodes) > 0 {
		cfg.Save(mapFromJSON(jr.Map).Marshal())
	}
	for _, rec := range jr.Nodes {
		if rec.ID != cfg.NodeID && rec.State != api.NodeRemoved {
			cfg.Peers.SetPeer(rec.ID, rec.PeerAddr)
		}
	}
	cfg.Logger.Info("joined the cluster", "via", cfg.Seed, "cluster", jr.Identity.ClusterID)
}

// isRefusal tells a refusal by the cluster (no point retrying) from a
// seed that could not be reached.
func isRefusal(err error) bool {
	return strings.Contains(err.Error(), "was removed") || strings.Contains(err.Error(), "already a member")
}
