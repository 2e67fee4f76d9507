package ctl

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/ring"
)

// Restoring into a cluster laid out unlike the backup. Splits and merges
// give every cluster a layout of its own (how many partitions, which
// ranges, which ids), so a backup's files cannot be sent one to one: each
// record goes to the partition that owns its key's slot in the cluster.

// Bounds on what a relayout holds in memory, whatever the data's size or
// the number of partitions: records gathered for partitions (openBytes)
// and chunks handed over but not yet loaded (windowBytes), besides one
// record larger than a chunk.
const (
	openBytes   = 16 << 20
	windowBytes = 16 << 20
)

// span is one partition of a layout.
type span struct {
	ID         int
	Start, End uint16
}

// clusterLayout is the cluster's partitions by ascending id. Routing needs
// one owner per slot; a map caught in the middle of a split or merge may
// show none or two, and is refused.
func clusterLayout(st api.StatusJSON) ([]span, error) {
	out := make([]span, 0, len(st.Partitions))
	for _, p := range st.Partitions {
		out = append(out, span{p.ID, p.SlotStart, p.SlotEnd})
	}
	slices.SortFunc(out, func(a, b span) int { return cmp.Compare(a.ID, b.ID) })
	for i, p := range out {
		if p.ID < 0 || (i > 0 && p.ID == out[i-1].ID) {
			return nil, fmt.Errorf("node %d's status lists partition %d twice, or with a negative id", st.NodeID, p.ID)
		}
	}
	if _, err := slotTable(out); err != nil {
		return nil, fmt.Errorf("node %d's map of the partitions is not whole (%v): a split or merge may be under way; run the restore again once it is done", st.NodeID, err)
	}
	return out, nil
}

func slotTable(layout []span) (*ring.SlotTable, error) {
	rs := make([]ring.SlotRangeOwner, len(layout))
	for i, p := range layout {
		rs[i] = ring.SlotRangeOwner{Start: p.Start, End: p.End, Group: uint64(p.ID)}
	}
	return ring.NewSlotTable(0, rs)
}

// sameLayout: the cluster has exactly the backup's partitions, so each
// file goes to the partition it was cut from, as it is.
func sameLayout(ps []backup.Partition, cluster []span) bool {
	return slices.EqualFunc(ps, cluster, func(p backup.Partition, c span) bool {
		return p.ID == c.ID && p.SlotStart == c.Start && p.SlotEnd == c.End
	})
}

func backupLayout(ps []backup.Partition) []span {
	out := make([]span, len(ps))
	for i, p := range ps {
		out[i] = span{p.ID, p.SlotStart, p.SlotEnd}
	}
	return out
}

// describeLayout words a layout for an operator: the --partitions count
// that makes it when it is a new cluster's, else its partitions, the
// first few when they are many (where says where the rest are listed).
func describeLayout(layout []span, where string) string {
	n := len(layout)
	if n > 0 && ring.SlotCount%n == 0 && sameLayout(equalPartitions(n), layout) {
		return fmt.Sprintf("%d partitions of equal ranges, as a cluster started with --partitions %d has", n, n)
	}
	const shown = 32
	parts := make([]string, 0, min(n, shown))
	for _, p := range layout[:min(n, shown)] {
		parts = append(parts, fmt.Sprintf("%d (slots %d-%d)", p.ID, p.Start, p.End))
	}
	s := fmt.Sprintf("%d partitions: %s", n, strings.Join(parts, ", "))
	if n > shown {
		s += fmt.Sprintf(" and %d more (%s lists them)", n-shown, where)
	}
	return s
}

func equalPartitions(n int) []backup.Partition {
	out := make([]backup.Partition, n)
	for i := range out {
		start, end := ring.SlotRange(i, n)
		out[i] = backup.Partition{ID: i, SlotStart: start, SlotEnd: end}
	}
	return out
}

// txnTally counts a backup's records of the transaction tables.
type txnTally struct {
	records    int64
	partitions []int // the backup's partitions holding them
}

func isTxnTable(table byte) bool {
	return table == backup.TableLocks || table == backup.TableParts || table == backup.TableRecords
}

// refusal explains why a backup holding transaction records is not
// restored into another layout: a record lists its participants by
// partition id, and a part and its locks must sit in the partition its
// record names; loaded elsewhere, the resolver would finish the
// transaction against the wrong partitions, or never.
func (t txnTally) refusal(m *backup.Manifest, cluster []span) error {
	const shown = 32
	ids := make([]string, 0, min(len(t.partitions), shown))
	for _, p := range t.partitions[:min(len(t.partitions), shown)] {
		ids = append(ids, fmt.Sprint(p))
	}
	in := strings.Join(ids, ", ")
	if len(t.partitions) > shown {
		in += fmt.Sprintf(" and %d more", len(t.partitions)-shown)
	}
	return fmt.Errorf("nothing was restored: the backup holds %d entries of transactions in flight across partitions at its cut (in its partitions %s); "+
		"they name partitions by id, so they restore only into the backup's layout, and this cluster has %s. "+
		"Restore into a new cluster with the backup's layout, %s; or take a new backup: one whose cut caught no transaction in flight restores into any layout",
		t.records, in, describeLayout(cluster, "kintsu ctl status"), describeLayout(backupLayout(m.Partitions), backup.ManifestName))
}

// relayout loads every file of the backup, in the manifest's order, into
// the partitions of cluster, each record into the partition owning its
// key's slot, and returns the keys each partition was sent (by position
// in cluster). Chunks are numbered per partition as they are sealed and
// each partition's are sent in order by a goroutine of its own, Parallel
// requests at a time in all: a retried chunk keeps its number and is
// loaded once.
func relayout(ctx context.Context, dir string, m *backup.Manifest, cluster []span, load func(ctx context.Context, p, seq int, chunk []byte) error, tr *tracker, done *atomic.Int64) ([]int64, error) {
	table, err := slotTable(cluster)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &router{ctx: ctx, cancel: cancel, table: table, load: load, done: done,
		targets: map[uint64]*target{}, inflight: make(chan struct{}, Parallel)}
	r.window.cond.L = &r.window.mu
	for _, p := range cluster {
		r.targets[uint64(p.ID)] = &target{id: p.ID}
	}
	for _, p := range m.Partitions {
		if err = readPartition(dir, p, r.add); err != nil {
			break
		}
		tr.partitionDone()
	}
	if err == nil {
		err = r.sealAll()
	}
	if err != nil {
		cancel(err) // what is queued would be loaded in vain
	}
	r.close()
	if err = context.Cause(ctx); err != nil {
		return nil, err // a failed load stopped the reading: its error says which
	}
	keys := make([]int64, len(cluster))
	for i, p := range cluster {
		keys[i] = r.targets[uint64(p.ID)].keys
	}
	return keys, nil
}

type router struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	table    *ring.SlotTable
	load     func(ctx context.Context, p, seq int, chunk []byte) error
	done     *atomic.Int64
	targets  map[uint64]*target
	dirty    []*target // targets that gathered records since the last sealAll
	open     int64     // bytes gathered and not sealed
	window   window
	inflight chan struct{}
	wg       sync.WaitGroup
}

// target is one cluster partition's side of a relayout.
type target struct {
	id    int
	buf   []byte // records gathered for the next chunk
	dirty bool   // listed in router.dirty
	seq   int    // the next chunk's number
	keys  int64  // data records routed here: the end step's count
	q     chan sealed
}

type sealed struct {
	seq   int
	chunk []byte
}

// add routes one record. A chunk stays within chunkBytes, or is one
// record alone: a record of user data or a sub-key is at most about
// 48 MiB, within the node's bound on a chunk (admin.MaxRestoreChunk).
func (r *router) add(table byte, k, v []byte) error {
	key := k
	switch table {
	case backup.TableData:
	case backup.TableSub:
		uk, _, _, ok := backup.SplitSub(k)
		if !ok {
			return fmt.Errorf("%w: a malformed collection sub-key", backup.ErrCorrupt)
		}
		key = uk
	default: // verified to be absent: the file changed since
		return fmt.Errorf("a record of table %q, which cannot move to another layout, appeared after the backup was verified", table)
	}
	t := r.targets[r.table.GroupOf(ring.Slot(key))]
	n := recordBytes(k, v)
	if len(t.buf) > 0 && len(t.buf)+n > chunkBytes {
		if err := r.seal(t); err != nil {
			return err
		}
	}
	if !t.dirty {
		t.dirty = true
		r.dirty = append(r.dirty, t)
	}
	t.buf = backup.AppendRecord(t.buf, table, k, v)
	r.open += int64(n)
	if table == backup.TableData {
		t.keys++
	}
	if r.open > openBytes {
		// Many partitions each gathering a little: send what they have
		// rather than hold a chunk's worth for each.
		return r.sealAll()
	}
	return nil
}

func recordBytes(k, v []byte) int {
	var b [binary.MaxVarintLen64]byte
	return 1 + binary.PutUvarint(b[:], uint64(len(k))) + len(k) + binary.PutUvarint(b[:], uint64(len(v))) + len(v)
}

func (r *router) sealAll() error {
	for _, t := range r.dirty {
		t.dirty = false
		if len(t.buf) > 0 {
			if err := r.seal(t); err != nil {
				return err
			}
		}
	}
	r.dirty = r.dirty[:0]
	return nil
}

// seal numbers t's gathered records as its next chunk and queues them.
func (r *router) seal(t *target) error {
	c := sealed{seq: t.seq, chunk: t.buf}
	t.seq++
	t.buf = nil // the chunk is the sender's now
	r.open -= int64(len(c.chunk))
	if err := r.window.acquire(r.ctx, int64(len(c.chunk))); err != nil {
		return err
	}
	if t.q == nil {
		t.q = make(chan sealed, 8)
		r.wg.Go(func() { r.send(t) })
	}
	select {
	case t.q <- c:
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// send loads t's chunks in their order; the first failure stops the
// whole relayout.
func (r *router) send(t *target) {
	for c := range t.q {
		if r.ctx.Err() != nil {
			return // the reader sees the cause and stops queueing
		}
		select {
		case r.inflight <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		err := r.load(r.ctx, t.id, c.seq, c.chunk)
		<-r.inflight
		if err != nil {
			r.cancel(fmt.Errorf("partition %d: %w", t.id, err))
			return
		}
		r.done.Add(int64(len(c.chunk)))
		r.window.release(int64(len(c.chunk)))
	}
}

// close lets every sender finish its queue and waits for them.
func (r *router) close() {
	for _, t := range r.targets {
		if t.q != nil {
			close(t.q)
		}
	}
	r.wg.Wait()
}

// window bounds the bytes of chunks queued or in flight, so reading runs
// no further ahead of the cluster than that.
type window struct {
	mu   sync.Mutex
	cond sync.Cond
	used int64
}

func (w *window) acquire(ctx context.Context, n int64) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.used > 0 && w.used+n > windowBytes { // one chunk always fits
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		w.cond.Wait()
	}
	w.used += n
	return nil
}

func (w *window) release(n int64) {
	w.mu.Lock()
	w.used -= n
	w.cond.Broadcast()
	w.mu.Unlock()
}
