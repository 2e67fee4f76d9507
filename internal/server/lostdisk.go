package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// A node whose data dir is empty bootstraps its replicas from the flags,
// exactly as on its first start. If it had run before and lost its disk,
// that would put members with empty logs back into raft groups that count
// them for quorums: an entry acknowledged by a majority that included this
// node could then be outvoted and lost. So before bootstrapping, a node
// with an empty data dir asks its peers whether it announced itself to the
// cluster before (its client address is in the cluster metadata, written
// once per start after the node is up). If any peer says so, it refuses
// to start. At a cluster's first start nobody has announced anything yet,
// and peers that are not up cannot answer, so bootstrap goes ahead.

// knownMember answers methodKnown from the local metadata replica.
func (n *Node) knownMember(id uint64) uint64 {
	if !n.eng.HasGroup(MetaGroup) {
		return 2
	}
	b, ok, err := n.eng.Reader(MetaGroup).Get(statemachine.NodeKey(id))
	var rec api.NodeRecord
	if err != nil || !ok || json.Unmarshal(b, &rec) != nil {
		return 0
	}
	if rec.RESPAddr != "" {
		return 1
	}
	return 0
}

// refuseIfReplaced fails when a peer knows this node from an earlier life.
func (n *Node) refuseIfReplaced() error {
	var mu sync.Mutex
	var witness uint64
	var wg sync.WaitGroup
	for id := range n.cfg.InitialCluster {
		if id == n.cfg.NodeID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.EmptyDirCheckTimeout)
			defer cancel()
			b, err := n.tr.Call(ctx, id, methodKnown, codec.Encoder(nil).Uvarint(n.cfg.NodeID))
			if err != nil {
				return // not up (first start), or unreachable: it cannot say
			}
			d := codec.NewDecoder(b)
			if v := d.Uvarint(); d.Err() == nil && v == 1 {
				mu.Lock()
				witness = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if witness != 0 {
		return fmt.Errorf("data dir %s is empty, but node %d has run in this cluster before (node %d knows it): its disk was lost or replaced. "+
			"Starting it empty would put empty logs back into its raft groups and could lose acknowledged writes. "+
			"Restore its data dir (from the old disk or a backup), or add the machine back as a new member: kintsu server --id NEW-ID --join PEER-OF-A-MEMBER (and kintsu ctl node remove %d once it is dead)", n.cfg.DataDir, n.cfg.NodeID, witness, n.cfg.NodeID)
	}
	return nil
}
