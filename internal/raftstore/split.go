package raftstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/storage"
)

// Splitting a partition. A group L owning slots lo..hi splits at slot s
// into L (lo..s-1) and a new group R (s..hi) through one entry in L's
// log, SplitCommand, so every replica of L splits at the same point of
// its history (docs/plans/elastic-partitions.md).
//
// Invariants:
//   - The outcome is a function of L's applied state and the entry alone,
//     so every replica of L refuses the entry alike — a range that is not
//     L's, learners or a joint configuration, transaction locks or
//     prepared parts, an open backup cut, a restore under way — or
//     applies it alike: every user key whose slot is in s..hi leaves L
//     with its collection's sub-keys, and both ranges are recorded under
//     storage.SlotRange, in the apply batch, which is synced.
//   - R is born at L's split entry (index I, term T) with L's descriptor
//     (the same replica ids on the same nodes): its state machine is the
//     moved keys and a copy of L's dedupe table (a write retried across
//     the split is still answered once), applied at (I, T); its raft log
//     starts after I with commit I. Every replica of R starts from the
//     same state without talking, and versions (log indexes) stay above
//     every version copied, so WATCH holds across the split.
//   - R's state reaches disk in the order a snapshot install uses: a raft
//     log exists for R before the Pebble batch (an empty one, created and
//     synced, if R had none: a crash then leaves an orphan log that LoadAll
//     drops, and L applies the entry again), then the batch (synced), then
//     the log reset to (I, T). A crash before the reset is repaired at load
//     (loadGroupLog), as for a snapshot.
//   - A replica of R that R's leader created here before L applied the
//     split (empty: replicaFor) is replaced, keeping the term and vote of
//     its hard state, so a vote is never forgotten. One a snapshot already
//     filled (applied index > 0) is kept, and so is the absence of one this
//     node destroyed (R's tombstone covers its id) or condemned: the split
//     then only removes the moved keys from L.
//   - R is hosted at the end of the cycle, after every Ready of the cycle
//     is advanced; the node whose replica of L led at the split campaigns
//     for R at once.
//
// What the entry does not do: route. Which keys a partition serves is
// the cluster's partition table; the ranges recorded here let a replica
// refuse keys it no longer owns (Writer.Owns, DataReader.Owns), so a
// router with a map from before the split cannot misplace a write.
//
// What the proposer must ensure, because a replica cannot check it
// alone: R's id is new to the whole cluster (taken from the metadata
// group, never reused), and every node runs a version that knows the
// entry (an older one would apply it as an unknown command and diverge).
//
// Known cost: the moved keys are gathered and written on the loop, in
// one batch, so a split stalls its nodes for a time that grows with the
// right half; splits are proposed at a bounded size (the split policy),
// and moving the keys in steps is later work.

// SplitCommand is the command that splits a group (SplitArgs).
const SplitCommand = "kintsu.split"

// SplitArgs are the arguments of SplitCommand: split the group owning
// slots lo..hi at slot at, the right part becoming group right.
func SplitArgs(right uint64, at, lo, hi uint16) [][]byte {
	return [][]byte{
		[]byte(SplitCommand),
		strconv.AppendUint(nil, right, 10),
		strconv.AppendUint(nil, uint64(at), 10),
		strconv.AppendUint(nil, uint64(lo), 10),
		strconv.AppendUint(nil, uint64(hi), 10),
	}
}

// splitOK answers a split applied.
var splitOK = []byte("+OK\r\n")

func splitRefused(format string, a ...any) []byte {
	return fmt.Appendf(nil, "-ERR split refused: "+format+"\r\n", a...)
}

// slotRange is a group's recorded slot range, and the last split it
// made (so that the same split entry again answers +OK: a proposer that
// lost the answer learns it happened, by the new group's id), and its
// merges (merge.go).
type slotRange struct {
	lo, hi uint16
	set    bool // recorded (by a split); unset: the range the group was created with
	// lastRight and lastAt: the group's last split made group lastRight
	// from slot lastAt (0: none).
	lastRight uint64
	lastAt    uint16
	// frozenAt: the group is frozen for a merge into group frozenInto
	// since its entry frozenAt, and owns no key any more (0: not frozen).
	frozenInto, frozenAt uint64
	// mergedPlus1: the last group merged into this one, plus one (0:
	// none; group 0 can be merged too).
	mergedPlus1 uint64
}

// frozen reports whether the group is frozen for a merge.
func (s slotRange) frozen() bool { return s.frozenAt != 0 }

// merged reports whether group was the last merged into this one.
func (s slotRange) merged(group uint64) bool { return s.mergedPlus1 == group+1 }

// A recorded range is 4 bytes (lo, hi), 14 (and the last split), or 38
// (and the freeze and the last merge).
const (
	rangeBytes      = 4
	rangeSplitBytes = 14
	rangeMergeBytes = 38
)

func (s slotRange) encode() []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, s.lo), s.hi)
	if s.lastAt != 0 || s.frozen() || s.mergedPlus1 != 0 {
		b = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint64(b, s.lastRight), s.lastAt)
	}
	if s.frozen() || s.mergedPlus1 != 0 {
		b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, s.frozenInto), s.frozenAt)
		b = binary.BigEndian.AppendUint64(b, s.mergedPlus1)
	}
	return b
}

// readSlotRange reads group's recorded slot range from r.
func readSlotRange(r pebble.Reader, group uint64) (slotRange, error) {
	v, ok, err := storage.Get(r, storage.TxnKey(group, storage.SlotRange, nil))
	if err != nil || !ok {
		return slotRange{}, err
	}
	if len(v) != rangeBytes && len(v) != rangeSplitBytes && len(v) != rangeMergeBytes {
		return slotRange{}, fmt.Errorf("%w: group %d's slot range is %d bytes", storage.ErrCorrupt, group, len(v))
	}
	s := slotRange{lo: binary.BigEndian.Uint16(v), hi: binary.BigEndian.Uint16(v[2:]), set: true}
	if len(v) >= rangeSplitBytes {
		s.lastRight, s.lastAt = binary.BigEndian.Uint64(v[4:]), binary.BigEndian.Uint16(v[12:])
	}
	if len(v) == rangeMergeBytes {
		s.frozenInto, s.frozenAt = binary.BigEndian.Uint64(v[14:]), binary.BigEndian.Uint64(v[22:])
		s.mergedPlus1 = binary.BigEndian.Uint64(v[30:])
	}
	return s, nil
}

// setSlots sets the replica's range and publishes it to readers.
func (r *replica) setSlots(s slotRange) {
	r.slots = s
	if s.set {
		r.pubSlots.Store(&s)
	} else {
		r.pubSlots.Store(nil)
	}
}

// publishedSlots is the range of group's hosted replica (nil: none
// recorded, or not hosted).
func (e *Engine) publishedSlots(group uint64) *slotRange {
	if r := e.hosted(group); r != nil {
		return r.pubSlots.Load()
	}
	return nil
}

// owns reports whether a key with slot belongs to the range; a group
// with no recorded range owns every key sent to it.
// A group frozen for a merge owns no key.
func (s slotRange) owns(slot uint16) bool {
	return !s.set || !s.frozen() && s.lo <= slot && slot <= s.hi
}

// ownsAll reports whether every slot from lo to hi is the group's.
func (s slotRange) ownsAll(lo, hi uint16) bool {
	return !s.set || !s.frozen() && s.lo <= lo && hi <= s.hi
}

// splitBirth is a right group whose state a split wrote: hosted at the
// end of the cycle (materializeSplits).
type splitBirth struct {
	desc        *storage.Descriptor
	index, term uint64
	campaign    bool
}

// applySplit applies SplitCommand on r, in b, at (index, term).
func (e *Engine) applySplit(b *pebble.Batch, r *replica, index, term uint64, args [][]byte) ([]byte, error) {
	if len(args) != 5 {
		return splitRefused("wrong number of arguments"), nil
	}
	var n [4]uint64
	for i, a := range args[1:] {
		v, err := strconv.ParseUint(string(a), 10, 64)
		if err != nil || i > 0 && v > 0xffff {
			return splitRefused("malformed argument %q", a), nil
		}
		n[i] = v
	}
	right, at, lo, hi := n[0], uint16(n[1]), uint16(n[2]), uint16(n[3])
	cur, err := readSlotRange(b, r.group)
	if err != nil {
		return nil, err
	}
	if cur.set && cur.lastRight == right && cur.lastAt == at && cur.lo == lo && cur.hi == at-1 {
		return splitOK, nil // this very split, asked again: it happened
	}
	conf := r.applied.Conf
	switch {
	case e.cfg.KeySlot == nil:
		return splitRefused("this engine has no key slots"), nil
	case right == r.group:
		return splitRefused("a partition cannot split into itself"), nil
	case cur.frozen():
		return splitRefused("the partition is frozen for a merge"), nil
	case e.cfg.MaxGroup != 0 && (r.group >= e.cfg.MaxGroup || right >= e.cfg.MaxGroup):
		return splitRefused("group %d cannot split into group %d", r.group, right), nil
	case cur.set && (cur.lo != lo || cur.hi != hi):
		return splitRefused("the partition owns slots %d-%d, not %d-%d", cur.lo, cur.hi, lo, hi), nil
	case !(lo < at && at <= hi && int(hi) < ring.SlotCount):
		return splitRefused("slot %d is not inside %d-%d past its first slot", at, lo, hi), nil
	}
	// A transaction holding a lock on a key that would move: its prepared
	// part would resolve in the wrong group. (Every key of a prepared part
	// is locked; records stay with the left, where their references name
	// them.)
	if r.tables.locks.n > 0 {
		ls, le := storage.TxnSpan(r.group, storage.TxnLocks)
		moving := false
		if err := iterSpan(b, ls, le, func(k, _ []byte) error {
			if s := e.cfg.KeySlot(k[len(ls):]); at <= s && s <= hi {
				moving = true
				return errStopIter
			}
			return nil
		}); err != nil && err != errStopIter {
			return nil, err
		}
		if moving {
			return splitRefused("transactions are in progress on keys that would move"), nil
		}
	}
	if why, err := e.busyResizing(b, r); err != nil || why != "" {
		return splitRefused("%s", why), err
	}
	// R's descriptor is L's as applied (replicated state), never the
	// in-memory one, which peers' messages may have extended.
	db, ok, err := storage.Get(b, storage.DescriptorKey(r.group))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("group %d has no descriptor", r.group)
	}
	desc, err := storage.DecodeDescriptor(db)
	if err != nil {
		return nil, err
	}
	desc.Group = right

	// Whether this node writes R's state (see the invariants).
	// An empty replica of R is replaced only under the same id: one a
	// later change of R gave another id keeps its own state and vote.
	existing := e.byGroup[right]
	birth := (existing == nil || existing.applied.Index == 0 && existing.id == r.id) && !e.condemned(right) && r.id > e.tombstone(right)
	if birth && !e.rlog.Has(right) {
		if err := createGroupLog(e.rlog, right, 0, 0, &pb.HardState{}); err != nil {
			return nil, err
		}
	}

	inRight := func(userKey []byte) bool {
		s := e.cfg.KeySlot(userKey)
		return at <= s && s <= hi
	}
	moved, err := e.moveKeys(b, r.group, right, inRight, birth)
	if err != nil {
		return nil, err
	}
	left := slotRange{lo: lo, hi: at - 1, set: true, lastRight: right, lastAt: at, mergedPlus1: cur.mergedPlus1}
	if err := b.Set(storage.TxnKey(r.group, storage.SlotRange, nil), left.encode(), nil); err != nil {
		return nil, err
	}
	r.applied.Keys = max(0, r.applied.Keys-moved)
	r.keys.blindAt.Store(index) // a cached exact count is of the whole range
	r.setSlots(left)
	e.splitSync = true
	if birth {
		applied := storage.AppliedState{Index: index, Term: term, Keys: moved, Conf: proto.Clone(conf).(*pb.ConfState)}
		for _, kv := range [][2][]byte{
			{storage.TxnKey(right, storage.SlotRange, nil), slotRange{lo: at, hi: hi}.encode()},
			{storage.AppliedKey(right), applied.Encode()},
			{storage.DescriptorKey(right), desc.Encode()},
		} {
			if err := b.Set(kv[0], kv[1], nil); err != nil {
				return nil, err
			}
		}
		e.births = append(e.births, splitBirth{desc: desc, index: index, term: term, campaign: r.isLeader})
	}
	e.cfg.Logger.Info("partition split", "partition", r.group, "slots", fmt.Sprintf("%d-%d", lo, at-1),
		"new_partition", right, "new_slots", fmt.Sprintf("%d-%d", at, hi), "keys_moved", moved, "index", index, "hosted_here", birth)
	return splitOK, nil
}

// moveKeys moves from's user keys for which keep holds (every key, when
// keep is nil), with their collections' sub-keys, to group to — or only
// deletes them, when !write — and, when write, copies from's dedupe
// records into to's, keeping for each origin the higher watermark (an
// origin's watermark holds for all its requests). It returns how many
// user keys moved. The keys are gathered before any is written: b is read
// through, and an iterator need not see what is written while it runs.
// A split moves the keys of its right half (into a new group, which has
// no dedupe records), a merge every key of the absorbed group.
func (e *Engine) moveKeys(b *pebble.Batch, from, to uint64, keep func(userKey []byte) bool, write bool) (int64, error) {
	var pairs [][2][]byte
	var moved int64
	ds, de := storage.DataSpan(from)
	if err := iterSpan(b, ds, de, func(k, v []byte) error {
		if keep == nil || keep(storage.UserKey(k)) {
			pairs = append(pairs, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
			moved++
		}
		return nil
	}); err != nil {
		return 0, err
	}
	ss, se := storage.SubSpan(from)
	if err := iterSpan(b, ss, se, func(k, v []byte) error {
		if uk, ok := storage.SubUserKey(k); keep == nil || ok && keep(uk) {
			pairs = append(pairs, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, kv := range pairs {
		if write {
			if err := b.Set(storage.Regroup(kv[0], to), kv[1], nil); err != nil {
				return 0, err
			}
		}
		if err := b.Delete(kv[0], nil); err != nil {
			return 0, err
		}
	}
	if !write {
		return moved, nil
	}
	qs, qe := storage.DedupeSpan(from)
	var dedupe [][2][]byte
	if err := iterSpan(b, qs, qe, func(k, v []byte) error {
		dedupe = append(dedupe, [2][]byte{storage.Regroup(k, to), append([]byte(nil), v...)})
		return nil
	}); err != nil {
		return 0, err
	}
	for _, kv := range dedupe {
		if len(kv[0]) == 25 && binary.BigEndian.Uint64(kv[0][17:]) == math.MaxUint64 {
			// A watermark: keep the higher one.
			if cur, ok, err := storage.Get(b, kv[0]); err != nil {
				return 0, err
			} else if ok && len(cur) == 8 && len(kv[1]) == 8 && binary.BigEndian.Uint64(cur) >= binary.BigEndian.Uint64(kv[1]) {
				continue
			}
		}
		if err := b.Set(kv[0], kv[1], nil); err != nil {
			return 0, err
		}
	}
	return moved, nil
}

// busyResizing says why r can be neither split, frozen nor absorb
// another now, or "": its replicas are changing, or a backup cut or a
// restore is open.
func (e *Engine) busyResizing(b *pebble.Batch, r *replica) (string, error) {
	conf := r.applied.Conf
	if len(conf.GetLearners()) > 0 || len(conf.GetVotersOutgoing()) > 0 || len(conf.GetLearnersNext()) > 0 {
		return "the partition is changing its replicas", nil
	}
	for _, t := range []byte{storage.CutMarks, storage.RestoreMark} {
		lo, hi := storage.TxnSpan(r.group, t)
		busy := false
		if err := iterSpan(b, lo, hi, func(_, _ []byte) error { busy = true; return errStopIter }); err != nil && err != errStopIter {
			return "", err
		}
		if busy {
			return "a backup or a restore is under way", nil
		}
	}
	return "", nil
}

// materializeSplits hosts the right groups that splits wrote this cycle,
// once their state is synced: an empty replica of one is replaced, the
// log reset to the split point keeping its term and vote, and the new
// replica loaded.
func (e *Engine) materializeSplits() error {
	births := e.births
	e.births = nil
	for _, sb := range births {
		group := sb.desc.Group
		if e.condemned(group) || sb.desc.ReplicaOn(e.cfg.NodeID) <= e.tombstone(group) {
			continue // its state goes with the group's (quarantine, destroy)
		}
		if old := e.byGroup[group]; old != nil {
			if old.applied.Index > 0 || old.id != sb.desc.ReplicaOn(e.cfg.NodeID) {
				continue // filled by a snapshot, or renumbered, meanwhile
			}
			e.unhost(old)
		}
		hs, err := e.rlog.HardState(group)
		if err != nil {
			return err
		}
		vote := uint64(0) // a vote cast in an older term is void in the split's
		if hs.GetTerm() >= sb.term {
			vote = hs.GetVote()
		}
		lb := e.rlog.NewBatch()
		lb.Reset(group, sb.index, sb.term)
		lb.SetHardState(group, &pb.HardState{Term: proto.Uint64(max(hs.GetTerm(), sb.term)), Vote: proto.Uint64(vote), Commit: proto.Uint64(sb.index)})
		if err := e.rlog.Commit(lb, true); err != nil {
			return fmt.Errorf("reset the raft log of split group %d: %w", group, err)
		}
		r, err := e.loadReplica(sb.desc)
		if err != nil {
			return fmt.Errorf("load split group %d: %w", group, err)
		}
		e.host(r)
		if sb.campaign {
			_ = r.rn.Campaign()
		}
		e.cfg.Logger.Info("new partition hosted after a split", "partition", group, "index", sb.index, "campaign", sb.campaign)
	}
	return nil
}

// unhost drops a replica from the hosted set without touching its state
// (a split replaces it).
func (e *Engine) unhost(r *replica) {
	e.outSnaps.drop(r.group)
	delete(e.byGroup, r.group)
	for i, x := range e.replicas {
		if x == r {
			e.replicas = append(e.replicas[:i], e.replicas[i+1:]...)
			break
		}
	}
	e.publishGroups()
	for _, p := range r.pendingSnaps {
		p.data.Close()
	}
	r.pendingSnaps = nil
	r.failReads(ErrNoGroup)
	e.failGroupWaiters(r.group, ErrLeaderChanged)
}
