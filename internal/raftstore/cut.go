package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/storage"
)

// # Consistent cuts
//
// A cut is a named entry F in a group's log (applied with Writer.Cut).
// Every replica that applies F keeps a Pebble snapshot of its applied
// state right after F, for a backup to stream from any of them. A backup
// cuts every partition; the cuts together form one consistent cut of the
// cluster because of the hold:
//
//   - From applying F until the cut is released (Writer.Uncut applied) or
//     its lease runs out on this node's clock, the replica answers no
//     proposer of an entry after F and releases no read: they wait in the
//     hold and are answered at release. Answers of F and earlier entries
//     are not held.
//   - The coordinator releases only after every partition's cut applied,
//     and keeps the backup only if they all applied within the lease
//     measured from before it proposed the first.
//
// Then a write outside partition P1's cut (applied after F1) is
// acknowledged only after every partition's cut applied, so a write issued
// after that acknowledgement applies after its own partition's cut and is
// outside the backup too: the backup holds every write acknowledged before
// it began, and holds a write only with every write acknowledged before
// that one was issued. A transaction's COMMIT is such a write, and its
// parts are resolved only after its COMMIT applied, so the backup holds its
// record's decision with every intent the decision needs.
//
// The hold must also cover a replica that reaches a state past F without
// applying F itself (by a raft snapshot, or restarting with F already
// applied): an open cut leaves a marker in the replicated state (the
// CutMarks table, deleted by Uncut), and a replica that loads state with a
// marker holds from then on, for the marker's lease.
//
// Cuts are local snapshots, not replicated state: a restarted node has
// none, and a backup reads a partition from any replica that still has it.

// maxCuts bounds the cut snapshots a node keeps; the oldest go first.
const maxCuts = 1024

// cutIdle: a cut nobody read for this long is dropped.
const cutIdle = 10 * time.Minute

// markBytes is the size of a cut marker: lease (ms) and the entry's time (ms).
const markBytes = 16

// hold is a replica's part of the open cuts.
type hold struct {
	open    map[string]time.Time // cut id -> end of its lease on this node's clock
	from    uint64               // answers of entries after this index wait
	answers []answerOut
	reads   []*readReq

	// Set by Writer while applying an entry, acted on after it.
	cut      string
	lease    time.Duration
	released []string

	// gen counts the cuts opened here; readers compare it around a read
	// (Engine.CutGen).
	gen atomic.Uint64

	// restoring: a restore is loading into the group (its RestoreMark is
	// set); the state machine refuses client writes meanwhile.
	restoring bool
}

func (h *hold) active() bool { return len(h.open) > 0 }

// start opens cut id at index for lease; an earlier open cut keeps the
// earlier index.
func (h *hold) start(id string, index uint64, until time.Time) {
	if h.open == nil {
		h.open = map[string]time.Time{}
	}
	h.gen.Add(1)
	if !h.active() || index < h.from {
		h.from = index
	}
	if cur, ok := h.open[id]; !ok || until.After(cur) {
		h.open[id] = until
	}
}

// held reports whether the answer of an entry at index must wait.
func (h *hold) held(index uint64) bool { return h.active() && index > h.from }

// Cut marks the entry being applied as the consistent cut id: replicas
// snapshot their state after it and hold later answers for up to lease
// (see the consistent cuts section of cut.go).
func (w *Writer) Cut(id string, lease time.Duration) error {
	if id == "" || lease <= 0 {
		return fmt.Errorf("cut needs an id and a lease")
	}
	w.r.hold.cut, w.r.hold.lease = id, lease
	v := binary.BigEndian.AppendUint64(nil, uint64(lease.Milliseconds()))
	v = binary.BigEndian.AppendUint64(v, uint64(w.nowMS))
	return w.TxnPut(storage.CutMarks, []byte(id), v)
}

// Uncut releases cut id: answers held for it go out once no other cut is
// open. Releasing an unknown cut is harmless.
func (w *Writer) Uncut(id string) error {
	w.r.hold.released = append(w.r.hold.released, id)
	return w.TxnDel(storage.CutMarks, []byte(id))
}

// CutMarks lists the open cuts in the group's replicated state and when
// each was opened (the entry's time, ms), for dropping abandoned ones.
func (d *DataReader) CutMarks() (map[string]int64, error) {
	lo, hi := storage.TxnSpan(d.group, storage.CutMarks)
	it, err := d.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for ok := it.First(); ok; ok = it.Next() {
		if v := it.Value(); len(v) == markBytes {
			out[string(it.Key()[len(lo):])] = int64(binary.BigEndian.Uint64(v[8:]))
		}
	}
	return out, it.Close()
}

// CutGen counts the cuts that opened on the local replica of group. A
// read served from local state after ReadBarrier must be taken again if
// the count moved between before the barrier and after the read: a cut
// opened meanwhile, and the read may show writes the cut holds back.
func (e *Engine) CutGen(group uint64) uint64 {
	if r := e.hosted(group); r != nil {
		return r.hold.gen.Load()
	}
	return 0
}

// loadMarks holds for every cut marker in r's state, from now: the state
// may already be past the cut (after a snapshot or a restart). It also
// reads whether a restore is under way.
func (r *replica) loadMarks(db pebble.Reader, now time.Time) error {
	_, restoring, err := storage.Get(db, storage.TxnKey(r.group, storage.RestoreMark, nil))
	if err != nil {
		return err
	}
	r.hold.restoring = restoring
	lo, hi := storage.TxnSpan(r.group, storage.CutMarks)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if v := it.Value(); len(v) == markBytes {
			lease := time.Duration(binary.BigEndian.Uint64(v)) * time.Millisecond
			r.hold.start(string(it.Key()[len(lo):]), r.applied.Index, now.Add(lease))
		}
	}
	return it.Close()
}

// takeCut finishes applying r's cut entry: commits b (r's applied state
// included, so the snapshot is exactly the state after the entry), takes
// the snapshot, opens the hold, and returns a fresh batch for the rest of
// the cycle.
func (e *Engine) takeCut(b *pebble.Batch, r *replica) (*pebble.Batch, error) {
	id, lease := r.hold.cut, r.hold.lease
	r.hold.cut = ""
	if err := b.Set(storage.AppliedKey(r.group), r.applied.Encode(), nil); err != nil {
		return b, err
	}
	sync := pebble.NoSync
	if e.splitSync { // a split's state must be synced before its log reset (split.go)
		sync = pebble.Sync
	}
	if err := b.Commit(sync); err != nil {
		return b, fmt.Errorf("commit before cut: %w", err)
	}
	if e.splitSync {
		e.splitSync = false
		e.pebbleSynced()
	}
	b.Close()
	e.cuts.add(r.group, id, r.applied.Index, e.db.NewSnapshot())
	r.hold.start(id, r.applied.Index, e.now().Add(lease))
	e.cfg.Logger.Info("cut", "partition", r.group, "cut", id, "index", r.applied.Index)
	return e.db.NewIndexedBatch(), nil
}

// releaseCuts closes the cuts released by this cycle's entries, and those
// whose lease ran out; the hold's answers and reads go out once none is
// open. Called after the applied state is committed.
func (e *Engine) releaseCuts(r *replica, now time.Time) {
	if !r.hold.active() && len(r.hold.released) == 0 {
		return
	}
	for _, id := range r.hold.released {
		delete(r.hold.open, id)
	}
	r.hold.released = nil
	for id, until := range r.hold.open {
		if now.After(until) {
			e.cfg.Logger.Warn("cut lease ran out before its release", "partition", r.group, "cut", id)
			delete(r.hold.open, id)
		}
	}
	if r.hold.active() {
		return
	}
	answers, reads := r.hold.answers, r.hold.reads
	r.hold.answers, r.hold.reads = nil, nil
	for _, a := range answers {
		e.answer(a.key, a.res)
	}
	for _, rq := range reads {
		rq.done(nil)
	}
}

// Cut is one replica's snapshot of a group at a cut, for a backup.
type Cut struct {
	reg   *cutRegistry
	c     *cutSnap
	group uint64
}

// Index is the log index the cut was taken at.
func (c *Cut) Index() uint64 { return c.c.index }

// Close releases the reader's hold on the snapshot.
func (c *Cut) Close() { c.reg.release(c.c) }

// Iterate calls fn for the group's user data (table 'd', the user key and
// the value without its version), then its transaction tables (table =
// storage.TxnLocks, TxnParts or TxnRecords, the key within the table),
// then its collections' sub-keys (table 's', the key within the group's
// sub-key span: backup.SplitSub reads it).
// The dedupe table and cut markers are not carried: they mean nothing to
// another cluster.
func (c *Cut) Iterate(fn func(table byte, k, v []byte) error) error {
	ds, de := storage.DataSpan(c.group)
	if err := iterSpan(c.c.snap, ds, de, func(k, v []byte) error {
		_, val, err := splitVersion(v)
		if err != nil {
			return err
		}
		return fn('d', k[len(ds):], val)
	}); err != nil {
		return err
	}
	for _, t := range []byte{storage.TxnLocks, storage.TxnParts, storage.TxnRecords} {
		lo, hi := storage.TxnSpan(c.group, t)
		if err := iterSpan(c.c.snap, lo, hi, func(k, v []byte) error { return fn(t, k[len(lo):], v) }); err != nil {
			return err
		}
	}
	ss, se := storage.SubSpan(c.group)
	return iterSpan(c.c.snap, ss, se, func(k, v []byte) error { return fn(TableSub, k[len(ss):], v) })
}

// TableSub is the table byte of a collection's sub-key in a cut's records
// (backup.TableSub; a test keeps the two equal).
const TableSub byte = 's'

func iterSpan(r pebble.Reader, lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// OpenCut returns this node's snapshot of group at cut id, if it took one.
// The caller must Close it.
func (e *Engine) OpenCut(group uint64, id string) (*Cut, bool) {
	c := e.cuts.acquire(group, id)
	if c == nil {
		return nil, false
	}
	return &Cut{reg: &e.cuts, c: c, group: group}, true
}

// DropCut releases every snapshot of cut id (the backup is finished).
func (e *Engine) DropCut(id string) { e.cuts.drop(func(k cutKey) bool { return k.id == id }) }

type cutKey struct {
	group uint64
	id    string
}

type cutSnap struct {
	snap  *pebble.Snapshot
	index uint64
	refs  int // the registry's + readers'
	made  time.Time
	used  time.Time
}

type cutRegistry struct {
	now  func() time.Time // the node's clock; set before first use
	mu   sync.Mutex
	cuts map[cutKey]*cutSnap // guarded by mu
}

func (s *cutRegistry) add(group uint64, id string, index uint64, snap *pebble.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cuts == nil {
		s.cuts = map[cutKey]*cutSnap{}
	}
	k := cutKey{group, id}
	if old := s.cuts[k]; old != nil {
		delete(s.cuts, k)
		s.releaseLocked(old)
	}
	for len(s.cuts) >= maxCuts {
		var oldest cutKey
		var t time.Time
		for k, c := range s.cuts { // ties broken by key: the same cut goes whatever the map's order
			if t.IsZero() || c.made.Before(t) || (c.made.Equal(t) && cutKeyLess(k, oldest)) {
				oldest, t = k, c.made
			}
		}
		c := s.cuts[oldest]
		delete(s.cuts, oldest)
		s.releaseLocked(c)
	}
	now := s.now()
	s.cuts[k] = &cutSnap{snap: snap, index: index, refs: 1, made: now, used: now}
}

func (s *cutRegistry) acquire(group uint64, id string) *cutSnap {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cuts[cutKey{group, id}]
	if c == nil {
		return nil
	}
	c.refs++
	c.used = s.now()
	return c
}

func (s *cutRegistry) release(c *cutSnap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.used = s.now()
	s.releaseLocked(c)
}

func (s *cutRegistry) releaseLocked(c *cutSnap) {
	if c.refs--; c.refs == 0 {
		_ = c.snap.Close()
	}
}

// drop releases the registry's hold on the cuts that match.
func (s *cutRegistry) drop(match func(cutKey) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.cuts {
		if match(k) {
			delete(s.cuts, k)
			s.releaseLocked(c)
		}
	}
}

// expire drops cuts nobody has read for cutIdle.
func (s *cutRegistry) expire(now time.Time) {
	s.drop(func(k cutKey) bool { return now.Sub(s.cuts[k].used) > cutIdle && s.cuts[k].refs == 1 })
}

// Restores write through the log like any command; these let the state
// machine check that a partition is empty and start a restore over.

// SetRestoring records whether a restore is loading into the group; the
// caller writes or deletes the group's RestoreMark in the same entry.
func (w *Writer) SetRestoring(on bool) { w.r.hold.restoring = on }

// Restoring reports whether a restore is loading into the group.
func (w *Writer) Restoring() bool { return w.r.hold.restoring }

// HasKeys reports whether the group holds any user key. It reads at most
// one: an apply must not scan a partition (the loop serves every group).
// Finding none makes the count exact: zero.
func (w *Writer) HasKeys() (bool, error) {
	if !w.r.applied.KeysInexact {
		return w.r.applied.Keys > 0, nil
	}
	lo, hi := storage.DataSpan(w.group)
	found := false
	if err := iterSpan(w.b, lo, hi, func(_, _ []byte) error { found = true; return errStopIter }); err != nil && err != errStopIter {
		return false, err
	}
	if !found {
		w.r.applied.Keys, w.r.applied.KeysInexact = 0, false
	}
	return found, nil
}

// ScanPrefix calls fn with the value of each of the group's user keys
// that start with prefix, through the batch (so this entry's own writes
// show), until fn returns false.
func (w *Writer) ScanPrefix(prefix []byte, fn func(v []byte) bool) error {
	lo := w.dataKey(prefix)
	_, hi := storage.DataSpan(w.group)
	err := iterSpan(w.b, lo, hi, func(k, v []byte) error {
		if !bytes.HasPrefix(k, lo) {
			return errStopIter
		}
		_, val, err := splitVersion(v)
		if err != nil {
			return err
		}
		if !fn(val) {
			return errStopIter
		}
		return nil
	})
	if err == errStopIter {
		return nil
	}
	return err
}

// TxnEmpty reports whether the group's transaction tables (locks, parts,
// records) are empty.
func (w *Writer) TxnEmpty() (bool, error) {
	for _, t := range []byte{storage.TxnLocks, storage.TxnParts, storage.TxnRecords} {
		lo, hi := storage.TxnSpan(w.group, t)
		empty := true
		if err := iterSpan(w.b, lo, hi, func(_, _ []byte) error { empty = false; return errStopIter }); err != nil && err != errStopIter {
			return false, err
		}
		if !empty {
			return false, nil
		}
	}
	return true, nil
}

var errStopIter = errors.New("stop")

// ClearData deletes the group's user data: its keys and its collections'
// sub-keys (FLUSHALL), not its transaction tables.
func (w *Writer) ClearData() error {
	ds, de := storage.DataSpan(w.group)
	if err := w.b.DeleteRange(ds, de, nil); err != nil {
		return err
	}
	ss, se := storage.SubSpan(w.group)
	if err := w.b.DeleteRange(ss, se, nil); err != nil {
		return err
	}
	w.r.applied.Keys, w.r.applied.KeysInexact = 0, false
	return nil
}

// Clear deletes the group's user data and transaction tables (a restore
// starting over); the dedupe table and cut markers stay.
func (w *Writer) Clear() error {
	if err := w.ClearData(); err != nil {
		return err
	}
	for _, t := range []byte{storage.TxnLocks, storage.TxnParts, storage.TxnRecords, storage.RestoreMark} {
		lo, hi := storage.TxnSpan(w.group, t)
		if err := w.b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	w.r.applied.Keys, w.r.applied.KeysInexact = 0, false
	w.r.tables = newTxnTables()
	return nil
}

func cutKeyLess(a, b cutKey) bool {
	if a.group != b.group {
		return a.group < b.group
	}
	return a.id < b.id
}
