package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/storage"
)

type answerOut struct {
	key   waitKey
	res   result
	r     *replica
	index uint64 // of the entry answered
}

// applyCommitted applies the given groups' committed entries in one batch,
// then answers their proposers.
func (e *Engine) applyCommitted(readies []readyRep) error {
	if len(readies) == 0 {
		return nil
	}
	start := time.Now()
	b := e.db.NewIndexedBatch()
	defer func() { b.Close() }()
	var answers []answerOut
	var dead []*replica // condemned replicas whose apply failed: nothing of theirs is committed
groups:
	for i, rr := range readies {
		r := rr.r
		if len(rr.rd.CommittedEntries) == 0 {
			continue
		}
		for _, ent := range rr.rd.CommittedEntries {
			var err error
			answers, err = e.applyEntry(b, r, ent, answers)
			if err != nil && e.applyFailedCondemned(r, err) {
				dead = append(dead, r)
				continue groups // its replica ends; the others go on (quarantine.go)
			}
			if err != nil {
				return fmt.Errorf("apply group %d index %d: %w", r.group, ent.GetIndex(), err)
			}
			if r.hold.cut != "" {
				if b, err = e.takeCut(b, r); err != nil {
					return fmt.Errorf("cut group %d index %d: %w", r.group, ent.GetIndex(), err)
				}
				// What takeCut committed is on disk: a raft snapshot taken
				// from now on must be labelled with it.
				for _, done := range readies[:i+1] {
					if !slices.Contains(dead, done.r) {
						done.r.appliedCommitted()
					}
				}
			}
		}
		if err := b.Set(storage.AppliedKey(r.group), r.applied.Encode(), nil); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	// Unsynced: the entries are durable in the log, so a crash can only
	// lose applied state that is then re-applied from the log. A split's
	// batch is synced: the new group's log is reset to it next (split.go).
	sync := pebble.NoSync
	if e.splitSync {
		sync = pebble.Sync
	}
	if err := b.Commit(sync); err != nil {
		return fmt.Errorf("commit applied state: %w", err)
	}
	if e.splitSync {
		e.splitSync = false
		e.pebbleSynced()
	}
	for _, fn := range e.afterCommit {
		fn()
	}
	e.afterCommit = nil
	now := e.now()
	for _, rr := range readies {
		if slices.Contains(dead, rr.r) {
			// Its applied index moved past what the batch holds for it:
			// it must not count as committed (nor bound compaction).
			continue
		}
		rr.r.appliedCommitted()
		e.releaseCuts(rr.r, now)
	}
	e.cfg.Metrics.ApplyLatency.Observe(time.Since(start).Seconds())
	for _, a := range answers {
		if a.r.hold.held(a.index) {
			a.r.hold.answers = append(a.r.hold.answers, a)
			continue
		}
		e.answer(a.key, a.res)
	}
	return nil
}

func (e *Engine) applyEntry(b *pebble.Batch, r *replica, ent *pb.Entry, answers []answerOut) ([]answerOut, error) {
	if ent.GetIndex() <= r.applied.Index {
		return answers, nil // already applied (after a snapshot)
	}
	switch ent.GetType() {
	case pb.EntryNormal:
		if len(ent.GetData()) > 0 {
			first := len(answers)
			var err error
			if answers, err = e.applyRequests(b, r, ent.GetIndex(), ent.GetTerm(), ent.GetData(), answers); err != nil {
				return answers, err
			}
			for i := first; i < len(answers); i++ {
				answers[i].r, answers[i].index = r, ent.GetIndex()
			}
			e.cfg.Metrics.Commits.Inc()
		}
	case pb.EntryConfChange, pb.EntryConfChangeV2:
		if err := e.applyConfChange(b, r, ent); err != nil {
			return answers, err
		}
	}
	r.applied.Index, r.applied.Term = ent.GetIndex(), ent.GetTerm()
	if r.confPending && r.applied.Index >= r.confIndex {
		r.confPending = false // what raft put at confIndex is applied, whatever it was
	}
	return answers, nil
}

// errStale answers a late copy of a write whose origin already finished
// with it (its seq is below the watermark): it is not applied.
var errStale = errors.New("internal: request already completed")

// blockedReply answers a request that was not applied because an earlier
// request of its batch was refused in the same entry (see Writer.Refuse):
// the proposer retries it after the refused one, keeping the batch's order.
var blockedReply = failure.AppendSignal(nil, failure.Blocked, nil)

// emptyCommand answers an entry's empty command. Its bytes are what
// earlier versions answered: replicas of two versions apply the same log
// during a rolling upgrade, and the reply is kept for retries.
var emptyCommand = []byte("-ERR empty command\r\n")

// applyRequests applies one entry's commands with deduplication.
func (e *Engine) applyRequests(b *pebble.Batch, r *replica, index, term uint64, data []byte, answers []answerOut) ([]answerOut, error) {
	reqs, nowMS, err := decodeRequests(data)
	if err != nil {
		// A malformed entry can only come from a bug; refuse it on every
		// replica alike rather than crash them all.
		e.cfg.Logger.Error("skipping malformed entry", "partition", r.group)
		return answers, nil
	}
	w := &Writer{b: b, group: r.group, r: r, index: index, nowMS: nowMS, keySlot: e.cfg.KeySlot}

	// Batches with a refused request in this entry: the rest of such a
	// batch is not applied either.
	var blocked map[[2]uint64]bool
	for i := range reqs {
		req := &reqs[i]
		key := waitKey{req.Origin, req.Seq}
		if len(req.Args) == 0 {
			// Refused before proposing; if one is ever in the log, every
			// replica answers it alike instead of crashing.
			answers = append(answers, answerOut{key: key, res: result{reply: slices.Clone(emptyCommand)}})
			continue
		}
		var spec *command.Spec
		dedupe := req.Origin != 0
		if e.cfg.Classify != nil {
			var keep bool
			spec, keep = e.cfg.Classify(r.group, req.Args)
			dedupe = dedupe && keep
		}
		if dedupe {
			if req.Seq < r.dedupeFor(req.Origin).wm {
				answers = append(answers, answerOut{key: key, res: result{err: errStale}})
				continue
			}
			// The in-memory live set mirrors the records on disk, so only a
			// real duplicate costs a read.
			if _, dup := r.dedupeFor(req.Origin).live[req.Seq]; dup {
				prev, ok, err := storage.Get(b, storage.DedupeKey(r.group, req.Origin, req.Seq))
				if err != nil {
					return answers, err
				}
				if !ok {
					return answers, fmt.Errorf("dedupe record (%d, %d) of group %d is missing", req.Origin, req.Seq, r.group)
				}
				answers = append(answers, answerOut{key: key, res: result{reply: prev}})
				continue
			}
		}
		batch := [2]uint64{req.Origin, req.Batch}
		if req.Batch != 0 && blocked[batch] {
			answers = append(answers, answerOut{key: key, res: result{reply: slices.Clone(blockedReply)}})
			continue
		}
		w.refused = false
		var reply []byte
		name := string(req.Args[0])
		switch {
		case name == FreezeCommand:
			reply, err = e.applyFreeze(b, r, index, req.Args)
		case name == ThawCommand:
			reply, err = e.applyThaw(b, r, req.Args)
		case r.slots.frozen() && name == txnResolveOp:
			// A transaction record elsewhere may still list this group:
			// it has no part here (a freeze needs none), so resolving it
			// is done, as its apply would answer, and nothing changes.
			w.Refuse()
			reply = []byte("+OK\r\n")
		case r.slots.frozen():
			// Frozen for a merge: nothing changes any more (merge.go).
			w.Refuse()
			reply = slices.Clone(frozenReply)
		case name == SplitCommand:
			reply, err = e.applySplit(b, r, index, term, req.Args)
		case name == MergeCommand:
			reply, err = e.applyMerge(b, r, index, req.Args)
		case name == AbortMergeCommand:
			reply, err = e.applyAbortMerge(b, r, req.Args)
		default:
			reply, err = e.cfg.Apply(r.group, w, spec, req.Args, nil)
		}
		if err == nil && isResizeEntry(name) {
			outcome := "applied"
			if len(reply) > 0 && reply[0] == '-' {
				outcome = "refused"
			}
			e.cfg.Metrics.Resizes.WithLabelValues(strings.TrimPrefix(name, "kintsu."), outcome).Inc()
		}
		if err != nil {
			return answers, err
		}
		if w.refused {
			if req.Batch != 0 {
				if blocked == nil {
					blocked = map[[2]uint64]bool{}
				}
				blocked[batch] = true
			}
		} else {
			if spec != nil && spec.FirstKey > 0 && spec.FirstKey < len(req.Args) && e.cfg.KeySlot != nil {
				r.load.note(e.cfg.KeySlot(req.Args[spec.FirstKey]), true)
			} else {
				r.load.note(0, false)
			}
			if dedupe {
				if err := r.recordDedupe(b, req, reply); err != nil {
					return answers, err
				}
			}
		}
		answers = append(answers, answerOut{key: key, res: result{reply: reply}})
	}
	return answers, nil
}

// dedupeState is one origin's deduplication state in one group.
//
// Invariant: every seq below wm has no record and is refused as stale;
// every applied seq at or above wm has its record, and live lists exactly
// those. Both mirror the disk and change only as a function of the log
// (the live count and the applied request's watermark), so every replica,
// restarted or not, refuses and applies exactly the same commands.
type dedupeState struct {
	wm   uint64              // persisted watermark
	live map[uint64]struct{} // seqs with a record
}

// Garbage collection of an origin's records in a group runs when its live
// count reaches dedupeGCRecords and then at every dedupeGCEvery more, so a
// long run of requests in flight costs an amortized scan, not one per write.
const (
	dedupeGCRecords = 64
	dedupeGCEvery   = 32
)

func (r *replica) dedupeFor(origin uint64) *dedupeState {
	d := r.dedupe[origin]
	if d == nil {
		d = &dedupeState{live: map[uint64]struct{}{}}
		r.dedupe[origin] = d
	}
	return d
}

// loadDedupe rebuilds the in-memory dedupe state from the group's records.
func (r *replica) loadDedupe(db pebble.Reader) error {
	r.dedupe = map[uint64]*dedupeState{}
	lo, hi := storage.DedupeSpan(r.group)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 25 {
			continue
		}
		origin, seq := binary.BigEndian.Uint64(k[9:]), binary.BigEndian.Uint64(k[17:])
		d := r.dedupeFor(origin)
		if seq == math.MaxUint64 {
			if v := it.Value(); len(v) == 8 {
				d.wm = binary.BigEndian.Uint64(v)
			}
			continue
		}
		d.live[seq] = struct{}{}
	}
	return it.Close()
}

// recordDedupe stores req's reply and, when the origin has accumulated
// enough records, drops those its watermark says can never be retried.
func (r *replica) recordDedupe(b *pebble.Batch, req *Request, reply []byte) error {
	d := r.dedupeFor(req.Origin)
	if err := b.Set(storage.DedupeKey(r.group, req.Origin, req.Seq), reply, nil); err != nil {
		return err
	}
	d.live[req.Seq] = struct{}{}
	n := len(d.live)
	if n < dedupeGCRecords || n%dedupeGCEvery != 0 || req.Watermark <= d.wm {
		return nil
	}
	wm := req.Watermark
	// Deleting in seq order keeps every replica's batch the same.
	dead := make([]uint64, 0, n)
	for seq := range d.live {
		if seq < wm {
			dead = append(dead, seq)
		}
	}
	slices.Sort(dead)
	for _, seq := range dead {
		if err := b.Delete(storage.DedupeKey(r.group, req.Origin, seq), nil); err != nil {
			return err
		}
		delete(d.live, seq)
	}
	d.wm = wm
	return b.Set(storage.DedupeKey(r.group, req.Origin, math.MaxUint64), binary.BigEndian.AppendUint64(nil, d.wm), nil)
}

// Writer is what an ApplyFunc changes: the group's user data (a
// kv.Writer) and its transaction tables, over the cycle's indexed batch.
//
// Every stored user value carries the index of the entry that last wrote
// it (its version, 8 bytes before the value), so a transaction can tell
// whether a key changed since it was read (WATCH). Get and Put hide it.
type Writer struct {
	b       *pebble.Batch
	group   uint64
	r       *replica
	index   uint64
	nowMS   int64 // the entry's time (see encodeRequests)
	keySlot func([]byte) uint16
	refused bool
	key     []byte // scratch
}

// versionBytes is the size of the version stored before every value.
const versionBytes = 8

func (w *Writer) dataKey(k []byte) []byte {
	w.key = append(storage.DataKey(w.group, nil)[:9], k...)
	return w.key
}

// Index is the log index of the entry being applied.
func (w *Writer) Index() uint64 { return w.index }

// SlotRange is the group's slot range as a split recorded it; false
// before any split.
func (w *Writer) SlotRange() (lo, hi uint16, ok bool) {
	return w.r.slots.lo, w.r.slots.hi, w.r.slots.set
}

// Ranged reports whether a split recorded the group's slot range.
func (w *Writer) Ranged() bool { return w.r.slots.set && w.keySlot != nil }

// Owns reports whether key belongs to the group's slot range: always,
// until a split recorded one (split.go). Commands whose keys it does not
// own are refused (failure.WrongGroup) by the state machine.
func (w *Writer) Owns(key []byte) bool {
	return !w.Ranged() || w.r.slots.owns(w.keySlot(key))
}

// Refuse marks the command being applied as not applied: it has changed
// nothing, its reply is not kept for retries, and the rest of its batch in
// this entry is answered with a failure.Blocked signal.
func (w *Writer) Refuse() { w.refused = true }

// Get implements kv.Reader.
func (w *Writer) Get(k []byte) ([]byte, bool, error) {
	v, ok, err := storage.Get(w.b, w.dataKey(k))
	if err != nil || !ok {
		return nil, ok, err
	}
	_, v, err = splitVersion(v)
	return v, err == nil, err
}

// Version returns the index of the entry that last wrote k, 0 if k does
// not exist.
// Applied is the index of the entry being applied.
func (w *Writer) Applied() (uint64, error) { return w.index, nil }

// NowMS is the time the entry is applied at: its leader's stamp, the same
// on every replica.
func (w *Writer) NowMS() int64 { return w.nowMS }

func (w *Writer) Version(k []byte) (uint64, error) {
	v, ok, err := storage.Get(w.b, w.dataKey(k))
	if err != nil || !ok {
		return 0, err
	}
	ver, _, err := splitVersion(v)
	return ver, err
}

// Put implements kv.Writer.
func (w *Writer) Put(k, v []byte, created bool) error {
	if created {
		w.r.applied.Keys++
	}
	return w.b.Set(w.dataKey(k), withVersion(w.index, v), nil)
}

// PutBlind implements kv.Writer: the key counts as new, and the count is
// an upper bound until made exact (keycount.go).
func (w *Writer) PutBlind(k, v []byte) error {
	w.r.applied.Keys++
	w.r.applied.KeysInexact = true
	w.r.keys.blindAt.Store(w.index)
	return w.b.Set(w.dataKey(k), withVersion(w.index, v), nil)
}

// Del implements kv.Writer.
func (w *Writer) Del(k []byte) error {
	w.r.applied.Keys--
	return w.b.Delete(w.dataKey(k), nil)
}

// TxnGet reads k from one of the group's transaction tables, from memory
// while the replica holds all of that table (txnTable).
func (w *Writer) TxnGet(table byte, k []byte) ([]byte, bool, error) {
	if t := w.r.tables.of(table); t != nil {
		if v, ok, known := t.get(k); known {
			return v, ok, nil
		}
	}
	return storage.Get(w.b, storage.TxnKey(w.group, table, k))
}

// TxnPut writes k in one of the group's transaction tables.
func (w *Writer) TxnPut(table byte, k, v []byte) error {
	if t := w.r.tables.of(table); t != nil {
		existed, err := w.txnHas(t, table, k)
		if err != nil {
			return err
		}
		t.put(k, v, existed)
	}
	return w.b.Set(storage.TxnKey(w.group, table, k), v, nil)
}

// TxnDel deletes k from one of the group's transaction tables.
func (w *Writer) TxnDel(table byte, k []byte) error {
	t := w.r.tables.of(table)
	if t == nil {
		return w.b.Delete(storage.TxnKey(w.group, table, k), nil)
	}
	existed, err := w.txnHas(t, table, k)
	if err != nil {
		return err
	}
	rebuild := t.del(k, existed)
	if err := w.b.Delete(storage.TxnKey(w.group, table, k), nil); err != nil {
		return err
	}
	if rebuild {
		return w.rebuild(t, table)
	}
	return nil
}

// txnHas reports whether k has a record: the tables' counts must stay
// exact (a put counts only a new record, a delete only an existing one).
func (w *Writer) txnHas(t *txnTable, table byte, k []byte) (bool, error) {
	if ok, known := t.has(k); known {
		return ok, nil
	}
	_, ok, err := storage.Get(w.b, storage.TxnKey(w.group, table, k))
	return ok, err
}

// rebuild reads an incomplete table, come down to rebuildAt records, into
// memory again from the apply batch; if it is still past the bounds it
// stays incomplete.
func (w *Writer) rebuild(t *txnTable, table byte) error {
	fresh := newTxnTable()
	lo, hi := storage.TxnSpan(w.group, table)
	if err := iterSpan(w.b, lo, hi, func(k, v []byte) error {
		fresh.load(k[len(lo):], v)
		if fresh.recs == nil {
			return errStopIter
		}
		return nil
	}); err != nil && err != errStopIter {
		return err
	}
	if fresh.recs != nil && fresh.n == t.n {
		*t = fresh
	}
	return nil
}

// NoLocks reports that the group's lock table is empty, as of this entry:
// no transaction lock can stand in a plain command's way.
func (w *Writer) NoLocks() bool { return w.r.tables.locks.n == 0 }

func withVersion(ver uint64, v []byte) []byte {
	out := make([]byte, versionBytes, versionBytes+len(v))
	binary.BigEndian.PutUint64(out, ver)
	return append(out, v...)
}

func splitVersion(stored []byte) (uint64, []byte, error) {
	if len(stored) < versionBytes {
		return 0, nil, fmt.Errorf("%w: value of %d bytes has no version", storage.ErrCorrupt, len(stored))
	}
	return binary.BigEndian.Uint64(stored), stored[versionBytes:], nil
}

// DataReader reads a group's user data and lock table straight from the
// database (the applied state).
type DataReader struct {
	r       pebble.Reader
	group   uint64
	clk     *clock.Clock
	keySlot func([]byte) uint16
	// slots is the replica's range when the reader was made (nil: none
	// recorded); see Engine.Snapshot for why it is never older than a
	// snapshot's data.
	slots *slotRange
}

// Ranged reports whether a split recorded the group's range: until
// then it owns every key sent to it, and Owns need not be asked.
func (d *DataReader) Ranged() bool { return d.slots != nil && d.keySlot != nil }

// Owns reports whether key belongs to the group's slot range (split.go).
func (d *DataReader) Owns(key []byte) bool {
	return !d.Ranged() || d.slots.owns(d.keySlot(key))
}

// OwnsSlots reports whether every slot from lo to hi is the group's
// (kv.SlotOwner: a SCAN step over a slot range).
func (d *DataReader) OwnsSlots(lo, hi uint16) bool {
	return !d.Ranged() || d.slots.ownsAll(lo, hi)
}

// NowMS is this node's clock (reads are served by the leader, whose clock
// also stamps the entries it proposes).
func (d *DataReader) NowMS() int64 { return d.clk.Now().UnixMilli() }

// NoLocks is false: a read checks the lock table as committed, which
// the loop's count (replica.locks) may be ahead of.
func (d *DataReader) NoLocks() bool { return false }

// Get implements kv.Reader.
func (d *DataReader) Get(k []byte) ([]byte, bool, error) {
	v, ok, err := storage.Get(d.r, storage.DataKey(d.group, k))
	if err != nil || !ok {
		return nil, ok, err
	}
	_, v, err = splitVersion(v)
	return v, err == nil, err
}

// Version returns the index of the entry that last wrote k, 0 if absent.
func (d *DataReader) Version(k []byte) (uint64, error) {
	v, ok, err := storage.Get(d.r, storage.DataKey(d.group, k))
	if err != nil || !ok {
		return 0, err
	}
	ver, _, err := splitVersion(v)
	return ver, err
}

// Applied is the index of the last entry applied to the group.
func (d *DataReader) Applied() (uint64, error) {
	b, ok, err := storage.Get(d.r, storage.AppliedKey(d.group))
	if err != nil || !ok {
		return 0, err
	}
	if len(b) < 8 {
		return 0, fmt.Errorf("%w: applied state of %d bytes", storage.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// TxnGet reads k from one of the group's transaction tables.
func (d *DataReader) TxnGet(table byte, k []byte) ([]byte, bool, error) {
	return storage.Get(d.r, storage.TxnKey(d.group, table, k))
}
