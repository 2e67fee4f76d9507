package server

import (
	"encoding/json"
	"fmt"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// MetaGroup is the raft group of the cluster metadata. Data partitions use
// groups 0..P-1.
const MetaGroup = statemachine.MetaGroup

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
		id, err = control.Join(n.ctx, control.JoinConfig{
			NodeID: n.cfg.NodeID, PeerAddr: n.cfg.AdvertisedPeer(), Seed: n.cfg.Join,
			Timeout: n.cfg.JoinTimeout, RequestTimeout: n.cfg.RequestTimeout,
			Peers: n.tr, Save: n.saveMap, Logger: n.log,
		})
		if err != nil {
			return err
		}
	}
	ic, err := ParseInitialCluster(id.InitialCluster)
	if err != nil {
		return fmt.Errorf("the cluster's initial membership: %w", err)
	}
	n.cfg.InitialCluster, n.cfg.Partitions, n.cfg.Replicas, n.cfg.VNodes = ic, id.Partitions, id.Replicas, id.VNodes
	n.joined = true
	return nil
}
