package raftstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Quarantine: when storage finds a corrupt file that holds only some
// groups' keys, the node takes just those replicas out of service (the
// node's quarantine driver decides, records and excises; storage's
// quarantine.go says what survives a crash). The engine's part:
//
// Invariants:
//   - A condemned group's replica stops at once: Condemn is called from
//     the goroutine that met the damage, before its read returns the
//     error, and marks the group for every goroutine; the loop then treats
//     a failed apply of that group as the end of its replica (the cycle's
//     other groups go on) and, at the end of the cycle, takes the replica
//     out: no more reads, writes, votes or acknowledgements, its waiters
//     and reads failed, its snapshots dropped.
//   - While a group is condemned no replica of it is created here (a
//     leader's message creates nothing), until Release: the driver
//     releases it only once the damaged spans are excised and the old
//     replica id is tombstoned, so a new replica (always a new id, from
//     the leader's descriptor) never starts over damaged or stale state,
//     and the old id never comes back.
//   - RemoveDamaged removes a replica by its id, not just its node: a
//     retried request never removes the replica that replaced it.

// quarantine is the engine's set of condemned groups.
type quarantine struct {
	mu        sync.Mutex
	condemned map[uint64]bool   // guarded by mu
	out       map[uint64]uint64 // guarded by mu: group -> replica id taken out (0: none hosted)
}

// Condemn takes the local replicas of groups out of service. It may be
// called from any goroutine (a Pebble read path among them) and does not
// block: the loop takes the replicas out at the end of its next cycle.
func (e *Engine) Condemn(groups []uint64) {
	q := &e.quar
	q.mu.Lock()
	if q.condemned == nil {
		q.condemned, q.out = map[uint64]bool{}, map[uint64]uint64{}
	}
	for _, g := range groups {
		q.condemned[g] = true
	}
	q.mu.Unlock()
	e.in.addFunc(e.takeOutCondemned)
	e.notify()
}

// condemned reports whether group is condemned.
func (e *Engine) condemned(group uint64) bool {
	q := &e.quar
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.condemned[group]
}

// applyFailedCondemned reports whether err, from applying r's entries,
// ends r's replica rather than the node: r's group is condemned (storage
// found its data damaged). Whatever r wrote into the cycle's batch dies
// with it (the driver deletes and excises the group's spans later).
func (e *Engine) applyFailedCondemned(r *replica, err error) bool {
	if !e.condemned(r.group) || !pebble.IsCorruptionError(err) {
		return false
	}
	e.cfg.Logger.Error("applying to a replica with damaged data failed: taking it out of service", "group", r.group, "replica", r.id, "err", err.Error())
	return true
}

// takeOutCondemned takes the replicas of condemned groups out of service.
// Called on the loop, first thing in the cycle after Condemn (before any
// Ready is taken).
func (e *Engine) takeOutCondemned() {
	q := &e.quar
	q.mu.Lock()
	var gone []*replica
	for _, g := range sortedKeys(q.condemned) {
		if _, done := q.out[g]; done {
			continue
		}
		q.out[g] = 0
		if r := e.byGroup[g]; r != nil {
			q.out[g] = r.id
			gone = append(gone, r)
		}
	}
	q.mu.Unlock()
	for _, r := range gone {
		e.outSnaps.drop(r.group)
		delete(e.byGroup, r.group)
		e.replicas = slices.DeleteFunc(e.replicas, func(x *replica) bool { return x == r })
		for _, p := range r.pendingSnaps {
			p.data.Close()
		}
		r.pendingSnaps = nil
		if r.isLeader {
			e.cfg.Metrics.LeadersHeld.Dec()
		}
		r.failReads(ErrNoGroup)
		e.failGroupWaiters(r.group, ErrLeaderChanged)
		e.cfg.Logger.Error("replica taken out of service: its data is damaged; the group rebuilds it from its peers", "group", r.group, "replica", r.id)
	}
	if len(gone) > 0 {
		e.publishGroups()
	}
}

// Condemned waits until the loop took every one of groups out of service
// and returns the replica id each had here (0: none hosted).
func (e *Engine) Condemned(ctx context.Context, groups []uint64) (map[uint64]uint64, error) {
	t := time.NewTicker(e.cfg.TickInterval)
	defer t.Stop()
	for {
		q := &e.quar
		q.mu.Lock()
		ids := map[uint64]uint64{}
		for _, g := range groups {
			if id, ok := q.out[g]; ok {
				ids[g] = id
			}
		}
		q.mu.Unlock()
		if len(ids) == len(groups) {
			return ids, nil
		}
		e.notify()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.over:
			return nil, ErrStopped
		case <-t.C:
		}
	}
}

// Release lets groups host replicas again: their damaged state is gone.
// Their raft logs go too (a new replica would drop them anyway when it is
// created; until then they would keep segments on disk). A failure to
// write that drop is the raft log's failure: it sticks, and the loop's
// next commit fences the node.
func (e *Engine) Release(groups []uint64) {
	if err := dropLogs(e.rlog, groups); err != nil {
		e.cfg.Logger.Error("cannot drop the raft logs of quarantined replicas: the raft log failed", "groups", groups, "err", err)
	}
	q := &e.quar
	q.mu.Lock()
	for _, g := range groups {
		delete(q.condemned, g)
		delete(q.out, g)
	}
	q.mu.Unlock()
}

// Hosted lists the groups with a replica here, as last published.
func (e *Engine) Hosted() []uint64 {
	list := e.hostedList()
	out := make([]uint64, 0, len(list))
	for _, r := range list {
		out = append(out, r.group)
	}
	return out
}

// RemoveDamaged removes replica id, on node, from group, whose leader must
// be on this node, and waits until the removal is applied here. It
// succeeds at once if id is no longer a member (removed before, perhaps
// already replaced by a new replica on the same node).
func (e *Engine) RemoveDamaged(ctx context.Context, group, node, id uint64) error {
	ch := make(chan changeAnswer, 1)
	e.in.addFunc(func() {
		r := e.byGroup[group]
		switch {
		case r == nil:
			ch <- changeAnswer{err: ErrNoGroup}
		case !r.isLeader:
			ch <- changeAnswer{err: &NotLeaderError{Group: group, Leader: r.desc.NodeOf(r.leader)}}
		case r.desc.ReplicaOn(node) != id:
			ch <- changeAnswer{done: true}
		default:
			done, err := r.proposeChange(RemoveReplica, node)
			ch <- changeAnswer{done, err}
		}
	})
	e.notify()
	return e.awaitChange(ctx, group, ch, fmt.Sprintf("removal of replica %d of group %d", id, group),
		func(st *GroupStatus) bool { return !slices.Contains(st.MemberIDs, id) })
}

// Tombstone returns the highest replica id of group destroyed or
// quarantined here: no replica with an id at or below it is created again.
func (e *Engine) Tombstone(group uint64) uint64 { return e.tombstone(group) }
