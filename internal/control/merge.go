package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Merging two neighbouring partitions (statemachine/partmerge.go for the
// partition table, raftstore/merge.go for the groups):
//
//  1. The intent is recorded. From then on the placement driver places
//     the right partition's replicas where the left's go (its target is
//     the left's), so the two end up on the same nodes.
//  2. Once both have their voters on the same nodes and no learners, the
//     survivor is named: the one whose log is ahead (WATCH needs the
//     survivor's indexes past every version it takes over). From then on
//     the driver changes neither group's replicas.
//  3. The other is frozen; every node's replica of it is awaited up to
//     the freeze (a replica of the survivor whose node lacks it would be
//     rebuilt from its peers).
//  4. The survivor absorbs it, asked again while its log is behind the
//     freeze (each refusal takes one index).
//  5. The partition table records the merged range.
//
// Every step may be repeated, so MergePartitions called again finishes
// an interrupted merge; the driver resumes pending merges by itself.
// Between the freeze and step 5 the frozen half's keys answer TRYAGAIN
// (the router's retries ride out most of it): a merge is for small, cold
// partitions, and those steps take a few round trips.

// ErrMergePending: the merge is reserved, and waits for the placement
// driver to co-locate the partitions' replicas; the driver finishes it.
var ErrMergePending = errors.New("the merge is reserved: the partitions' replicas are being moved onto the same nodes, and the placement driver finishes the merge")

// awaitFrozen bounds the wait for every replica of the frozen group to
// apply its freeze.
const awaitFrozen = 10 * time.Second

// MergePartitions merges partition id with its right neighbour (with its
// left one when id holds the last slots), or finishes the merge pending
// for id. It returns the survivor and the absorbed partition, or
// ErrMergePending while the replicas are being co-located.
func (p *Placement) MergePartitions(ctx context.Context, id int) (api.MergeJSON, error) {
	cur := p.cfg.Map.Current()
	if err := NeedLevel(cur, api.LevelResize, "merging partitions"); err != nil {
		return api.MergeJSON{}, err
	}
	in, pending := cur.PendingMerge(id)
	for attempt := 0; !pending; attempt++ {
		left, right, err := neighbours(cur, id)
		if err != nil {
			return api.MergeJSON{}, err
		}
		if err := p.mergeFits(ctx, left, right); err != nil {
			return api.MergeJSON{}, err
		}
		reply := p.cfg.Write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartMergeIntent), fmt.Append(nil, left), fmt.Append(nil, right)})
		in, err = statemachine.ParseIntentReply(reply)
		if err != nil && strings.Contains(err.Error(), "are not neighbours") && attempt < 10 {
			// This node's map predates a split or merge the table holds
			// (its metadata replica lags the write): read it again.
			select {
			case <-ctx.Done():
				return api.MergeJSON{}, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			p.cfg.Map.Refresh(ctx, time.Now())
			cur = p.cfg.Map.Current()
			in, pending = cur.PendingMerge(id)
			continue
		}
		if err != nil {
			return api.MergeJSON{}, fmt.Errorf("reserve the merge: %w", err)
		}
		p.cfg.Map.Refresh(ctx, time.Now())
		break
	}
	if !in.Chosen {
		ls, lok := p.GroupInfo(ctx, uint64(in.Left))
		rs, rok := p.GroupInfo(ctx, uint64(in.Right))
		survivor := in.Left
		switch {
		case lok && ls.MergedPlus1 == uint64(in.Right)+1:
			// One side absorbed the other already, and the survivor was
			// forgotten since (an attempt whose freeze was refused while
			// another's went through, before attempts stopped forgetting
			// it then): the absorbed group may be gone from every node,
			// so only the record is left to write.
		case rok && rs.MergedPlus1 == uint64(in.Left)+1:
			survivor = in.Right
		case !lok || !rok || !colocated(ls, rs) || !p.allAnswer(ctx, uint64(in.Left), ls.Voters) || !p.allAnswer(ctx, uint64(in.Right), rs.Voters):
			// Every replica must answer too: the freeze waits for all of
			// them, and freezing with one down would only hold the keys
			// for nothing.
			return api.MergeJSON{Survivor: in.Left, Absorbed: in.Right, Pending: true}, ErrMergePending
		case rs.Applied > ls.Applied:
			survivor = in.Right
		}
		reply := p.cfg.Write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartSurvivor), fmt.Append(nil, in.Left), fmt.Append(nil, survivor)})
		var err error
		if in, err = statemachine.ParseIntentReply(reply); err != nil {
			return api.MergeJSON{}, fmt.Errorf("name the merge's survivor: %w", err)
		}
	}
	s, o := in.Survivor, in.Other()
	out := api.MergeJSON{Survivor: s, Absorbed: o}
	olo, ohi, slo, shi := in.Lo, in.Mid-1, in.Mid, in.Hi
	if o == in.Right {
		olo, ohi, slo, shi = in.Mid, in.Hi, in.Lo, in.Mid-1
	}
	// From the freeze to the record, the driver moves neither group's
	// replicas: a move would make the merge refused.
	p.holdGroups(true, uint64(s), uint64(o))
	defer p.holdGroups(false, uint64(s), uint64(o))
	// Absorbed already (a merge interrupted before the record, when the
	// frozen group may be gone from every node): only record it.
	ss, ok := p.GroupInfo(ctx, uint64(s))
	if !ok {
		return out, fmt.Errorf("partition %d has no leader; the merge is tried again", s)
	}
	if ss.MergedPlus1 != uint64(o)+1 {
		reply := p.cfg.Write(ctx, uint64(o), raftstore.FreezeArgs(uint64(s), olo, ohi))
		if strings.HasPrefix(string(reply), "-ERR merge refused") {
			// Not frozen by this attempt; the survivor stays chosen. (It
			// was once forgotten here, but another attempt running at the
			// same time — the driver's and an operator's — may have frozen
			// and merged since: its record was then refused, and the
			// partition table kept routing to the absorbed group, gone.)
			return out, fmt.Errorf("partition %d: %s; the merge is tried again", o, strings.TrimSpace(string(reply[1:])))
		}
		frozenAt, nodes, err := raftstore.ParseFreezeReply(reply)
		if err != nil {
			// Unanswered: if it froze after all, the next attempt's
			// freeze says so and goes on from there.
			return out, fmt.Errorf("freeze partition %d: %w; the merge is tried again", o, err)
		}
		err = p.awaitApplied(ctx, uint64(o), frozenAt, nodes)
		if err == nil {
			err = p.absorb(ctx, uint64(s), raftstore.MergeArgs(uint64(o), frozenAt, olo, ohi, slo, shi, nodes))
		}
		if err != nil {
			return out, p.abortMerge(ctx, in, frozenAt, err)
		}
	}
	reply := p.cfg.Write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartMerge), fmt.Append(nil, in.Left)})
	if string(reply) != okReply && !p.recorded(ctx, in) {
		return out, fmt.Errorf("partitions %d and %d are merged, but the partition table was not updated (%s); it is finished when tried again", s, o, strings.TrimSpace(string(reply)))
	}
	p.cfg.Map.Refresh(ctx, time.Now())
	return out, nil
}

// recorded reports whether the partition table already holds in's merge
// (another proposer recorded it first).
func (p *Placement) recorded(ctx context.Context, in api.MergeIntent) bool {
	p.cfg.Map.Refresh(ctx, time.Now())
	m := p.cfg.Map.Current()
	rec, ok := m.Part(uint64(in.Survivor))
	_, other := m.Part(uint64(in.Other()))
	return ok && !other && rec.SlotStart == in.Lo && rec.SlotEnd == in.Hi
}

// abortMerge takes back a merge that could not finish (why): the
// survivor refuses that frozen state for good — unless it merged it
// already, and then the merge goes on to its record next time — then the
// frozen group thaws and the survivor is forgotten, so the next attempt
// starts from co-location. Until each step is answered the group stays
// frozen, and the next attempt finishes or aborts it.
func (p *Placement) abortMerge(ctx context.Context, in api.MergeIntent, frozenAt uint64, why error) error {
	// Its own deadline: the merge may have failed because the caller's
	// ran out, and the frozen group should thaw now, not next attempt.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), awaitFrozen)
	defer cancel()
	s, o := uint64(in.Survivor), uint64(in.Other())
	switch reply := strings.TrimSpace(string(p.cfg.Write(ctx, s, raftstore.AbortMergeArgs(o, frozenAt)))); reply {
	case ":1":
		return fmt.Errorf("%w; partition %d has absorbed partition %d meanwhile: the merge is recorded next time", why, s, o)
	case ":0":
	default:
		return fmt.Errorf("%w; its abort was not answered (%s): partition %d stays frozen until the merge is tried again", why, reply, o)
	}
	if reply := strings.TrimSpace(string(p.cfg.Write(ctx, o, raftstore.ThawArgs(s, frozenAt)))); reply != "+OK" {
		return fmt.Errorf("%w; partition %d was not thawed (%s): tried again", why, o, reply)
	}
	_ = p.cfg.Write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartUnchoose), fmt.Append(nil, in.Left)})
	p.cfg.Map.Refresh(ctx, time.Now())
	p.cfg.Logger.Warn("merge aborted; partition thawed, tried again later", "survivor", s, "other", o, "err", why)
	return fmt.Errorf("%w; the merge was aborted and is tried again", why)
}

// holdGroups marks groups as held by a merge under way (on), or no
// longer (off); placeOnce plans no step for a held group.
func (p *Placement) holdGroups(on bool, groups ...uint64) {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	if p.held == nil {
		p.held = map[uint64]int{}
	}
	for _, g := range groups {
		if on {
			p.held[g]++
		} else if p.held[g]--; p.held[g] <= 0 {
			delete(p.held, g)
		}
	}
}

// isHeld reports whether a merge under way holds group.
func (p *Placement) isHeld(group uint64) bool {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	return p.held[group] > 0
}

// maxMergeBytes bounds a merge's data when no split size is set: the
// absorbed half's keys are moved on the engine loop, in one batch.
const maxMergeBytes = 256 << 20

// mergeFits refuses a merge whose two partitions hold more data, by
// their leaders' estimates, than the split size (it would split again)
// or, without one, maxMergeBytes.
func (p *Placement) mergeFits(ctx context.Context, left, right int) error {
	limit := p.cfg.SplitSize
	if limit == 0 {
		limit = maxMergeBytes
	}
	ls, lok := p.GroupInfo(ctx, uint64(left))
	rs, rok := p.GroupInfo(ctx, uint64(right))
	if !lok || !rok {
		return fmt.Errorf("partitions %d and %d: a leader did not answer; try again", left, right)
	}
	if ls.Bytes+rs.Bytes > limit {
		return fmt.Errorf("partitions %d and %d hold %d MiB together, over the %d MiB a merge may make (--split-size)", left, right, (ls.Bytes+rs.Bytes)>>20, limit>>20)
	}
	return nil
}

// neighbours are the partitions a merge asked of id joins: id and the
// next one, or the one before id when id holds the last slots.
func neighbours(m *ClusterMap, id int) (left, right int, err error) {
	rec, ok := m.Part(uint64(id))
	if !ok {
		return 0, 0, fmt.Errorf("no partition %d", id)
	}
	for _, p := range m.Parts {
		if int(rec.SlotEnd)+1 == int(p.SlotStart) {
			return id, p.ID, nil
		}
	}
	for _, p := range m.Parts {
		if int(p.SlotEnd)+1 == int(rec.SlotStart) {
			return p.ID, id, nil
		}
	}
	return 0, 0, fmt.Errorf("partition %d has no neighbour: it owns every slot", id)
}

// colocated reports whether two groups have their voters on the same
// nodes and no learners.
func colocated(a, b GroupState) bool {
	return len(a.Learners) == 0 && len(b.Learners) == 0 &&
		slices.Equal(slices.Sorted(slices.Values(a.Voters)), slices.Sorted(slices.Values(b.Voters)))
}

// awaitApplied waits, for at most awaitFrozen, until every node's replica
// of group has applied index: a replica of the survivor whose node lacks
// the frozen state must not apply the merge, so the merge waits for all
// of them (and is aborted, the group thawed, when one does not come).
func (p *Placement) awaitApplied(ctx context.Context, group, index uint64, nodes []uint64) error {
	deadline := time.Now().Add(awaitFrozen)
	for {
		done := 0
		for _, n := range nodes {
			if p.replicaApplied(ctx, group, n) >= index {
				done++
			}
		}
		if done == len(nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d replicas of partition %d applied its freeze", done, len(nodes), group)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// allAnswer reports whether every one of nodes answers for its replica
// of group.
func (p *Placement) allAnswer(ctx context.Context, group uint64, nodes []uint64) bool {
	for _, n := range nodes {
		if p.replicaApplied(ctx, group, n) == 0 {
			return false
		}
	}
	return true
}

// replicaApplied is node's replica of group's applied index (0: unknown).
func (p *Placement) replicaApplied(ctx context.Context, group, node uint64) uint64 {
	if node == p.cfg.NodeID {
		st, _ := p.cfg.Engine.GroupStatus(group)
		return st.AppliedIndex
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	b, err := p.cfg.Caller.Call(ctx, node, MethodGroupInfo, codec.Encoder(nil).Uvarint(group))
	if err != nil {
		return 0
	}
	var gi groupInfoJSON
	if json.Unmarshal(b, &gi) != nil {
		return 0
	}
	return gi.Applied
}

// absorb proposes the merge entry to the survivor until it applies,
// asking again while the survivor's log is behind the freeze.
func (p *Placement) absorb(ctx context.Context, survivor uint64, args [][]byte) error {
	for try := 0; ; try++ {
		reply := strings.TrimSpace(string(p.cfg.Write(ctx, survivor, args)))
		switch {
		case reply == "+OK":
			return nil
		case strings.Contains(reply, "is behind the frozen one's") && try < 256:
			continue
		default:
			return fmt.Errorf("partition %d: %s", survivor, strings.TrimPrefix(reply, "-"))
		}
	}
}
