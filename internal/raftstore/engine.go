package raftstore

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
)

// Engine hosts a node's replicas. See the package doc for its loop.
type Engine struct {
	cfg  Config
	db   *pebble.DB
	rlog *raftlog.Log // the node's raft log: every group's entries and hard state
	tr   Transport

	// replicas and byGroup are the loop's (and, before Start, AddReplica's):
	// membership changes add and destroy replicas on the loop, which then
	// publishes the set for other goroutines (groups). The loop owns the
	// replica structs' internals; others read only their published status.
	replicas []*replica
	byGroup  map[uint64]*replica
	groups   atomic.Pointer[map[uint64]*replica]

	in   inbox
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	waitMu  sync.Mutex
	waiters map[waitKey]*waiter // guarded by waitMu
	pending atomic.Int64        // proposals + reads waiting
	// lagAsked: a FollowerLags question waits on the loop (followerlag.go).
	lagAsked atomic.Bool

	outSnaps snapshotRegistry
	cuts     cutRegistry
	fatal    atomic.Pointer[error]
	guard    peerGuard  // loop only
	rng      *rand.Rand // loop only
	started  atomic.Bool
	disk     diskState   // disk.go
	mark     durableMark // mark.go
	// over is closed when the loop exited or the engine was fenced,
	// whichever comes first (a fenced loop may never exit).
	over     chan struct{}
	overOnce sync.Once
	stopOnce sync.Once    // closes stop: Stop, or Fence
	progress loopProgress // see progress.go
	quar     *Quarantine  // quarantine.go
	pinTicks int          // loop only: ticks since compactPinned looked
	logStats logStats     // logcompact.go
	// births are the groups splits wrote this cycle (split.go), hosted at
	// its end; splitSync makes the apply batch that wrote them synced.
	births    []splitBirth
	splitSync bool
	// afterCommit runs once the cycle's apply batch is committed: what a
	// merge widens is published to readers only then (merge.go).
	afterCommit []func()
	// stage is where incoming snapshots are staged (snapstage.go).
	stage stager
}

type waitKey struct{ origin, seq uint64 }

type result struct {
	reply []byte
	err   error
}

// A waiter is called exactly once: by whoever removes it from the
// waiter table (answer, a failure, or its proposer giving up).
type waiter struct {
	group uint64
	fn    func(result)
}

func (w *waiter) deliver(res result) { w.fn(res) }

// New creates an engine over db, the state machines, and rlog, the raft
// logs; the caller closes both, once Stop returned. A data dir from
// before the raft log left Pebble is migrated first (migrate.go).
// Replicas are added with AddReplica before Start.
func New(cfg Config, db *pebble.DB, rlog *raftlog.Log, tr Transport) (*Engine, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := migrateLegacyLogs(db, rlog, cfg.Logger); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		db:      db,
		rlog:    rlog,
		tr:      tr,
		byGroup: map[uint64]*replica{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		waiters: map[waitKey]*waiter{},
	}
	e.over = make(chan struct{})
	e.disk.stalled = make(chan struct{})
	e.in.reset()
	e.outSnaps.init(e.now)
	if err := e.initStager(); err != nil {
		return nil, err
	}
	e.cuts.now = e.now
	// The loop's own randomness (removal-probe nonces) is seeded from
	// crypto/rand, as raft's election jitter is: a simulator that seeds
	// crypto/rand replays both.
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	e.rng = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	e.publishGroups()
	e.quar = cfg.Quarantine
	if e.quar == nil {
		e.quar = NewQuarantine()
	}
	if err := e.checkLogsAgainstMark(); err != nil {
		return nil, err
	}
	return e, nil
}

// Bootstrap is the initial state of a group created with the cluster:
// every initial replica is given the same, so they agree without talking.
type Bootstrap struct {
	Desc *storage.Descriptor
	// Data holds initial user keys and their stored values.
	Data [][2][]byte
}

// AddReplica loads (or, if boot is non-nil and the group has no state
// yet, creates) the local replica of a group. Call before Start.
func (e *Engine) AddReplica(group uint64, boot *Bootstrap) error {
	if _, ok := e.byGroup[group]; ok {
		return fmt.Errorf("group %d added twice", group)
	}
	b, ok, err := storage.Get(e.db, storage.DescriptorKey(group))
	if err != nil {
		return err
	}
	var desc *storage.Descriptor
	switch {
	case ok:
		if desc, err = storage.DecodeDescriptor(b); err != nil {
			return err
		}
	case boot == nil:
		return fmt.Errorf("group %d has no state on disk", group)
	default:
		desc = boot.Desc.Clone()
		if err := writeBootstrap(e.db, e.rlog, desc, boot.Data); err != nil {
			return err
		}
	}
	r, err := e.loadReplica(desc)
	if err != nil {
		return fmt.Errorf("load group %d: %w", group, err)
	}
	e.host(r)
	return nil
}

// host adds r to the hosted replicas. Called before Start or on the loop.
func (e *Engine) host(r *replica) {
	e.replicas = append(e.replicas, r)
	slices.SortFunc(e.replicas, func(a, b *replica) int { return cmp.Compare(a.group, b.group) })
	e.byGroup[r.group] = r
	e.publishGroups()
}

// publishGroups makes the hosted set visible to other goroutines.
func (e *Engine) publishGroups() {
	m := make(map[uint64]*replica, len(e.byGroup))
	for g, r := range e.byGroup {
		m[g] = r
	}
	e.groups.Store(&m)
}

// hosted returns the replica of group as last published, for goroutines
// other than the loop (which uses byGroup): only its status may be read.
func (e *Engine) hosted(group uint64) *replica { return (*e.groups.Load())[group] }

// hostedList returns the published replicas ordered by group.
func (e *Engine) hostedList() []*replica {
	m := *e.groups.Load()
	out := make([]*replica, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *replica) int { return cmp.Compare(a.group, b.group) })
	return out
}

// Bootstrap state: every replica of a new group starts from the same
// synthetic snapshot at (bootIndex, bootTerm), so all of them agree on the
// log's starting point without exchanging anything.
const (
	bootIndex = 10
	bootTerm  = 5
)

// writeBootstrap writes a new replica's initial state: first its raft log
// (a fresh group restarting after the synthetic snapshot), synced, then
// its state machine in one synced Pebble batch. A crash in between leaves
// a raft log group with no descriptor, which LoadAll drops, or the same
// bootstrap again; never a descriptor without its log (grouplog.go).
func writeBootstrap(db *pebble.DB, rlog *raftlog.Log, desc *storage.Descriptor, data [][2][]byte) error {
	conf := &pb.ConfState{}
	for _, r := range desc.Replicas {
		conf.Voters = append(conf.Voters, r.ID)
	}
	if err := createGroupLog(rlog, desc.Group, bootIndex, bootTerm, &pb.HardState{Term: new(uint64(bootTerm)), Commit: new(uint64(bootIndex))}); err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	for _, kv := range data {
		if err := b.Set(storage.DataKey(desc.Group, kv[0]), withVersion(bootIndex, kv[1]), nil); err != nil {
			return err
		}
	}
	applied := storage.AppliedState{Index: bootIndex, Term: bootTerm, Keys: int64(len(data)), Conf: conf}
	if err := b.Set(storage.AppliedKey(desc.Group), applied.Encode(), nil); err != nil {
		return err
	}
	if err := b.Set(storage.DescriptorKey(desc.Group), desc.Encode(), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Start runs the loop. Campaigns start on each group's preferred replica
// (first in the descriptor) so a new or restarted cluster elects leaders
// without waiting out an election timeout; PreVote keeps this from
// disturbing a healthy leader.
func (e *Engine) Start() {
	e.noteLogStats(e.rlog.Pins(0))
	e.campaignPreferred()
	e.started.Store(true)
	go e.run()
	go e.watchStall()
	if e.cfg.DataDir != "" {
		e.mark.done = make(chan struct{})
		go e.runMark()
	}
}

func (e *Engine) campaignPreferred() {
	for _, r := range e.replicas {
		if len(r.desc.Replicas) > 0 && r.desc.Replicas[0].ID == r.id {
			_ = r.rn.Campaign()
		}
	}
}

// StartDriven readies the engine to be run by its caller instead of its
// own goroutines: the campaigns of Start, and nothing else. The caller
// then calls Tick for every raft tick and Step until it reports no more
// work; nothing runs in between (a deterministic simulator steps many
// engines from one goroutine this way). Neither the stall watcher nor
// the durability mark (mark.go) runs in this mode. Stop ends it.
func (e *Engine) StartDriven() {
	e.campaignPreferred()
	e.progress.mark()
}

// Tick advances the engine's raft clock by one tick at the next cycle
// (driven mode; the loop of Start ticks by itself).
func (e *Engine) Tick() { e.in.setTick() }

// Step runs one cycle of the loop, in driven mode: everything queued
// since the last cycle (messages, proposals, reads, a tick) is taken in,
// persisted, sent and applied. It reports whether some group already has
// more work. A storage failure or a panic fences the engine as it does
// the loop of Start: every waiter is answered, and the error is returned
// now and by Err.
func (e *Engine) Step() (more bool, err error) {
	if err := e.Err(); err != nil {
		return false, err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in engine loop: %v\n%s", p, debug.Stack())
		}
		if err != nil {
			e.setFatal(err)
			e.failAllWaiters(ErrStopped)
			e.closeOver()
			err = e.Err()
		}
	}()
	more, err = e.cycle()
	e.progress.mark()
	return more, err
}

// Stop ends the loop and fails everything still waiting.
func (e *Engine) Stop() {
	e.stopOnce.Do(func() { close(e.stop) })
	if e.started.Load() {
		select {
		case <-e.done:
		case <-e.disk.stalled: // stuck inside storage: it may never return
			return
		}
		if e.mark.done != nil {
			<-e.mark.done // its last write: a clean stop leaves a complete mark
		}
	}
	e.failAllWaiters(ErrStopped)
	e.outSnaps.closeAll()
	e.stage.close()
	e.cuts.drop(func(cutKey) bool { return true })
	if !e.started.Load() {
		e.closeOver() // driven, or never started: no loop closes it
	}
}

// Stalled reports whether the loop was found stuck inside storage and the
// node fenced (disk.go): the loop may still hold the raft log's lock, so
// the caller must not wait to close it.
func (e *Engine) Stalled() bool {
	select {
	case <-e.disk.stalled:
		return true
	default:
		return false
	}
}

// Done is closed when the loop has exited (Stop, or a fatal error) or the
// engine fenced itself (a fatal error; a stalled loop may never exit).
func (e *Engine) Done() <-chan struct{} { return e.over }

func (e *Engine) closeOver() { e.overOnce.Do(func() { close(e.over) }) }

// Err returns the fatal error that stopped the engine, if any.
func (e *Engine) Err() error {
	if p := e.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// now is the node's time, from its clock: everything the loop times
// (leases, snapshot reuse, removal probes) reads it here, never the
// machine's clock, so a simulator can drive it (lint_test.go).
func (e *Engine) now() time.Time { return e.cfg.Clock.Now() }

func (e *Engine) notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Propose replicates and applies req on group, which must be led by this
// node, and returns the command's reply.
func (e *Engine) Propose(ctx context.Context, group uint64, req *Request) ([]byte, error) {
	replies, errs := e.ProposeMany(ctx, group, []*Request{req})
	return replies[0], errs[0]
}

// ProposeMany replicates reqs on group in order (they are queued together,
// so they land in the log in this order) and returns each reply or error.
// It is ProposeAsync and a wait.
func (e *Engine) ProposeMany(ctx context.Context, group uint64, reqs []*Request) ([][]byte, []error) {
	return e.ProposeManyThen(ctx, group, reqs, nil)
}

// ProposeManyThen is ProposeMany that calls queued, when not nil, once
// reqs are queued and before it waits: whatever is proposed on group from
// then on lands in the log after them.
func (e *Engine) ProposeManyThen(ctx context.Context, group uint64, reqs []*Request, queued func()) ([][]byte, []error) {
	replies, errs := make([][]byte, len(reqs)), make([]error, len(reqs))
	answered := make(chan struct{}, len(reqs))
	cancel := e.ProposeAsync(group, reqs, func(i int, reply []byte, err error) {
		replies[i], errs[i] = reply, err
		answered <- struct{}{}
	})
	if queued != nil {
		queued()
	}
	for n := 0; n < len(reqs); n++ {
		select {
		case <-answered:
			continue
		case <-ctx.Done():
			cancel(context.Cause(ctx))
		case <-e.stop:
			cancel(ErrStopped)
		case <-e.over:
			cancel(ErrStopped)
		}
		// Gave up: cancel answered what it could; the rest are being
		// answered right now.
		for ; n < len(reqs); n++ {
			<-answered
		}
	}
	return replies, errs
}

// ProposeAsync queues reqs on group, in order, and returns without
// waiting: done(i, reply, err) is called exactly once for each request,
// on the loop when it is answered, or before ProposeAsync returns when
// it is refused at once. done must not block. cancel(cause) gives up on
// every request not answered yet: their outcome is unknown (they may
// still commit), and done gets ErrUnknownOutcome with cause.
func (e *Engine) ProposeAsync(group uint64, reqs []*Request, done func(i int, reply []byte, err error)) (cancel func(cause error)) {
	refuse := func(err error) func(error) {
		for i := range reqs {
			done(i, nil, err)
		}
		return func(error) {}
	}
	if e.hosted(group) == nil {
		return refuse(ErrNoGroup)
	}
	if err := e.noSpace(); err != nil {
		return refuse(err)
	}
	for _, req := range reqs {
		if len(req.Args) == 0 {
			return refuse(ErrEmptyCommand)
		}
	}
	n := int64(len(reqs))
	if e.pending.Add(n) > int64(e.cfg.MaxPending) {
		e.pending.Add(-n)
		return refuse(ErrBusy)
	}
	ws := make([]*waiter, len(reqs))
	props := make([]*proposal, len(reqs))
	var superseded []*waiter
	e.waitMu.Lock()
	for i, req := range reqs {
		key := waitKey{req.Origin, req.Seq}
		if old := e.waiters[key]; old != nil {
			superseded = append(superseded, old)
		}
		ws[i] = &waiter{group: group, fn: func(res result) {
			e.pending.Add(-1)
			done(i, res.reply, res.err)
		}}
		e.waiters[key] = ws[i]
		props[i] = &proposal{req: req, key: key}
	}
	e.waitMu.Unlock()
	for _, old := range superseded {
		old.deliver(result{err: ErrSuperseded})
	}
	cancel = func(cause error) {
		for i, p := range props {
			if e.dropWaiter(p.key, ws[i]) {
				ws[i].deliver(result{err: fmt.Errorf("%w: %v", ErrUnknownOutcome, cause)})
			}
		}
	}
	if !e.in.addProposals(group, props) {
		for i, p := range props {
			if e.dropWaiter(p.key, ws[i]) {
				ws[i].deliver(result{err: ErrStopped})
			}
		}
		return func(error) {}
	}
	e.notify()
	return cancel
}

// dropWaiter removes w if it is still registered; false means someone is
// already answering it.
func (e *Engine) dropWaiter(key waitKey, w *waiter) bool {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	if e.waiters[key] == w {
		delete(e.waiters, key)
		return true
	}
	return false
}

// answer delivers a result to the waiter of key, if any.
func (e *Engine) answer(key waitKey, res result) {
	e.waitMu.Lock()
	w := e.waiters[key]
	delete(e.waiters, key)
	e.waitMu.Unlock()
	if w != nil {
		w.deliver(res)
	}
}

// failGroupWaiters answers every proposer waiting on group with err.
func (e *Engine) failGroupWaiters(group uint64, err error) {
	e.waitMu.Lock()
	ws := map[waitKey]*waiter{}
	for k, w := range e.waiters {
		if w.group == group {
			ws[k] = w
			delete(e.waiters, k)
		}
	}
	e.waitMu.Unlock()
	for _, k := range sortedWaitKeys(ws) {
		ws[k].deliver(result{err: err})
	}
}

// sortedWaitKeys orders waiters for answering: the same failure answers
// them in the same order every time.
func sortedWaitKeys(ws map[waitKey]*waiter) []waitKey {
	keys := make([]waitKey, 0, len(ws))
	for k := range ws {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b waitKey) int {
		return cmp.Or(cmp.Compare(a.origin, b.origin), cmp.Compare(a.seq, b.seq))
	})
	return keys
}

func (e *Engine) failAllWaiters(err error) {
	e.failWaitersOnly(err)
	for _, r := range e.replicas {
		r.failReads(err)
	}
	e.in.failAll(err)
}

// ReadBarrier returns once a read of group served from the local state
// right after it is linearizable: this replica is the leader, confirmed by
// a quorum, and has applied everything committed before the call.
func (e *Engine) ReadBarrier(ctx context.Context, group uint64) error {
	if e.hosted(group) == nil {
		return ErrNoGroup
	}
	if e.cfg.UnsafeStaleReads {
		return nil
	}
	if e.pending.Add(1) > int64(e.cfg.MaxPending) {
		e.pending.Add(-1)
		return ErrBusy
	}
	defer e.pending.Add(-1)
	ch := make(chan error, 1)
	if err := e.queueRead(group, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("read barrier: %w", ctx.Err())
	case <-e.stop:
		return ErrStopped
	case <-e.over:
		return ErrStopped
	}
}

// ReadAsync is ReadBarrier without the wait: done is called exactly once,
// on the loop when the barrier is passed or fails, or before ReadAsync
// returns when it is refused at once; it must not block. A read is never
// cancelled: one whose caller gave up is answered all the same.
func (e *Engine) ReadAsync(group uint64, done func(error)) {
	if e.hosted(group) == nil {
		done(ErrNoGroup)
		return
	}
	if e.cfg.UnsafeStaleReads {
		done(nil)
		return
	}
	if e.pending.Add(1) > int64(e.cfg.MaxPending) {
		e.pending.Add(-1)
		done(ErrBusy)
		return
	}
	if err := e.queueRead(group, func(err error) { e.pending.Add(-1); done(err) }); err != nil {
		e.pending.Add(-1)
		done(err)
	}
}

func (e *Engine) queueRead(group uint64, done func(error)) error {
	if !e.in.addRead(group, &readReq{done: done}) {
		return ErrStopped
	}
	e.notify()
	return nil
}

// Reader returns a reader over group's user data as of now.
func (e *Engine) Reader(group uint64) *DataReader {
	return &DataReader{r: e.db, group: group, clk: e.cfg.Clock, keySlot: e.cfg.KeySlot, slots: e.readerSlots(group)}
}

// readerSlots is the range a reader of group checks keys against: the
// hosted replica's, or none at all when the group is not hosted here (a
// merge destroyed it between a read's barrier and its snapshot: its data
// is gone, and an empty answer would be a lie).
func (e *Engine) readerSlots(group uint64) *slotRange {
	if e.hosted(group) == nil && e.cfg.KeySlot != nil {
		return &ownsNothing
	}
	return e.publishedSlots(group)
}

// Snapshot returns a reader of group's applied state frozen at one moment:
// every entry applied before is wholly visible, none after. Reads of
// several keys (MGET, a lock check then a value) need it, because entries
// are applied while reads run. The caller must call release.
func (e *Engine) Snapshot(group uint64) (r *DataReader, release func()) {
	snap := e.db.NewSnapshot()
	// The range after the snapshot: a split records it before its batch
	// commits, so the range is never older than the data (at worst newer,
	// refusing a key the snapshot still holds: the read is retried).
	slots := e.readerSlots(group)
	return &DataReader{r: snap, group: group, clk: e.cfg.Clock, keySlot: e.cfg.KeySlot, slots: slots}, func() { _ = snap.Close() }
}

// HasGroup reports whether a replica of group is hosted here.
func (e *Engine) HasGroup(group uint64) bool { return e.hosted(group) != nil }

// Leader returns the node id believed to lead group, or 0.
func (e *Engine) Leader(group uint64) uint64 {
	r := e.hosted(group)
	if r == nil {
		return 0
	}
	return r.status.Load().LeaderNode
}

// GroupStatus is a replica's published state.
type GroupStatus struct {
	Group        uint64
	ReplicaID    uint64
	Nodes        []uint64 // voting replicas' nodes in preference order
	Learners     []uint64 // learners' nodes (replicas being added)
	LeaderNode   uint64
	Term         uint64
	AppliedIndex uint64
	AppliedTerm  uint64 // the term of the entry at AppliedIndex
	CommitIndex  uint64
	Keys         int64 // an upper bound if KeysInexact (keycount.go)
	KeysInexact  bool
	Role         string
	ConfPending  bool                // a membership change proposed here is not applied yet
	NextID       uint64              // the descriptor's next replica id
	MemberIDs    []uint64            // replica ids of voters and learners
	Frozen       bool                // frozen for a merge (merge.go)
	MergedPlus1  uint64              // the last group merged into this one, plus one (0: none)
	Writes       uint64              // commands applied by this replica since it was loaded (load.go)
	slotSamples  [slotSamples]uint16 // slots of recent writes (HotSlot)
	slotN        int
	desc         *storage.Descriptor // read only: a replica's descriptor is replaced, never changed
}

// Settled reports whether the replica leads and has applied all it
// committed, up to an entry of its own term, with no membership change
// pending: its descriptor then holds every replica the group added.
func (s GroupStatus) Settled() bool {
	return s.Role == "StateLeader" && s.AppliedTerm == s.Term && s.AppliedIndex >= s.CommitIndex && !s.ConfPending
}

// Placed lists the group's replicas as (node, replica id) pairs, in
// descriptor order.
func (s GroupStatus) Placed() [][2]uint64 {
	if s.desc == nil {
		return nil
	}
	out := make([][2]uint64, len(s.desc.Replicas))
	for i, x := range s.desc.Replicas {
		out[i] = [2]uint64{x.Node, x.ID}
	}
	return out
}

// GroupStatus returns the status of the local replica of group.
func (e *Engine) GroupStatus(group uint64) (GroupStatus, bool) {
	r := e.hosted(group)
	if r == nil {
		return GroupStatus{}, false
	}
	return *r.status.Load(), true
}

// Status returns every local replica's status, by group.
func (e *Engine) Status() []GroupStatus {
	list := e.hostedList()
	out := make([]GroupStatus, 0, len(list))
	for _, r := range list {
		out = append(out, *r.status.Load())
	}
	return out
}

// TransferGroupLeader asks group, if this node leads it, to hand
// leadership to its replica on node to — only if that replica is active
// and has every entry the leader has, so the hand-over is quick and
// proposals are held up as briefly as possible. It returns at once; the
// transfer happens (or not) in the background.
func (e *Engine) TransferGroupLeader(group, to uint64) {
	e.in.addFunc(func() {
		if r := e.byGroup[group]; r != nil {
			r.transferTo(to)
		}
	})
	e.notify()
}

// TransferLeadership asks every group this node leads to hand leadership
// to an up-to-date follower, and waits until none is led here or ctx ends.
func (e *Engine) TransferLeadership(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.TickInterval)
	defer tick.Stop()
	for {
		led := 0
		for _, r := range e.hostedList() {
			if r.status.Load().LeaderNode == e.cfg.NodeID {
				led++
			}
		}
		if led == 0 {
			return nil
		}
		e.in.addFunc(func() {
			for _, r := range e.replicas {
				r.transferAway()
			}
		})
		e.notify()
		select {
		case <-ctx.Done():
			return fmt.Errorf("still leading %d partitions: %w", led, ctx.Err())
		case <-e.done: // the loop is gone (a fatal error): nothing can move
			return fmt.Errorf("still leading %d partitions: %w", led, ErrStopped)
		case <-tick.C:
		}
	}
}

var errFatal = errors.New("raftstore: fatal")

func (e *Engine) setFatal(err error) {
	err = fmt.Errorf("%w: %v", errFatal, err)
	e.fatal.CompareAndSwap(nil, &err)
	e.cfg.Logger.Error("replication engine stopped", "err", err)
}

// compile-time check that raft's logger interface is met by our adapter.
var _ raft.Logger = (*raftLogger)(nil)

// ScanData calls fn for group's user keys from from on, in key order, with
// their stored values (without the version), until fn returns false. The
// slices are valid only during the call. It reads the applied state as it
// is, not a snapshot: callers only use it to find work.
func (e *Engine) ScanData(group uint64, from []byte, fn func(k, stored []byte) bool) error {
	lo, hi := storage.DataSpan(group)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: append(lo, from...), UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, v, err := splitVersion(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		if !fn(it.Key()[len(lo):], v) {
			break
		}
	}
	return it.Close()
}

// ScanTxn iterates one of group's transaction tables (storage.Txn*) in the
// applied state, with keys relative to the table, until fn returns false.
func (e *Engine) ScanTxn(group uint64, table byte, fn func(k, v []byte) bool) error {
	lo, hi := storage.TxnSpan(group, table)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if !fn(it.Key()[len(lo):], it.Value()) {
			break
		}
	}
	return it.Close()
}
