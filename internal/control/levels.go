package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Cluster levels: the gate of a rolling upgrade. A build has a feature
// level (api.Level); the cluster's level is recorded in the metadata
// (statemachine.LevelKey). A feature of level L (a replicated command, a
// new form of a peer call) is used only once the cluster's level is L or
// more, so no node of an older build ever meets it: it would apply an
// unknown command differently from the others, or answer an unknown call
// with an error.
//
//   - A cluster created by this build starts at its level (layout.go).
//   - The metadata leader's driver raises the level once every member
//     that is not removed answers MethodLevel with this build's level or
//     more; a node of a build from before levels does not know the call,
//     so it holds the level where it is. The level never falls.
//   - A node whose build is below the cluster's level is refused when it
//     joins and refuses to start (server), so the level, once raised,
//     stays true.
//
// Invariant: CmdClusterLevel L is applied only when every non-removed
// member answered a level of L or more: it names the members asked, and
// the metadata refuses it if another member is registered (one joined
// while they were asked). So every replica of the metadata group applies
// it, and no member of an older build is ever in a cluster of a higher
// level: from level 1 a join names the joining build's level, and one
// below the cluster's is refused by the metadata itself (a member's map
// may be older than the level).

// MethodLevel asks a node for its build's level (a uvarint).
const MethodLevel = "v"

// levelEvery is how often the driver checks whether it can raise the
// cluster's level while it is below this build's.
const levelEvery = 10 * time.Second

// levelCallTimeout bounds one node's answer to MethodLevel.
const levelCallTimeout = time.Second

// ServeLevel answers MethodLevel.
func ServeLevel() []byte { return codec.Encoder(nil).Uvarint(api.Level) }

// ErrLevel is why a feature is refused in a cluster whose level is below
// it (errors.Is).
var ErrLevel = errors.New("the cluster is being upgraded")

// NeedLevel refuses what needs cluster level want while m's is lower.
func NeedLevel(m *ClusterMap, want int, what string) error {
	if m.Level >= want {
		return nil
	}
	return fmt.Errorf("%w: %s needs every node on a build of level %d or later, and the cluster is at level %d; finish the rolling upgrade first (each node's /v1/status shows its level and the cluster's)",
		ErrLevel, what, want, m.Level)
}

// maybeRaiseLevel raises the cluster's level to this build's once every
// member that is not removed runs a build of that level or later. It
// asks at most every levelEvery, only while every such member is up, and
// only once no removed node holds a replica (holds: the nodes holding a
// replica of some group, from a round that saw every group): a node
// removed while down keeps its replicas until the driver replaces them,
// and if it came back on an older build it would apply what it does not
// know.
func (p *Placement) maybeRaiseLevel(ctx context.Context, m *ClusterMap, recs []api.NodeRecord, holds map[uint64]bool) {
	if m.Level >= api.Level || time.Since(p.levelAsked) < levelEvery {
		return
	}
	for _, r := range recs {
		if r.State == api.NodeRemoved && holds[r.ID] {
			return
		}
	}
	p.levelAsked = time.Now()
	cmd := [][]byte{[]byte(statemachine.CmdClusterLevel), []byte(strconv.Itoa(api.Level))}
	var ask []uint64
	for _, r := range recs {
		if r.State == api.NodeRemoved {
			continue
		}
		cmd = append(cmd, strconv.AppendUint(nil, r.ID, 10))
		if r.ID == p.cfg.NodeID {
			continue
		}
		if r.State != api.NodeUp {
			return // asked again once it is up, or removed
		}
		ask = append(ask, r.ID)
	}
	if !p.allAtLevel(ctx, ask) {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	// The command names the members asked: one that joined since is
	// not among them, and the metadata refuses the raise.
	reply := p.cfg.Write(wctx, statemachine.MetaGroup, cmd)
	if string(reply) != okReply {
		p.cfg.Logger.Info("cluster level not raised; asked again later", "level", api.Level, "reply", replyText(reply))
		return
	}
	p.cfg.Logger.Info("cluster level raised: every member runs a build of this level", "from", m.Level, "to", api.Level)
}

// levelFanOut bounds the level calls in flight at once.
const levelFanOut = 32

// allAtLevel asks every node of ids for its level, levelFanOut at a
// time, each within levelCallTimeout; it reports whether all answered
// this build's level or more, and stops asking at the first that did not.
func (p *Placement) allAtLevel(ctx context.Context, ids []uint64) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		slot = make(chan struct{}, levelFanOut)
		bad  atomic.Bool
	)
	for _, id := range ids {
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-slot; wg.Done() }()
			cctx, ccancel := context.WithTimeout(ctx, levelCallTimeout)
			b, err := p.cfg.Caller.Call(cctx, id, MethodLevel, nil)
			ccancel()
			d := codec.NewDecoder(b)
			if n := d.Uvarint(); err != nil || d.Err() != nil || n < api.Level {
				bad.Store(true)
				cancel()
			}
		}()
	}
	wg.Wait()
	return !bad.Load() && ctx.Err() == nil
}
