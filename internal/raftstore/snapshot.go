package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/storage"
)

// A raft snapshot of a group is its applied state: the user data and the
// dedupe table, read from a Pebble snapshot taken when raft asks for one,
// and streamed to the follower out of band. The raft message carries only
// the metadata (index, term, conf state).

// MaxSnapshotBytes bounds a snapshot a node accepts: the disk its staged
// files take until they are installed (snapstage.go).
const MaxSnapshotBytes = 8 << 30

// MaxSnapshotTableBytes bounds the part of a snapshot the node keeps in
// memory as well: the dedupe and transaction tables.
const MaxSnapshotTableBytes = 256 << 20

// stageCheckBytes is how often, in bytes staged, the free space on the
// data dir's volume is checked: a snapshot that would take the disk
// below the guard's reserve is refused, not left to fill it.
const stageCheckBytes = 64 << 20

type outSnap struct {
	meta *pb.Snapshot
	snap *pebble.Snapshot
	refs int // registry's reference + senders'
	made time.Time
}

type snapshotRegistry struct {
	now   func() time.Time // the node's clock
	mu    sync.Mutex
	byGrp map[uint64]*outSnap // guarded by mu
}

func (s *snapshotRegistry) init(now func() time.Time) {
	s.now, s.byGrp = now, map[uint64]*outSnap{}
}

// snapshotFor returns the metadata of a snapshot of r's applied state,
// reusing the current one if nothing was applied since. Called on the loop.
func (s *snapshotRegistry) snapshotFor(db *pebble.DB, r *replica) *pb.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.byGrp[r.group]; cur != nil {
		if cur.meta.GetMetadata().GetIndex() == r.committed.Index && s.now().Sub(cur.made) < time.Minute {
			return proto.Clone(cur.meta).(*pb.Snapshot)
		}
		s.releaseLocked(cur)
	}
	o := &outSnap{
		meta: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index:     new(r.committed.Index),
			Term:      new(r.committed.Term),
			ConfState: proto.Clone(r.committed.Conf).(*pb.ConfState),
		}},
		snap: db.NewSnapshot(),
		refs: 1,
		made: s.now(),
	}
	s.byGrp[r.group] = o
	return proto.Clone(o.meta).(*pb.Snapshot)
}

func (s *snapshotRegistry) acquire(group, index uint64) *outSnap {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byGrp[group]
	if o == nil || o.meta.GetMetadata().GetIndex() != index {
		return nil
	}
	o.refs++
	return o
}

func (s *snapshotRegistry) release(o *outSnap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(o)
}

func (s *snapshotRegistry) releaseLocked(o *outSnap) {
	o.refs--
	if o.refs == 0 {
		o.snap.Close()
	}
	for g, cur := range s.byGrp {
		if cur == o && o.refs <= 0 {
			delete(s.byGrp, g)
		}
	}
}

// expire drops the registry's hold on snapshots older than age, so an
// unused Pebble snapshot does not pin old data for long.
func (s *snapshotRegistry) expire(age time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, o := range s.byGrp {
		if s.now().Sub(o.made) > age {
			delete(s.byGrp, g)
			s.releaseLocked(o)
		}
	}
}

// drop releases the registry's hold on group's snapshot (the replica is
// gone; senders still streaming keep theirs).
func (s *snapshotRegistry) drop(group uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.byGrp[group]; o != nil {
		delete(s.byGrp, group)
		s.releaseLocked(o)
	}
}

func (s *snapshotRegistry) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, o := range s.byGrp {
		delete(s.byGrp, g)
		s.releaseLocked(o)
	}
}

// snapSource iterates a group's replicated state in a Pebble snapshot.
type snapSource struct {
	snap  *pebble.Snapshot
	group uint64
}

func (s snapSource) Iterate(fn func(k, v []byte) error) error {
	// The descriptor first: it maps the snapshot's replica ids to nodes, and
	// a replica created empty has no other way to learn them.
	dk := storage.DescriptorKey(s.group)
	d, closer, err := s.snap.Get(dk)
	if err != nil {
		return fmt.Errorf("snapshot of group %d: descriptor: %w", s.group, err)
	}
	err = fn(dk, d)
	closer.Close()
	if err != nil {
		return err
	}
	for _, span := range storage.ReplicatedSpans(s.group) {
		it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := fn(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// sendSnapshot streams the snapshot named by env to node in the background.
func (e *Engine) sendSnapshot(r *replica, node uint64, env Envelope) {
	to := env.Msg.GetTo()
	o := e.outSnaps.acquire(r.group, env.Msg.GetSnapshot().GetMetadata().GetIndex())
	if o == nil {
		r.rn.ReportSnapshot(to, 1 /* raft.SnapshotFailure */)
		return
	}
	e.cfg.Metrics.SnapshotsSent.Inc()
	e.tr.SendSnapshot(node, env, snapSource{snap: o.snap, group: r.group}, func(err error) {
		e.outSnaps.release(o)
		if err != nil {
			e.cfg.Logger.Warn("snapshot send failed", "partition", r.group, "node", node, "err", err)
		}
		e.in.addSnapStatus(snapStatus{group: r.group, to: to, failed: err != nil})
		e.notify()
	})
}

// SnapshotBuilder stages an incoming snapshot's pairs for one group, on
// disk (snapstage.go).
type SnapshotBuilder struct {
	group   uint64
	stage   *stagedSnap
	spans   [][2][]byte
	written []bool      // spans whose file was started
	cur     *spanWriter // the span being written
	keys    int64
	tables  txnTables // the transaction tables' records
	bytes   int64
	dedupe  map[uint64]*dedupeState // rebuilt from the dedupe records received
	desc    *storage.Descriptor
	descRaw []byte
	start   time.Time // when the first byte arrived
	kept    int64     // bytes of the tables kept in memory (dedupe, transactions)
	checked int64     // b.bytes when free space was last checked
	reserve uint64    // free space the staging keeps on the disk
}

// NewSnapshotBuilder starts staging the snapshot env announces: for a
// hosted group, or for a replica id a leader may be adding here (above the
// group's tombstone; the loop decides for good, see replicaFor).
func (e *Engine) NewSnapshotBuilder(env Envelope) (*SnapshotBuilder, error) {
	group := env.Group
	if e.hosted(group) == nil && env.Msg.GetTo() <= e.tombstone(group) {
		return nil, ErrNoGroup
	}
	if full := e.disk.full.Load(); full != nil {
		return nil, full
	}
	stage, err := e.stage.newStage(group)
	if err != nil {
		return nil, fmt.Errorf("snapshot for group %d: staging: %w", group, err)
	}
	spans := storage.ReplicatedSpans(group)
	return &SnapshotBuilder{group: group, stage: stage, spans: spans, written: make([]bool, len(spans)), tables: newTxnTables(), dedupe: map[uint64]*dedupeState{}, start: e.now(), reserve: e.disk.reserve.Load()}, nil
}

// Add stages one pair, refusing keys outside the group's replicated spans,
// pairs out of order and snapshots over MaxSnapshotBytes.
func (b *SnapshotBuilder) Add(k, v []byte) error {
	if bytes.Equal(k, storage.DescriptorKey(b.group)) {
		d, err := storage.DecodeDescriptor(v)
		if err != nil || d.Group != b.group || b.desc != nil {
			return fmt.Errorf("snapshot for group %d carries a bad descriptor", b.group)
		}
		b.desc, b.descRaw = d, slices.Clone(v)
		return nil
	}
	span := slices.IndexFunc(b.spans, func(sp [2][]byte) bool {
		return bytes.Compare(k, sp[0]) >= 0 && bytes.Compare(k, sp[1]) < 0
	})
	if span < 0 {
		return fmt.Errorf("snapshot for group %d carries a foreign key", b.group)
	}
	b.bytes += int64(len(k) + len(v))
	if b.bytes > MaxSnapshotBytes {
		return fmt.Errorf("snapshot for group %d exceeds %d bytes", b.group, int64(MaxSnapshotBytes))
	}
	if b.bytes-b.checked >= stageCheckBytes {
		if err := b.stage.checkSpace(b.reserve); err != nil {
			return fmt.Errorf("snapshot for group %d: %w", b.group, err)
		}
		b.checked = b.bytes
	}
	// Spans 0 and 1 are user data and the dedupe table; the dedupe and
	// transaction tables are also kept in memory, so they have a bound
	// of their own.
	isData, isDedupe := span == 0, span == 1
	if span == 1 || span == 2 {
		if b.kept += int64(len(k) + len(v)); b.kept > MaxSnapshotTableBytes {
			return fmt.Errorf("snapshot for group %d: its dedupe and transaction tables exceed %d bytes", b.group, MaxSnapshotTableBytes)
		}
	}
	switch {
	case isData:
		b.keys++
	case b.tables.load(b.group, k, v): // a transaction table's record, kept
	case isDedupe && len(k) == 25:
		origin, seq := binary.BigEndian.Uint64(k[9:]), binary.BigEndian.Uint64(k[17:])
		d := b.dedupe[origin]
		if d == nil {
			d = &dedupeState{live: map[uint64]struct{}{}}
			b.dedupe[origin] = d
		}
		if seq == math.MaxUint64 && len(v) == 8 {
			d.wm = binary.BigEndian.Uint64(v)
		} else if seq != math.MaxUint64 {
			d.live[seq] = struct{}{}
		}
	}
	return b.put(span, k, v)
}

// Abort discards the staged data, without writing or syncing more of it.
func (b *SnapshotBuilder) Abort() {
	if b.stage != nil {
		b.stage.doomed.Store(true)
	}
	_ = b.closeSpan()
	b.stage.Close()
}

// ReceiveSnapshot hands a fully received snapshot to raft. The data is
// installed, atomically with the new raft state, if raft accepts it.
func (e *Engine) ReceiveSnapshot(env Envelope, b *SnapshotBuilder) error {
	if env.Group != b.group || env.Msg.GetType() != pb.MsgSnap {
		b.Abort()
		return fmt.Errorf("snapshot envelope does not match its data")
	}
	if b.desc == nil {
		b.Abort()
		return fmt.Errorf("snapshot for group %d carries no descriptor", b.group)
	}
	if err := b.finish(); err != nil {
		b.Abort()
		return fmt.Errorf("snapshot for group %d: staging: %w", b.group, err)
	}
	if !e.in.addSnap(incomingSnap{env: env, data: b.stage, keys: b.keys, tables: b.tables, dedupe: b.dedupe, desc: b.desc, descRaw: b.descRaw, bytes: b.bytes, took: e.now().Sub(b.start)}) {
		b.Abort()
		return ErrStopped
	}
	e.cfg.Metrics.SnapshotsRecv.Inc()
	e.notify()
	return nil
}

// installSnapshot replaces r's state with the snapshot raft accepted, in
// one ingest (snapstage.go).
func (e *Engine) installSnapshot(r *replica, snap *pb.Snapshot) error {
	md := snap.GetMetadata()
	var ps *incomingSnap
	for _, p := range r.pendingSnaps {
		if ps == nil && p.env.Msg.GetSnapshot().GetMetadata().GetIndex() == md.GetIndex() {
			ps = p
		} else {
			p.data.Close()
		}
	}
	r.pendingSnaps = nil
	if ps == nil {
		return fmt.Errorf("group %d: raft accepted snapshot %d whose data is not staged", r.group, md.GetIndex())
	}
	defer ps.data.Close()
	applied := storage.AppliedState{Index: md.GetIndex(), Term: md.GetTerm(), Keys: ps.keys, Conf: proto.Clone(md.GetConfState()).(*pb.ConfState)}
	if err := ps.data.ingest(e.db, r.group, applied, ps.descRaw); err != nil {
		return fmt.Errorf("group %d: installing snapshot %d: %w", r.group, md.GetIndex(), err)
	}
	r.applied = applied
	// The raft log is reset to the snapshot after this batch is synced
	// (persist).
	r.log.SetConf(r.applied.Conf)
	// The dedupe state and the descriptor come with the snapshot's data.
	r.dedupe = ps.dedupe
	r.tables = ps.tables
	r.desc = ps.desc
	// bytes and receive_ms give the rate a replica moves at.
	e.cfg.Logger.Info("installed snapshot", "partition", r.group, "index", md.GetIndex(), "keys", ps.keys, "bytes", ps.bytes, "receive_ms", ps.took.Milliseconds())
	return nil
}
