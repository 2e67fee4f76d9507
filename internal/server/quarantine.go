package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// The quarantine driver: a corrupt file that holds only a few replicas'
// keys takes just those replicas out of service, and the cluster rebuilds
// them from their peers, while the node serves every other partition.
//
//  1. Storage reports the corruption from the goroutine that met it;
//     isolate decides from facts at hand, without blocking: the file's
//     bounds stay within per-group keys (storage.Isolatable), it holds at
//     most maxQuarantined of this node's replicas (counting those still
//     being rebuilt), and each has at least 3 voters, so the others keep
//     a quorum and every committed entry. Otherwise the node fences itself
//     and refuses to start, as before (corrupt.go), which is also what
//     happens before the node serves (a start that meets damage fails).
//  2. The engine condemns the groups at once (raftstore/quarantine.go):
//     their replicas stop serving, voting and acknowledging.
//  3. The driver records them (group, replica id, file bounds) in the
//     data dir, synced, then tombstones the ids and excises the groups'
//     spans and the file (storage/quarantine.go), then lets the engine
//     host the groups again. A restart finishes what the record holds
//     before any replica loads, so the damaged copy never comes back.
//  4. It asks each group's leader to remove the damaged replica by id
//     (control/damaged.go); placement then adds a new replica (a new id)
//     where it wants one, filled by a snapshot from the leader. An entry
//     leaves the record once the group has its replicas back: here, a
//     voter with a new id that has applied a snapshot; elsewhere, R voters
//     without this node.
//
// /readyz and /v1/status name the partitions being rebuilt; the node stays
// ready (it forwards their requests to their leaders).

// maxQuarantined bounds the replicas quarantined at once: a disk that
// damages more than a few files' worth of partitions is not trusted, and
// the whole node is fenced instead.
const maxQuarantined = 4

// quarantineEvery is how often the driver retries removals and checks
// rebuilds.
const quarantineEvery = 500 * time.Millisecond

type quarantineJob struct {
	c      storage.Corruption
	groups []uint64
}

// quarantiner is the node's quarantine driver.
type quarantiner struct {
	fence *diskFence
	log   *slog.Logger
	fs    vfs.FS
	dir   string
	wake  chan struct{}
	// serving: the node is up, and a corruption may be isolated.
	serving atomic.Bool

	mu     sync.Mutex
	jobs   []quarantineJob // guarded by mu
	active map[uint64]bool // guarded by mu: condemned or recorded, not yet rebuilt
	// files are the damaged tables (file and bounds: a virtual table
	// left by an earlier excise shares its file) isolated since the
	// start: every read of one reports it again, until it is excised.
	files map[string]bool // guarded by mu
	// recorded is the record as last written (the driver's goroutine only).
	recorded []storage.Quarantined
	// rebuilding is what health reports.
	rebuilding atomic.Pointer[[]int]
}

func newQuarantiner(fence *diskFence, log *slog.Logger, fs vfs.FS, dir string) *quarantiner {
	if fs == nil {
		fs = vfs.Default
	}
	return &quarantiner{fence: fence, log: log, fs: fs, dir: dir, wake: make(chan struct{}, 1), active: map[uint64]bool{}, files: map[string]bool{}}
}

// isolate is storage.Options.Isolate: it decides and condemns, and must
// not block.
func (q *quarantiner) isolate(c storage.Corruption) bool {
	eng := q.fence.eng.Load()
	if eng == nil || !q.serving.Load() {
		return false
	}
	table := fmt.Sprintf("%s [%x, %x]", c.Path, c.Start, c.End)
	q.mu.Lock()
	seen := q.files[table]
	q.mu.Unlock()
	if seen {
		return true // isolated already
	}
	groups := storage.GroupsTouching(c.Start, c.End, eng.Hosted())
	for _, g := range groups {
		if st, ok := eng.GroupStatus(g); ok && len(st.Nodes) < 3 {
			return false // its peers could not form a quorum without it
		}
	}
	q.mu.Lock()
	n := len(q.active)
	for _, g := range groups {
		if !q.active[g] {
			n++
		}
	}
	if n > maxQuarantined {
		q.mu.Unlock()
		return false
	}
	if q.files[table] {
		q.mu.Unlock()
		return true // another reader of the table got here first
	}
	q.files[table] = true
	for _, g := range groups {
		q.active[g] = true
	}
	q.jobs = append(q.jobs, quarantineJob{c: c, groups: groups})
	q.mu.Unlock()
	eng.Condemn(groups)
	q.log.Error("the corrupt file holds only these partitions' keys: their replicas on this node are taken out of service and rebuilt from their peers; the node keeps serving the others",
		"file", c.Path, "groups", groups)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// Rebuilding lists the partitions being rebuilt, for health.
func (q *quarantiner) Rebuilding() []int {
	if p := q.rebuilding.Load(); p != nil {
		return *p
	}
	return nil
}

// run drives quarantines until ctx ends. It resumes what the record
// holds (storage finished the tombstones and excises at open).
func (n *Node) runQuarantine(ctx context.Context) {
	q := n.quar
	rec, err := storage.ReadQuarantine(q.fs, q.dir)
	if err != nil {
		n.log.Error("quarantine record unreadable", "err", err)
	}
	q.mu.Lock()
	for _, e := range rec {
		q.active[e.Group] = true
	}
	q.mu.Unlock()
	q.recorded = rec
	q.publish()
	t := time.NewTicker(quarantineEvery)
	defer t.Stop()
	for {
		n.quarantineJobs(ctx)
		n.quarantineProgress(ctx)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-t.C:
		}
	}
}

// quarantineJobs records, tombstones and excises the groups condemned
// since the last round (steps 2 and 3).
func (n *Node) quarantineJobs(ctx context.Context) {
	q := n.quar
	q.mu.Lock()
	jobs := q.jobs
	q.jobs = nil
	q.mu.Unlock()
	for _, j := range jobs {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ids, err := n.eng.Condemned(cctx, j.groups)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.quarantineFailed(j.c, fmt.Errorf("the engine did not take the replicas out of service: %w", err))
			}
			return
		}
		entries := slices.Clone(q.recorded)
		for _, g := range j.groups {
			entries = append(entries, storage.Quarantined{Group: g, Replica: ids[g], File: j.c.Path, Start: j.c.Start, End: j.c.End})
		}
		if len(j.groups) == 0 {
			entries = append(entries, storage.Quarantined{FileOnly: true, File: j.c.Path, Start: j.c.Start, End: j.c.End})
		}
		if err := storage.WriteQuarantine(q.fs, q.dir, entries); err != nil {
			n.quarantineFailed(j.c, fmt.Errorf("could not record the quarantine: %w", err))
			return
		}
		q.recorded = entries
		q.publish()
		if err := storage.FinishQuarantine(ctx, n.db, q.fs, q.dir); err != nil {
			n.quarantineFailed(j.c, err)
			return
		}
		if q.recorded, err = storage.ReadQuarantine(q.fs, q.dir); err != nil {
			n.quarantineFailed(j.c, err)
			return
		}
		n.eng.Release(j.groups)
		n.log.Error("corrupt file removed: its partitions' replicas on this node are quarantined and will be rebuilt from their peers",
			"file", j.c.Path, "groups", j.groups, "replicas", ids)
		q.publish()
	}
}

// quarantineFailed falls back to the whole-node fence.
func (n *Node) quarantineFailed(c storage.Corruption, err error) {
	n.log.Error("quarantine failed: fencing the node", "file", c.Path, "err", err)
	c.Detail += "; quarantine failed: " + err.Error()
	if rerr := storage.RecordCorruption(n.quar.fs, n.quar.dir, c); rerr != nil {
		n.log.Error("could not record the corruption in the data dir", "err", rerr)
	}
	n.fence.onCorruption(c)
}

// quarantineProgress asks for the removal of each recorded replica and
// drops the entries whose group has its replicas back (step 4).
func (n *Node) quarantineProgress(ctx context.Context) {
	q := n.quar
	var keep []storage.Quarantined
	var done []uint64
	for _, e := range q.recorded {
		if !e.Excised {
			keep = append(keep, e) // a job of this round failed; the node is fenced
			continue
		}
		if e.FileOnly || e.Replica == 0 || n.rebuilt(ctx, e) {
			done = append(done, e.Group)
			continue
		}
		keep = append(keep, e)
	}
	if len(keep) == len(q.recorded) {
		return
	}
	if err := storage.WriteQuarantine(q.fs, q.dir, keep); err != nil {
		n.log.Error("could not update the quarantine record", "err", err)
		return
	}
	q.recorded = keep
	q.mu.Lock()
	for _, g := range done {
		if !slices.ContainsFunc(keep, func(e storage.Quarantined) bool { return e.Group == g }) {
			delete(q.active, g)
		}
	}
	q.mu.Unlock()
	q.publish()
}

// rebuilt reports whether e's group has its replicas back, asking its
// leader to remove the damaged replica while it is still a member.
func (n *Node) rebuilt(ctx context.Context, e storage.Quarantined) bool {
	self := n.cfg.NodeID
	if st, ok := n.eng.GroupStatus(e.Group); ok && st.ReplicaID > e.Replica && st.AppliedIndex > 0 && slices.Contains(st.Nodes, self) {
		n.log.Info("quarantined replica rebuilt from its peers", "group", e.Group, "old_replica", e.Replica, "replica", st.ReplicaID)
		return true
	}
	m, ok := control.AskGroup(ctx, n.tr, n.groupCandidates(e.Group), e.Group)
	if !ok {
		return false
	}
	if slices.Contains(m.IDs, e.Replica) {
		if err := control.RemoveDamaged(ctx, n.tr, m.Leader, e.Group, self, e.Replica); err != nil {
			n.log.Info("removal of the quarantined replica not done yet; retried", "group", e.Group, "replica", e.Replica, "err", err)
		}
		return false
	}
	elsewhere := !slices.Contains(m.Voters, self) && !slices.Contains(m.Learners, self) && len(m.Voters) >= n.cfg.Replicas
	if elsewhere {
		n.log.Info("quarantined replica rebuilt on other nodes", "group", e.Group, "old_replica", e.Replica, "voters", m.Voters)
	}
	return elsewhere
}

// groupCandidates lists the nodes that may lead group, the likeliest
// first.
func (n *Node) groupCandidates(group uint64) []uint64 {
	var out []uint64
	add := func(ids ...uint64) {
		for _, id := range ids {
			if id != 0 && id != n.cfg.NodeID && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	add(n.router.LeaderOf(group))
	m := n.cmap.Current()
	if group == statemachine.MetaGroup {
		add(m.Meta...)
	} else if group < uint64(len(m.Parts)) {
		add(m.Parts[group].Replicas...)
		add(m.Parts[group].Learners...)
	}
	for _, rec := range m.Nodes {
		add(rec.ID)
	}
	return out
}

// publish makes the partitions being rebuilt visible to health.
func (q *quarantiner) publish() {
	var ids []int
	for _, e := range q.recorded {
		if !e.FileOnly && e.Replica != 0 && e.Group != statemachine.MetaGroup && !slices.Contains(ids, int(e.Group)) {
			ids = append(ids, int(e.Group))
		}
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		ids = nil
	}
	q.rebuilding.Store(&ids)
}
