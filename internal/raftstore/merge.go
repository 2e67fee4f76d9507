package raftstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/storage"
)

// Merging two partitions whose slot ranges are adjacent, on the same
// nodes. One of them, the survivor S, absorbs the other, O, in two
// entries (docs/plans/elastic-partitions.md):
//
//  1. FreezeCommand in O's log, at index F: O records that it is frozen
//     into S and from then on changes nothing. Every later request is
//     refused with failure.WrongGroup (nothing applied, so the router
//     sends it again by a fresher map), its reads own no key, conf
//     changes are skipped and splits refused. So O's state at any index
//     at or past F is its state at F, on every replica.
//  2. MergeCommand in S's log, at index I: on every replica of S, O's
//     keys and sub-keys (as the local replica of O holds them, frozen)
//     move into S in S's apply batch, which is synced; O's dedupe records
//     join S's (the watermark is the higher of the two: an origin's
//     watermark holds for all its requests), S's range becomes the union,
//     and the local replica of O is destroyed at the end of the cycle.
//
// Invariants:
//   - Both outcomes are functions of the group's applied state and the
//     entry, so replicas agree on whether each applies; the freeze is
//     refused while O has transaction locks, parts or records (their
//     references name O), an open backup cut or a restore, learners or a
//     joint configuration; the merge is refused unless O's frozen range
//     (carried in the entry) is adjacent to S's, S's voters are on
//     exactly the nodes O's were on at the freeze, S has no learners, and
//     I > F.
//   - I > F keeps WATCH sound: O's versions are its log indexes, all at
//     most F, and S's later writes take versions above I, so a key that
//     changes after the merge never shows a version it had in O. (The
//     proposer picks as survivor the group whose log is ahead; a refusal
//     for this reason consumes an index of S, so asking again gets past
//     F when the gap is small.)
//   - What moves on a node is its own frozen replica of O, which the
//     proposer waits to see applied past F on every node before it
//     proposes the merge (else it aborts). A replica of S whose node has
//     no replica of O frozen at F when the merge applies — a bug, given
//     that wait — must not apply the merge without O's data: its group is
//     condemned (quarantine.go), which takes the replica out of service.
//     Nothing rebuilds it yet: the quarantine driver rebuilds only
//     replicas of damaged files (docs/plans/elastic-partitions.md).
//   - The same merge asked again answers +OK (S records its last merge),
//     so a proposer that lost the answer never merges twice.
//
// What the proposer must ensure: the survivor's id stays the cluster's
// name for the merged range (the partition table), the two groups are
// co-located before the freeze, and every node runs a version that knows
// both entries.

// FreezeCommand freezes a group for a merge into another (FreezeArgs).
const FreezeCommand = "kintsu.merge.freeze"

// MergeCommand merges a frozen group into the survivor (MergeArgs).
const MergeCommand = "kintsu.merge"

// AbortMergeCommand, in the survivor's log, refuses for good the merge of
// one frozen state of another group (AbortMergeArgs); ThawCommand, in
// the frozen group's log once that abort is applied, lets it serve again
// (ThawArgs). In that order: a merge entry and an abort race in the
// survivor's log alone, so either the merge happened (the abort answers
// :1 and nothing thaws) or it never will (:0), and only then may the
// frozen group change again.
const (
	AbortMergeCommand = "kintsu.merge.abort"
	ThawCommand       = "kintsu.merge.thaw"
)

// AbortMergeArgs refuse the merge of group other frozen at index frozenAt.
func AbortMergeArgs(other, frozenAt uint64) [][]byte {
	return [][]byte{[]byte(AbortMergeCommand), strconv.AppendUint(nil, other, 10), strconv.AppendUint(nil, frozenAt, 10)}
}

// ThawArgs thaw a group frozen into group into at index frozenAt.
func ThawArgs(into, frozenAt uint64) [][]byte {
	return [][]byte{[]byte(ThawCommand), strconv.AppendUint(nil, into, 10), strconv.AppendUint(nil, frozenAt, 10)}
}

// ownsNothing is the range of a group that owns no key: a reader of a
// group not hosted here refuses every key.
var ownsNothing = slotRange{set: true, frozenAt: math.MaxUint64}

// abortKey holds the merge a survivor refused for good: the other
// group's id and its freeze index (8 bytes each).
func abortKey(group uint64) []byte { return storage.TxnKey(group, storage.SlotRange, []byte("abort")) }

// FreezeArgs are FreezeCommand's arguments: freeze the group owning slots
// lo..hi for a merge into group into. It answers "F n1,n2,..": the index
// of the freeze and the nodes of the group's voters.
func FreezeArgs(into uint64, lo, hi uint16) [][]byte {
	return [][]byte{[]byte(FreezeCommand), strconv.AppendUint(nil, into, 10),
		strconv.AppendUint(nil, uint64(lo), 10), strconv.AppendUint(nil, uint64(hi), 10)}
}

// MergeArgs are MergeCommand's arguments: absorb group other, frozen at
// index frozenAt owning slots olo..ohi with voters on nodes, into the
// survivor owning slots lo..hi.
func MergeArgs(other, frozenAt uint64, olo, ohi, lo, hi uint16, nodes []uint64) [][]byte {
	return [][]byte{[]byte(MergeCommand), strconv.AppendUint(nil, other, 10), strconv.AppendUint(nil, frozenAt, 10),
		strconv.AppendUint(nil, uint64(olo), 10), strconv.AppendUint(nil, uint64(ohi), 10),
		strconv.AppendUint(nil, uint64(lo), 10), strconv.AppendUint(nil, uint64(hi), 10),
		[]byte(joinNodes(nodes))}
}

// ParseFreezeReply reads FreezeCommand's answer; an error reply comes
// back as the error.
func ParseFreezeReply(reply []byte) (frozenAt uint64, nodes []uint64, err error) {
	v, _, err := resp.ParseValue(reply)
	switch {
	case err != nil:
		return 0, nil, fmt.Errorf("malformed freeze reply %q", reply)
	case v.Kind == '-':
		return 0, nil, fmt.Errorf("%s", v.Str)
	case v.Kind != '$':
		return 0, nil, fmt.Errorf("malformed freeze reply %q", reply)
	}
	f, rest, _ := strings.Cut(string(v.Str), " ")
	if frozenAt, err = strconv.ParseUint(f, 10, 64); err != nil {
		return 0, nil, fmt.Errorf("malformed freeze reply %q", reply)
	}
	nodes, err = parseNodes(rest)
	return frozenAt, nodes, err
}

func joinNodes(nodes []uint64) string {
	s := slices.Sorted(slices.Values(nodes))
	out := make([]string, len(s))
	for i, n := range s {
		out[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(out, ",")
}

func parseNodes(s string) ([]uint64, error) {
	var nodes []uint64
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("malformed node list %q", s)
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 || len(nodes) > 16 {
		return nil, fmt.Errorf("malformed node list %q", s)
	}
	slices.Sort(nodes)
	return nodes, nil
}

func mergeRefused(format string, a ...any) []byte {
	return fmt.Appendf(nil, "-ERR merge refused: "+format+"\r\n", a...)
}

// isResizeEntry reports whether a command is one of the engine's own
// split and merge entries (counted by kintsu_partition_resizes_total).
func isResizeEntry(name string) bool {
	switch name {
	case SplitCommand, FreezeCommand, MergeCommand, ThawCommand, AbortMergeCommand:
		return true
	}
	return false
}

// txnResolveOp is the transaction package's resolution of a part
// (txn/ops.go), which a frozen group answers (it holds no part).
const txnResolveOp = "txn.resolve"

// frozenReply answers every request to a frozen group but its freeze.
var frozenReply = failure.AppendSignal(nil, failure.WrongGroup, nil)

// parseSlotArgs reads n decimal arguments, the last k of them slots.
func parseSlotArgs(args [][]byte, k int) ([]uint64, bool) {
	out := make([]uint64, len(args))
	for i, a := range args {
		v, err := strconv.ParseUint(string(a), 10, 64)
		if err != nil || i >= len(args)-k && v >= ring.SlotCount {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// applyFreeze applies FreezeCommand on r, in b, at index.
func (e *Engine) applyFreeze(b *pebble.Batch, r *replica, index uint64, args [][]byte) ([]byte, error) {
	if len(args) != 4 {
		return mergeRefused("wrong number of arguments"), nil
	}
	n, ok := parseSlotArgs(args[1:], 2)
	if !ok {
		return mergeRefused("malformed arguments"), nil
	}
	into, lo, hi := n[0], uint16(n[1]), uint16(n[2])
	cur, err := readSlotRange(b, r.group)
	if err != nil {
		return nil, err
	}
	nodes, nodesOK, err := appliedVoterNodes(b, r)
	if err != nil {
		return nil, err
	}
	frozen := func(at uint64) []byte {
		return resp.AppendBulkString(nil, fmt.Sprintf("%d %s", at, joinNodes(nodes)))
	}
	switch {
	case cur.frozen() && cur.frozenInto == into && cur.lo == lo && cur.hi == hi:
		return frozen(cur.frozenAt), nil // asked again: it happened
	case cur.frozen():
		return mergeRefused("the partition is frozen for a merge into partition %d", cur.frozenInto), nil
	case e.cfg.KeySlot == nil:
		return mergeRefused("this engine has no key slots"), nil
	case into == r.group:
		return mergeRefused("a partition cannot merge into itself"), nil
	case e.cfg.MaxGroup != 0 && (r.group >= e.cfg.MaxGroup || into >= e.cfg.MaxGroup):
		return mergeRefused("group %d cannot merge into group %d", r.group, into), nil
	case cur.set && (cur.lo != lo || cur.hi != hi):
		return mergeRefused("the partition owns slots %d-%d, not %d-%d", cur.lo, cur.hi, lo, hi), nil
	case lo > hi:
		return mergeRefused("bad range %d-%d", lo, hi), nil
	case !nodesOK:
		return mergeRefused("the partition's voters are not all known"), nil
	case r.tables.locks.n > 0 || r.tables.parts.n > 0 || r.tables.records.n > 0:
		return mergeRefused("transactions are in progress in the partition"), nil
	}
	if why, err := e.busyResizing(b, r); err != nil || why != "" {
		return mergeRefused("%s", why), err
	}
	next := cur
	next.lo, next.hi, next.set, next.frozenInto, next.frozenAt = lo, hi, true, into, index
	if err := b.Set(storage.TxnKey(r.group, storage.SlotRange, nil), next.encode(), nil); err != nil {
		return nil, err
	}
	r.setSlots(next)
	e.splitSync = true // the merge's proposer waits for this on every node: it must outlive a crash
	e.cfg.Logger.Info("partition frozen for a merge", "partition", r.group, "into", into, "slots", fmt.Sprintf("%d-%d", lo, hi), "index", index)
	return frozen(index), nil
}

// applyMerge applies MergeCommand on the survivor r, in b, at index.
func (e *Engine) applyMerge(b *pebble.Batch, r *replica, index uint64, args [][]byte) ([]byte, error) {
	if len(args) != 8 {
		return mergeRefused("wrong number of arguments"), nil
	}
	n, ok := parseSlotArgs(args[1:7], 4)
	if !ok {
		return mergeRefused("malformed arguments"), nil
	}
	nodes, err := parseNodes(string(args[7]))
	if err != nil {
		return mergeRefused("%v", err), nil
	}
	other, frozenAt := n[0], n[1]
	olo, ohi, lo, hi := uint16(n[2]), uint16(n[3]), uint16(n[4]), uint16(n[5])
	cur, err := readSlotRange(b, r.group)
	if err != nil {
		return nil, err
	}
	mlo, mhi := min(lo, olo), max(hi, ohi)
	switch {
	case cur.merged(other) && cur.lo == mlo && cur.hi == mhi:
		return splitOK, nil // asked again: it happened
	case e.cfg.KeySlot == nil:
		return mergeRefused("this engine has no key slots"), nil
	case other == r.group:
		return mergeRefused("a partition cannot absorb itself"), nil
	case e.cfg.MaxGroup != 0 && (r.group >= e.cfg.MaxGroup || other >= e.cfg.MaxGroup):
		return mergeRefused("group %d cannot absorb group %d", r.group, other), nil
	case cur.frozen():
		return mergeRefused("the partition is itself frozen for a merge"), nil
	case cur.set && (cur.lo != lo || cur.hi != hi):
		return mergeRefused("the partition owns slots %d-%d, not %d-%d", cur.lo, cur.hi, lo, hi), nil
	case lo > hi || olo > ohi || !(int(hi)+1 == int(olo) || int(ohi)+1 == int(lo)):
		return mergeRefused("slots %d-%d and %d-%d are not adjacent", lo, hi, olo, ohi), nil
	case index <= frozenAt:
		return mergeRefused("the partition's log (index %d) is behind the frozen one's (%d); ask again", index, frozenAt), nil
	}
	if v, ok, err := storage.Get(b, abortKey(r.group)); err != nil {
		return nil, err
	} else if ok && len(v) == 16 && binary.BigEndian.Uint64(v) == other && binary.BigEndian.Uint64(v[8:]) == frozenAt {
		return mergeRefused("this merge was aborted"), nil
	}
	if mine, ok, err := appliedVoterNodes(b, r); err != nil {
		return nil, err
	} else if !ok || !slices.Equal(nodes, mine) {
		return mergeRefused("the partitions' replicas are not on the same nodes"), nil
	}
	if why, err := e.busyResizing(b, r); err != nil || why != "" {
		return mergeRefused("%s", why), err
	}

	o := e.byGroup[other]
	if o == nil || !o.slots.frozen() || o.slots.frozenInto != r.group || o.slots.frozenAt != frozenAt || o.applied.Index < frozenAt || o.removed ||
		o.slots.lo != olo || o.slots.hi != ohi {
		// This node cannot supply O's state: the replica of S here must
		// not go on without it (see the invariants).
		e.cfg.Logger.Error("merge applied where the frozen partition is not: this replica is taken out of service",
			"partition", r.group, "other", other, "frozen_at", frozenAt, "hosted", o != nil)
		e.Condemn([]uint64{r.group})
		return nil, fmt.Errorf("%w: partition %d's merge found no frozen replica of partition %d here", pebble.ErrCorruption, r.group, other)
	}
	moved, err := e.moveKeys(b, other, r.group, nil, true)
	if err != nil {
		return nil, err
	}
	next := cur
	next.lo, next.hi, next.set, next.mergedPlus1 = mlo, mhi, true, other+1
	if err := b.Set(storage.TxnKey(r.group, storage.SlotRange, nil), next.encode(), nil); err != nil {
		return nil, err
	}
	r.applied.Keys += moved
	r.keys.blindAt.Store(index)
	// The writer owns the union at once; readers only once the batch that
	// moved the keys is committed, or a read of a moved key could find it
	// in neither group.
	r.slots = next
	e.afterCommit = append(e.afterCommit, func() { r.setSlots(next) })
	if err := r.loadDedupe(b); err != nil {
		return nil, err
	}
	o.removed = true // destroyed at the end of the cycle, after the batch is synced
	e.splitSync = true
	e.cfg.Logger.Info("partitions merged", "partition", r.group, "slots", fmt.Sprintf("%d-%d", mlo, mhi),
		"absorbed", other, "absorbed_slots", fmt.Sprintf("%d-%d", olo, ohi), "keys_moved", moved, "index", index)
	return splitOK, nil
}

// appliedVoterNodes are the nodes of r's voters by its descriptor as
// applied (replicated state, never the in-memory one, which peers'
// messages may have extended), sorted; false if a voter has no node.
func appliedVoterNodes(b pebble.Reader, r *replica) ([]uint64, bool, error) {
	db, ok, err := storage.Get(b, storage.DescriptorKey(r.group))
	if err != nil || !ok {
		return nil, false, err
	}
	desc, err := storage.DecodeDescriptor(db)
	if err != nil {
		return nil, false, err
	}
	var out []uint64
	for _, id := range r.applied.Conf.GetVoters() {
		n := desc.NodeOf(id)
		if n == 0 {
			return nil, false, nil
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, len(out) > 0 && len(out) <= 16, nil
}

// applyAbortMerge applies AbortMergeCommand on the survivor r: :1 if the
// merge already happened, else :0 and the merge of that frozen state is
// refused from now on.
func (e *Engine) applyAbortMerge(b *pebble.Batch, r *replica, args [][]byte) ([]byte, error) {
	if len(args) != 3 {
		return mergeRefused("wrong number of arguments"), nil
	}
	n, ok := parseSlotArgs(args[1:], 0)
	if !ok {
		return mergeRefused("malformed arguments"), nil
	}
	if r.slots.merged(n[0]) {
		return []byte(":1\r\n"), nil
	}
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n[0]), n[1])
	if err := b.Set(abortKey(r.group), v, nil); err != nil {
		return nil, err
	}
	e.cfg.Logger.Info("merge aborted", "partition", r.group, "other", n[0], "frozen_at", n[1])
	return []byte(":0\r\n"), nil
}

// applyThaw applies ThawCommand on r: a group frozen into that group at
// that index serves again (the proposer first had the survivor abort the
// merge). Thawing a group not frozen is a no-op.
func (e *Engine) applyThaw(b *pebble.Batch, r *replica, args [][]byte) ([]byte, error) {
	if len(args) != 3 {
		return mergeRefused("wrong number of arguments"), nil
	}
	n, ok := parseSlotArgs(args[1:], 0)
	if !ok {
		return mergeRefused("malformed arguments"), nil
	}
	cur := r.slots
	if !cur.frozen() {
		return splitOK, nil
	}
	if cur.frozenInto != n[0] || cur.frozenAt != n[1] {
		return mergeRefused("the partition is frozen into partition %d at %d", cur.frozenInto, cur.frozenAt), nil
	}
	cur.frozenInto, cur.frozenAt = 0, 0
	if err := b.Set(storage.TxnKey(r.group, storage.SlotRange, nil), cur.encode(), nil); err != nil {
		return nil, err
	}
	r.setSlots(cur)
	e.cfg.Logger.Info("partition thawed: its merge was aborted", "partition", r.group, "into", n[0])
	return splitOK, nil
}

// dropAbsorbed marks for destruction the local replica that survivor s
// has absorbed, if one is still here frozen (s caught up past the merge
// by a snapshot, or a crash came between the merge's batch and the
// destruction).
func (e *Engine) dropAbsorbed(s *replica) {
	for _, o := range e.replicas {
		if o != s && o.slots.frozen() && o.slots.frozenInto == s.group && s.slots.merged(o.group) {
			o.removed = true
		}
	}
}

// dropMerged destroys, at load, every frozen replica whose survivor here
// has already absorbed it.
func (e *Engine) dropMerged() error {
	for _, s := range slices.Clone(e.replicas) {
		e.dropAbsorbed(s)
	}
	return e.destroyRemoved()
}
