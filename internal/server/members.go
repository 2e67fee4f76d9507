package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
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

// serveJoin answers methodJoin: it records the new node and tells it what
// cluster it joined.
func (n *Node) serveJoin(ctx context.Context, body []byte) ([]byte, error) {
	var req api.NodeRecord
	if err := json.Unmarshal(body, &req); err != nil || req.ID == 0 || req.PeerAddr == "" {
		return nil, errMalformed
	}
	reply := n.router.Write(ctx, MetaGroup, [][]byte{[]byte(statemachine.CmdNodeJoin), []byte(strconv.FormatUint(req.ID, 10)), []byte(req.PeerAddr)})
	if string(reply) != "+OK\r\n" {
		return nil, errors.New(replyText(reply))
	}
	n.tr.SetPeer(req.ID, req.PeerAddr)
	m := n.view()
	jr := api.JoinJSON{Identity: n.layout.ident, Nodes: n.nodeRecords(), Map: m.JSON()}
	jr.Identity.NodeID = req.ID
	return json.Marshal(jr)
}

// replyText is a RESP error reply's text.
func replyText(reply []byte) string {
	v, _, err := resp.ParseValue(reply)
	if err != nil {
		return string(reply)
	}
	return string(v.Str)
}

// join asks the seed to add this node, and returns the cluster's identity
// as seen from this node. It retries until timeout: the seed may be
// starting too.
func (n *Node) join() (api.Identity, api.JoinJSON, error) {
	n.tr.SetPeer(joinSeed, n.cfg.Join)
	body, _ := json.Marshal(api.NodeRecord{ID: n.cfg.NodeID, PeerAddr: n.cfg.PeerAddr})
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(n.ctx, 2*n.cfg.RequestTimeout)
		b, err := n.tr.Call(ctx, joinSeed, methodJoin, body)
		cancel()
		if err == nil {
			var jr api.JoinJSON
			if err := json.Unmarshal(b, &jr); err != nil {
				return api.Identity{}, jr, fmt.Errorf("join via %s: malformed answer: %w", n.cfg.Join, err)
			}
			return jr.Identity, jr, nil
		}
		last = err
		if isRefusal(err) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the seed may still be starting
	}
	return api.Identity{}, api.JoinJSON{}, fmt.Errorf("join via %s: %w", n.cfg.Join, last)
}

// isRefusal tells a refusal by the cluster (no point retrying) from a
// seed that could not be reached.
func isRefusal(err error) bool {
	return strings.Contains(err.Error(), "was removed") || strings.Contains(err.Error(), "already a member")
}

// resolveJoin gives a node started with --join the cluster's shape: from
// its data dir if it joined before, else by joining through the seed.
func (n *Node) resolveJoin() error {
	var id api.Identity
	b, ok, err := storage.Get(n.db, storage.IdentKey)
	switch {
	case err != nil:
		return err
	case ok:
		if err := json.Unmarshal(b, &id); err != nil {
			return fmt.Errorf("data dir %s: unreadable identity: %w", n.cfg.DataDir, err)
		}
	default:
		var jr api.JoinJSON
		if id, jr, err = n.join(); err != nil {
			return err
		}
		if len(jr.Map.Nodes) > 0 {
			n.saveMap((&control.ClusterMap{Nodes: jr.Map.Nodes, Parts: jr.Map.Parts, Meta: jr.Map.Meta}).Marshal())
		}
		for _, rec := range jr.Nodes {
			if rec.ID != n.cfg.NodeID && rec.State != api.NodeRemoved {
				n.tr.SetPeer(rec.ID, rec.PeerAddr)
			}
		}
		n.log.Info("joined the cluster", "via", n.cfg.Join, "cluster", id.ClusterID)
	}
	ic, err := ParseInitialCluster(id.InitialCluster)
	if err != nil {
		return fmt.Errorf("the cluster's initial membership: %w", err)
	}
	n.cfg.InitialCluster, n.cfg.Partitions, n.cfg.Replicas, n.cfg.VNodes = ic, id.Partitions, id.Replicas, id.VNodes
	n.joined = true
	return nil
}

// setNodeState records an operator's membership decision for node id.
func (n *Node) setNodeState(ctx context.Context, id uint64, state string) error {
	reply := n.router.Write(ctx, MetaGroup, [][]byte{[]byte(statemachine.CmdNodeState), []byte(strconv.FormatUint(id, 10)), []byte(state)})
	if string(reply) != "+OK\r\n" {
		return errors.New(replyText(reply))
	}
	return nil
}
