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
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/storage"
)

// The quarantine driver: a corrupt file that holds only a few replicas'
// keys takes just those replicas out of service, and the cluster rebuilds
// them from their peers, while the node serves every other partition.
//
//  1. Storage reports the corruption from the goroutine that met it;
//     isolate decides from facts at hand, without blocking: the file's
//     bounds stay within per-group keys (storage.Isolatable), at most
//     maxQuarantinedFiles damaged files are being dealt with at once (this
//     one included; however many replicas each holds: an L0 file holds
//     every partition written since the last flush), and each replica's
//     group has at least 3 voters, so the others keep a quorum and every
//     committed entry. Otherwise the node fences itself and refuses to
//     start, as before (corrupt.go).
//  1a. Damage met while the node starts, loading its replicas, is decided
//     over the groups with a raft log here (a snapshot taken when the log
//     opened, and again once a legacy dir is migrated; a file of none is
//     not isolated). The engine skips their replicas
//     (raftstore.CondemnAtLoad) and the node starts with the others. A
//     group not loaded has no voter count at hand, so nothing of it is
//     recorded or deleted until the cluster map gives it 3 or more
//     replicas and its leader, on another node, 3 or more voters
//     (quorumElsewhere); until then its copy stays, out of service, and
//     fewer replicas fence the node. When the file held a group's
//     descriptor, the replica's id is unknown: the record says so, the
//     group stays condemned (held before peers' messages are served, at
//     every start), and step 4 first asks its leader, once it has applied
//     all it committed in its own term, for the id this node held and the
//     next id it will give, and tombstones every id below that (and the
//     id the durability mark names), before the group may host a replica
//     here again.
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

// maxQuarantinedFiles bounds the damaged files whose replicas are being
// rebuilt at once: a disk that damages more is not trusted, and the whole
// node is fenced instead. A file's count of replicas is not bounded: one
// damaged file is one fault, whether it held one partition or (an L0
// file, just flushed) all of them; rebuilding them all in place costs what
// replacing the node would, without an operator.
const maxQuarantinedFiles = 2

// quarantineEvery is how often the driver retries removals and checks
// rebuilds.
const quarantineEvery = 500 * time.Millisecond

type quarantineJob struct {
	c      storage.Corruption
	groups []uint64
	// unverified are the groups not loaded when condemned (the damage was
	// met at start), whose voter count was assumed, or all of a file's
	// groups when it holds several. Nothing of them is deleted before
	// their leader, elsewhere, confirms 3 or more voters.
	unverified []uint64
}

// quarantiner is the node's quarantine driver.
type quarantiner struct {
	fence *diskFence
	log   *slog.Logger
	fs    vfs.FS
	dir   string
	wake  chan struct{}
	// replicas is the configured replication factor: below 3, nothing
	// is isolated before the replicas are loaded.
	replicas int
	// set is the engine's set of condemned groups, made before the engine
	// (raftstore.Config.Quarantine). logGroups are the groups with a raft
	// log here, as listed when the log opened and again after the engine
	// migrated a legacy data dir: at start, the groups that may have a
	// replica here. A snapshot, so that isolate never waits for the log's
	// lock (held across fsyncs).
	set       *raftstore.Quarantine
	logGroups atomic.Pointer[[]uint64]
	// serving: the node is up; the hosted replicas are what a file may
	// hold.
	serving atomic.Bool

	mu     sync.Mutex
	jobs   []quarantineJob   // guarded by mu
	active map[uint64]string // guarded by mu: condemned or recorded, not yet rebuilt -> its file
	// files are the damaged tables (file and bounds: a virtual table
	// left by an earlier excise shares its file) isolated since the
	// start: every read of one reports it again, until it is excised.
	files map[string]bool // guarded by mu
	// recorded is the record as last written (the driver's goroutine only).
	recorded []storage.Quarantined
	// waiting are the groups of jobs waiting for their leaders (the
	// driver's goroutine only).
	waiting []uint64
	// rebuilding is what health reports.
	rebuilding atomic.Pointer[[]int]
}

// newQuarantiner makes the driver before storage opens. The record of an
// earlier run is read first (it lives outside Pebble), so that its files
// count against maxQuarantinedFiles from the first isolate on.
func newQuarantiner(fence *diskFence, log *slog.Logger, fs vfs.FS, dir string, replicas int) *quarantiner {
	if fs == nil {
		fs = vfs.Default
	}
	q := &quarantiner{fence: fence, log: log, fs: fs, dir: dir, replicas: replicas, set: raftstore.NewQuarantine(), wake: make(chan struct{}, 1), active: map[uint64]string{}, files: map[string]bool{}}
	rec, err := storage.ReadQuarantine(fs, dir)
	if err != nil {
		log.Error("quarantine record unreadable", "err", err)
	}
	for _, e := range rec {
		if !e.FileOnly {
			q.active[e.Group] = e.File
		}
	}
	return q
}

// setLogGroups publishes the groups with a raft log here.
func (q *quarantiner) setLogGroups(groups []uint64) { q.logGroups.Store(&groups) }

// isolate is storage.Options.Isolate: it decides and condemns, and must
// not block.
func (q *quarantiner) isolate(c storage.Corruption) bool {
	eng := q.fence.eng.Load()
	starting := !q.serving.Load()
	var candidates []uint64
	if starting {
		lg := q.logGroups.Load()
		if lg == nil || q.replicas < 3 {
			return false // storage is opening: nothing can be told apart yet
		}
		candidates = *lg
	} else {
		candidates = eng.Hosted()
	}
	groups := storage.GroupsTouching(c.Start, c.End, candidates)
	if starting && len(groups) == 0 {
		// The replicas a file holds are told from the raft log's groups
		// only once they are all there (a legacy data dir is migrated in
		// the engine): a file of none is not excised on that word.
		return false
	}
	var unverified []uint64
	for _, g := range groups {
		if eng != nil {
			if st, ok := eng.GroupStatus(g); ok {
				if len(st.Nodes) < 3 {
					return false // its peers could not form a quorum without it
				}
				continue
			}
		}
		unverified = append(unverified, g)
	}
	if len(groups) > 1 {
		// A file of many partitions is deleted only once each has a
		// leader elsewhere: a second damaged node must not find its peer
		// already gone (as it would not if this node had fenced itself).
		unverified = slices.Clone(groups)
	}
	table := fmt.Sprintf("%s [%x, %x]", c.Path, c.Start, c.End)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.files[table] {
		return true // isolated already
	}
	files := map[string]bool{c.Path: true}
	for _, f := range q.active {
		files[f] = true
	}
	if len(files) > maxQuarantinedFiles {
		return false
	}
	// A group already being quarantined is its earlier job's: a second
	// job would wait for a replica that job releases. A file of only such
	// groups needs no job: their excise takes what of it lies in their
	// spans.
	touched := len(groups)
	groups = slices.DeleteFunc(groups, func(g uint64) bool { _, ok := q.active[g]; return ok })
	unverified = slices.DeleteFunc(unverified, func(g uint64) bool { return !slices.Contains(groups, g) })
	if touched > 0 && len(groups) == 0 {
		q.files[table] = true
		return true
	}
	// Condemned before the table is published as isolated: another
	// reader of it returns at once, and its read must fail on a group
	// that is condemned already.
	switch {
	case starting && eng == nil:
		q.set.CondemnAtLoad(groups, c.Start, c.End)
		if eng = q.fence.eng.Load(); eng != nil {
			eng.Condemn(nil) // it may have loaded them meanwhile: take them out
		}
	case starting:
		eng.CondemnAtLoad(groups, c.Start, c.End)
	default:
		eng.Condemn(groups)
	}
	q.files[table] = true
	for _, g := range groups {
		q.active[g] = c.Path
	}
	q.jobs = append(q.jobs, quarantineJob{c: c, groups: groups, unverified: unverified})
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
	var waiting []quarantineJob
	defer func() {
		q.waiting = nil
		for _, j := range waiting {
			q.waiting = append(q.waiting, j.groups...)
		}
		q.mu.Lock()
		q.jobs = append(waiting, q.jobs...)
		q.mu.Unlock()
		q.publish()
	}()
	for _, j := range jobs {
		if len(j.unverified) > 0 {
			ok, err := n.quorumElsewhere(ctx, j.unverified)
			if err != nil {
				n.quarantineFailed(j.c, err)
				return
			}
			if !ok {
				waiting = append(waiting, j) // asked again next round
				continue
			}
			j.unverified = nil
		}
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
		var known, unknown []uint64
		for _, g := range j.groups {
			e := storage.Quarantined{Group: g, Replica: ids[g], File: j.c.Path, Start: j.c.Start, End: j.c.End}
			if e.Replica == raftstore.ReplicaUnknown {
				e.Replica, e.IDUnknown = 0, true
				unknown = append(unknown, g)
				delete(ids, g) // asked of the group's leader (resolveID)
			} else {
				known = append(known, g)
			}
			entries = append(entries, e)
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
		n.eng.Release(known)
		n.log.Error("corrupt file removed: its partitions' replicas on this node are quarantined and will be rebuilt from their peers",
			"file", j.c.Path, "groups", j.groups, "replicas", ids, "ids_asked_of_leaders", unknown)
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
	var done, resolved []uint64
	for _, e := range q.recorded {
		if !e.Excised {
			keep = append(keep, e) // a job of this round failed; the node is fenced
			continue
		}
		if e.IDUnknown {
			if !n.resolveID(ctx, &e) {
				keep = append(keep, e)
				continue
			}
			resolved = append(resolved, e.Group)
		}
		if e.FileOnly || e.Replica == 0 || n.rebuilt(ctx, e) {
			done = append(done, e.Group)
			continue
		}
		keep = append(keep, e)
	}
	if len(keep) == len(q.recorded) && len(resolved) == 0 {
		return
	}
	if err := storage.WriteQuarantine(q.fs, q.dir, keep); err != nil {
		n.log.Error("could not update the quarantine record", "err", err)
		return
	}
	q.recorded = keep
	// Only now that the record no longer holds them unknown: a restart
	// before this would hold them again (holdUnknown).
	n.eng.Release(resolved)
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
		n.log.Info("quarantined replica rebuilt from its peers", "partition", e.Group, "old_replica", e.Replica, "replica", st.ReplicaID)
		return true
	}
	m, ok := control.AskGroup(ctx, n.tr, n.groupCandidates(e.Group), e.Group)
	if !ok {
		return false
	}
	if slices.Contains(m.IDs, e.Replica) {
		if err := control.RemoveDamaged(ctx, n.tr, m.Leader, e.Group, self, e.Replica); err != nil {
			n.log.Info("removal of the quarantined replica not done yet; retried", "partition", e.Group, "replica", e.Replica, "err", err)
		}
		return false
	}
	elsewhere := !slices.Contains(m.Voters, self) && !slices.Contains(m.Learners, self) && len(m.Voters) >= n.cfg.Replicas
	if elsewhere {
		n.log.Info("quarantined replica rebuilt on other nodes", "partition", e.Group, "old_replica", e.Replica, "voters", m.Voters)
	}
	return elsewhere
}

// quorumElsewhere reports whether each of groups, condemned before its
// replica here loaded, has 3 or more voters by the cluster map and by its
// leader on another node: its copy here may then be deleted, as the others
// keep a quorum and every committed entry. False: a leader has not
// answered yet (asked again later); an error: a group has fewer voters,
// and the node fences itself rather than delete a copy it may need.
func (n *Node) quorumElsewhere(ctx context.Context, groups []uint64) (bool, error) {
	m := n.cmap.Current()
	for _, g := range groups {
		var placed int
		switch {
		case g == statemachine.MetaGroup:
			placed = len(m.Meta)
		default:
			if part, ok := m.Part(g); ok {
				placed = len(part.Replicas)
			}
		}
		if placed < 3 {
			return false, fmt.Errorf("partition group %d has %d replicas by the cluster map: its copy here may be needed", g, placed)
		}
	}
	for _, g := range groups {
		gm, ok := control.AskGroup(ctx, n.tr, n.groupCandidates(g), g)
		if !ok || gm.Leader == n.cfg.NodeID {
			n.log.Info("a damaged replica's group has not confirmed its quorum elsewhere yet: its copy here is kept, out of service", "partition", g)
			return false, nil
		}
		if len(gm.Voters) < 3 {
			return false, fmt.Errorf("partition group %d has %d voters: its copy here may be needed", g, len(gm.Voters))
		}
	}
	return true, nil
}

// resolveID learns from e's group leader the id of the replica this node
// held (0: none) and the next id the group will give, tombstones every id
// below that (the damaged one among them, whatever it was; a replica
// created later has a new id) and fills e in. False: not yet.
func (n *Node) resolveID(ctx context.Context, e *storage.Quarantined) bool {
	self := n.cfg.NodeID
	m, ok := control.AskGroup(ctx, n.tr, n.groupCandidates(e.Group), e.Group)
	// A leader that has not applied all it committed in its own term may
	// not know of the replica it added here last.
	if !ok || m.NextID == 0 || !m.Settled {
		return false
	}
	id := m.ReplicaOn(self)
	if id == 0 && (slices.Contains(m.Voters, self) || slices.Contains(m.Learners, self)) {
		return false // an answer that pairs no ids with nodes
	}
	tomb := max(m.NextID-1, id)
	// The durability mark names the replica this node had when it was
	// last written: one more witness, should the leader's view lag.
	if entries, ok, err := storage.ReadMark(n.quar.fs, n.quar.dir); ok && err == nil {
		for _, me := range entries {
			if me.Group == e.Group {
				tomb = max(tomb, me.Replica)
			}
		}
	}
	if err := storage.RaiseTombstone(n.db, e.Group, tomb); err != nil {
		n.log.Error("could not tombstone a quarantined replica; retried", "partition", e.Group, "err", err)
		return false
	}
	n.log.Info("quarantined replica's id learned from its group's leader", "partition", e.Group, "replica", id, "tombstone", tomb)
	e.Replica, e.IDUnknown = id, false
	return true
}

// holdUnknown condemns, in the engine, the recorded groups whose replica
// id is not known yet, so that no replica of them is created before
// resolveID tombstoned it. Called at start, before peers' messages are
// served.
func (n *Node) holdUnknown() error {
	rec, err := storage.ReadQuarantine(n.quar.fs, n.quar.dir)
	if err != nil {
		return err
	}
	var groups []uint64
	for _, e := range rec {
		if e.IDUnknown {
			groups = append(groups, e.Group)
		}
	}
	if len(groups) > 0 {
		n.eng.Condemn(groups)
	}
	return nil
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
	} else if part, ok := m.Part(group); ok {
		add(part.Replicas...)
		add(part.Learners...)
	}
	for _, rec := range m.Nodes {
		add(rec.ID)
	}
	return out
}

// publish makes the partitions being rebuilt visible to health.
func (q *quarantiner) publish() {
	var ids []int
	add := func(g uint64) {
		if g != statemachine.MetaGroup && !slices.Contains(ids, int(g)) {
			ids = append(ids, int(g))
		}
	}
	for _, e := range q.recorded {
		if !e.FileOnly && (e.Replica != 0 || e.IDUnknown) {
			add(e.Group)
		}
	}
	for _, g := range q.waiting {
		add(g)
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		ids = nil
	}
	q.rebuilding.Store(&ids)
}
