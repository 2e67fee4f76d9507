package raftstore

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// groupLog is one group's raft.Storage over the node's shared raft log
// (internal/raftlog), the replacement for storage.LogStore planned in
// docs/designs/2026-12-raftlog-stage2.md.
//
// Writes go into a raftlog.Batch the engine commits for every group of a
// cycle at once; reads come from the log's index, which a Commit changes
// only after its record is written (and, if asked, fsync'd). So, unlike
// LogStore, nothing here changes before the commit: the engine commits a
// cycle's batch before it touches the RawNodes again, as it does today.
//
// What the log does not hold, and where it comes from:
//   - the conf state as of the applied index, from Pebble's applied state
//     (it is atomic with the data it describes);
//   - a commit index at least the applied index: entries may be applied,
//     and the applied index written to Pebble, before the hard state that
//     records their commit is synced, so a load raises it in memory.
//
// Invariants, for the engine that will use it:
//   - Pebble's applied index A and the log agree at load: A is in
//     [FirstIndex-1, LastIndex] and Term(A) is the applied term. A crash
//     between a snapshot's synced Pebble batch and the log's Reset breaks
//     the second half; loadGroupLog repairs that (see there). A log
//     compacted past A cannot be replayed (ErrBehindLog): compaction must
//     stay at or below the applied index durable in Pebble.
//   - Only the engine goroutine calls it (the Log itself is safe for
//     concurrent readers, but commit and hs move together only there).
type groupLog struct {
	l     *raftlog.Log
	group uint64
	// hs is the hard state as raft last handed it over (or as loaded,
	// with the commit raised to the applied index).
	hs   *pb.HardState
	conf *pb.ConfState
	// loaded is the log as found at load, before any repair: what the
	// durability mark is checked against (mark.go). A repair finishes a
	// snapshot install, but a log that lost its tail looks the same to
	// it; only the mark can tell them apart, so it must see the loss.
	loaded struct {
		hs   *pb.HardState
		last uint64
	}
}

var _ raft.Storage = (*groupLog)(nil)

// ErrBehindLog refuses a start whose applied state is older than the
// oldest entry its raft log still holds: the entries in between, which it
// would have to re-apply, are gone. It means compaction ran ahead of the
// durable applied index — a bug, or a data dir assembled from parts.
var ErrBehindLog = errors.New("raftstore: the applied state is behind the raft log")

// loadGroupLog builds group's storage from l and the group's applied state
// in Pebble. If a crash fell between a snapshot's install in Pebble
// (synced first) and the log's Reset to it, the log is behind or beside
// the applied state; loadGroupLog then writes that Reset now, synced,
// and returns a description of the repair for the caller to log.
//
// The repair is the snapshot install finished: the log restarts after
// (A, applied term); the hard state's term rises to the applied term if
// lower (a vote cast in an older term is void in the newer), and its
// commit to A. A snapshot is made of committed entries only, so a log
// that already committed A holds A with the applied term: the repair
// never discards a committed entry.
//
// A log that lost its tail (damage that looked like a torn write) also
// ends before the applied index; the repair would hide that loss for good.
// So the engine checks every log against the durability mark before any
// replica loads (checkLogsAgainstMark, mark.go).
func loadGroupLog(l *raftlog.Log, group uint64, applied storage.AppliedState) (*groupLog, string, error) {
	hs, err := l.HardState(group)
	if err != nil {
		return nil, "", err
	}
	first, err := l.FirstIndex(group)
	if err != nil {
		return nil, "", err
	}
	last, err := l.LastIndex(group)
	if err != nil {
		return nil, "", err
	}
	a, at := applied.Index, applied.Term
	found, foundLast := asFound(hs, last, a)
	if a < first-1 {
		return nil, "", fmt.Errorf("%w: partition group %d applied %d, its raft log starts after %d", ErrBehindLog, group, a, first-1)
	}
	repair := ""
	if a > last {
		repair = fmt.Sprintf("the raft log ends at %d, before the applied snapshot at %d", last, a)
	} else if t, err := l.Term(group, a); err != nil {
		return nil, "", err
	} else if t != at {
		if a <= hs.GetCommit() {
			return nil, "", fmt.Errorf("%w: raft log of group %d: committed entry %d has term %d, the applied state says %d", storage.ErrCorrupt, group, a, t, at)
		}
		repair = fmt.Sprintf("the raft log's entry %d has term %d, the applied snapshot's %d", a, t, at)
	}
	if repair != "" {
		vote := uint64(0) // cast in an older term: void in the snapshot's
		if hs.GetTerm() >= at {
			vote = hs.GetVote()
		}
		next := &pb.HardState{Term: proto.Uint64(max(hs.GetTerm(), at)), Vote: proto.Uint64(vote), Commit: proto.Uint64(max(hs.GetCommit(), a))}
		b := l.NewBatch()
		b.Reset(group, a, at)
		b.SetHardState(group, next)
		if err := l.Commit(b, true); err != nil {
			return nil, "", fmt.Errorf("repair the raft log of group %d: %w", group, err)
		}
		hs, last = next, a
	}
	if hs.GetCommit() < a {
		hs.Commit = proto.Uint64(a)
	}
	if hs.GetCommit() > last {
		return nil, "", fmt.Errorf("%w: raft log of group %d ends at %d, before its commit index %d", storage.ErrCorrupt, group, last, hs.GetCommit())
	}
	g := &groupLog{l: l, group: group, hs: hs, conf: proto.Clone(pb.EnsureConfState(applied.Conf)).(*pb.ConfState)}
	g.loaded.hs, g.loaded.last = found, foundLast
	if repair != "" {
		repair = "raft log repaired after a crash during a snapshot install: " + repair
	}
	return g, repair, nil
}

// asFound is a log's hard state and last index as the durability mark
// compares them: the commit index raised to the applied entries the log
// holds (they were committed), but never past its last index.
func asFound(hs *pb.HardState, last, applied uint64) (*pb.HardState, uint64) {
	found := proto.Clone(hs).(*pb.HardState)
	if c := min(applied, last); found.GetCommit() < c {
		found.Commit = proto.Uint64(c)
	}
	return found, last
}

// InitialState implements raft.Storage.
func (g *groupLog) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.Clone(g.hs).(*pb.HardState), proto.Clone(g.conf).(*pb.ConfState), nil
}

// Entries implements raft.Storage.
func (g *groupLog) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	return g.l.Entries(g.group, lo, hi, maxSize)
}

// Term implements raft.Storage.
func (g *groupLog) Term(i uint64) (uint64, error) { return g.l.Term(g.group, i) }

// FirstIndex implements raft.Storage.
func (g *groupLog) FirstIndex() (uint64, error) { return g.l.FirstIndex(g.group) }

// LastIndex implements raft.Storage.
func (g *groupLog) LastIndex() (uint64, error) { return g.l.LastIndex(g.group) }

// Snapshot implements raft.Storage; the engine wraps the log to offer
// real snapshots, as it wraps LogStore.
func (g *groupLog) Snapshot() (*pb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
}

// LastIndexDurable is the last index of the log. Every batch that appends
// is committed synced (persist), and the log's index moves only after a
// successful commit, so the whole log is durable.
func (g *groupLog) LastIndexDurable() uint64 {
	last, err := g.l.LastIndex(g.group)
	if err != nil {
		return 0 // a closed log: nothing may be applied early
	}
	return last
}

// Truncated is the compacted prefix's last index and term.
func (g *groupLog) Truncated() (storage.TruncatedState, error) {
	first, err := g.l.FirstIndex(g.group)
	if err != nil {
		return storage.TruncatedState{}, err
	}
	t, err := g.l.Term(g.group, first-1)
	if err != nil {
		return storage.TruncatedState{}, err
	}
	return storage.TruncatedState{Index: first - 1, Term: t}, nil
}

// Append adds ents to b; the log replaces any conflicting suffix itself.
func (g *groupLog) Append(b *raftlog.Batch, ents []*pb.Entry) {
	b.Append(g.group, ents)
}

// SetHardState adds hs to b.
func (g *groupLog) SetHardState(b *raftlog.Batch, hs *pb.HardState) {
	g.hs = proto.Clone(hs).(*pb.HardState)
	b.SetHardState(g.group, hs)
}

// SetConf records the conf state as of the applied index, for a RawNode
// built again from this storage.
func (g *groupLog) SetConf(cs *pb.ConfState) { g.conf = proto.Clone(cs).(*pb.ConfState) }

// Compact adds to b the compaction of the log up to index, which must be
// applied and durable in Pebble (see the type's invariants). An index at
// or below the compacted one is nothing to do.
func (g *groupLog) Compact(b *raftlog.Batch, index uint64) error {
	first, err := g.l.FirstIndex(g.group)
	if err != nil {
		return err
	}
	if index < first {
		return nil
	}
	if last, err := g.l.LastIndex(g.group); err != nil {
		return err
	} else if index > last {
		return fmt.Errorf("raftstore: group %d compact to %d beyond last %d", g.group, index, last)
	}
	b.Compact(g.group, index)
	return nil
}

// ResetTo adds to b the reset of the log to restart after a snapshot at
// (index, term).
func (g *groupLog) ResetTo(b *raftlog.Batch, index, term uint64) {
	b.Reset(g.group, index, term)
}

// createGroupLog starts group's raft log afresh, synced, restarting after
// (index, term) (0, 0: an empty replica waiting for its first snapshot)
// with hard state hs. Whatever an earlier replica of the group left in the
// log (a destroy that a crash cut short before its drop) is dropped in the
// same record, so a new replica never inherits a stale log or vote.
// Callers write the group's Pebble state only after this returns: at every
// durable point, every descriptor in Pebble has its raft log.
func createGroupLog(l *raftlog.Log, group, index, term uint64, hs *pb.HardState) error {
	b := l.NewBatch()
	b.Drop(group)
	if index > 0 {
		b.Reset(group, index, term)
	}
	b.SetHardState(group, hs)
	if err := l.Commit(b, true); err != nil {
		return fmt.Errorf("create the raft log of group %d: %w", group, err)
	}
	return nil
}

// dropOrphanLogs drops the raft logs of groups with no descriptor in
// Pebble: a crash fell between a replica's log creation and its Pebble
// state, or between its destruction in Pebble and the log's drop.
func (e *Engine) dropOrphanLogs() error {
	var orphans []uint64
	for _, g := range e.rlog.Groups() {
		if e.condemned(g) {
			continue // its log goes at Release (quarantine.go)
		}
		if _, ok, err := storage.Get(e.db, storage.DescriptorKey(g)); err != nil {
			return err
		} else if !ok {
			orphans = append(orphans, g)
		}
	}
	if err := dropLogs(e.rlog, orphans); err != nil {
		return fmt.Errorf("drop the orphan raft logs of groups %v: %w", orphans, err)
	}
	if len(orphans) > 0 {
		e.cfg.Logger.Info("dropped the raft logs of replicas that no longer exist here (a crash interrupted their creation or removal)", "groups", orphans)
	}
	return nil
}

// dropLogs drops groups' raft logs in one synced record.
func dropLogs(l *raftlog.Log, groups []uint64) error {
	if len(groups) == 0 {
		return nil
	}
	b := l.NewBatch()
	for _, g := range groups {
		b.Drop(g)
	}
	return l.Commit(b, true)
}

// LogDir is the raft log's directory inside a node's data dir. A
// subdirectory, since Pebble would take *.log files beside its own for
// WALs; a file-level copy of a data dir must include it.
const LogDir = "raftlog"

// OpenLog opens the raft log of the node whose data dir is dataDir on fs.
// segmentSize 0 is the default (64 MiB). The caller closes it after the
// engine stopped.
func OpenLog(fs vfs.FS, dataDir string, segmentSize int64, logger *slog.Logger) (*raftlog.Log, error) {
	if fs == nil {
		fs = vfs.Default
	}
	l, err := raftlog.Open(fs, fs.PathJoin(dataDir, LogDir), raftlog.Options{SegmentSize: segmentSize, CacheBytes: 4 << 20, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open the raft log in %s: %w", fs.PathJoin(dataDir, LogDir), err)
	}
	return l, nil
}
