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
//   - Damage met while the node loads its replicas (CondemnAtLoad, before
//     Start) costs only the condemned groups too: LoadAll skips a
//     condemned group whose load fails on corruption, reads descriptors
//     around the damaged file's bounds, and keeps the condemned groups'
//     raft logs. A group skipped without a readable descriptor is answered
//     as ReplicaUnknown; it stays condemned until the driver has its old
//     id tombstoned.

// Quarantine is the set of condemned groups. The node makes it before its
// storage opens (Config.Quarantine), so that damage met while the engine
// is being built (its durability-mark check reads replicas' states) is
// condemned too.
type Quarantine struct {
	mu        sync.Mutex
	condemned map[uint64]bool   // guarded by mu
	out       map[uint64]uint64 // guarded by mu: group -> replica id taken out (0: none hosted)
	// damaged are the key bounds (inclusive) of the files condemned
	// while the replicas load.
	damaged [][2][]byte // guarded by mu
}

// ReplicaUnknown, as a replica id in Condemned's answer: the group's
// replica here was not loaded, and its descriptor, which names its id,
// could not be read.
const ReplicaUnknown = ^uint64(0)

// NewQuarantine returns an empty set.
func NewQuarantine() *Quarantine {
	return &Quarantine{condemned: map[uint64]bool{}, out: map[uint64]uint64{}}
}

func (q *Quarantine) condemn(groups []uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.condemnLocked(groups)
}

func (q *Quarantine) condemnLocked(groups []uint64) {
	for _, g := range groups {
		q.condemned[g] = true
	}
}

// CondemnAtLoad condemns groups for damage met while the node starts, in
// a file with key bounds [start, end]: LoadAll reads around them. Before
// the engine exists, call it on the set; after, on the engine.
func (q *Quarantine) CondemnAtLoad(groups []uint64, start, end []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.damaged = append(q.damaged, [2][]byte{slices.Clone(start), slices.Clone(end)})
	q.condemnLocked(groups)
}

func (q *Quarantine) has(group uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.condemned[group]
}

// Condemn takes the local replicas of groups out of service. It may be
// called from any goroutine (a Pebble read path among them) and does not
// block: the loop takes the replicas out at the end of its next cycle.
func (e *Engine) Condemn(groups []uint64) {
	e.quar.condemn(groups)
	e.in.addFunc(e.takeOutCondemned)
	e.notify()
}

// CondemnAtLoad is Condemn for damage met while the replicas load (before
// Start): LoadAll then reads around the file's bounds [start, end].
func (e *Engine) CondemnAtLoad(groups []uint64, start, end []byte) {
	e.quar.CondemnAtLoad(groups, start, end)
	e.Condemn(nil)
}

// skippedAtLoad records that LoadAll did not load condemned group, whose
// replica here has id (ReplicaUnknown if its descriptor was not read).
func (e *Engine) skippedAtLoad(group, id uint64) {
	q := e.quar
	q.mu.Lock()
	q.out[group] = id
	q.mu.Unlock()
	if id == ReplicaUnknown {
		e.cfg.Logger.Error("replica not loaded: its data is damaged, its descriptor with it; the group rebuilds it from its peers", "partition", group, "id_unknown", true)
		return
	}
	e.cfg.Logger.Error("replica not loaded: its data is damaged; the group rebuilds it from its peers", "partition", group, "replica", id)
}

// condemnedGroups lists the condemned groups and the damaged bounds met
// at load.
func (e *Engine) condemnedGroups() ([]uint64, [][2][]byte) {
	q := e.quar
	q.mu.Lock()
	defer q.mu.Unlock()
	return sortedKeys(q.condemned), slices.Clone(q.damaged)
}

// damagedAtLoad reports whether err, from reading group's state while the
// node starts, is damage that condemned the group: its replica is
// skipped, not loaded.
func (e *Engine) damagedAtLoad(group uint64, err error) bool {
	return e.condemned(group) && pebble.IsCorruptionError(err)
}

// condemned reports whether group is condemned.
func (e *Engine) condemned(group uint64) bool { return e.quar.has(group) }

// applyFailedCondemned reports whether err, from applying r's entries,
// ends r's replica rather than the node: r's group is condemned (storage
// found its data damaged). Whatever r wrote into the cycle's batch dies
// with it (the driver deletes and excises the group's spans later).
func (e *Engine) applyFailedCondemned(r *replica, err error) bool {
	if !e.condemned(r.group) || !pebble.IsCorruptionError(err) {
		return false
	}
	e.cfg.Logger.Error("applying to a replica with damaged data failed: taking it out of service", "partition", r.group, "replica", r.id, "err", err.Error())
	return true
}

// takeOutCondemned takes the replicas of condemned groups out of service.
// Called on the loop, first thing in the cycle after Condemn (before any
// Ready is taken).
func (e *Engine) takeOutCondemned() {
	q := e.quar
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
		e.cfg.Logger.Error("replica taken out of service: its data is damaged; the group rebuilds it from its peers", "partition", r.group, "replica", r.id)
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
		q := e.quar
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
	q := e.quar
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
