package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/storage"
)

type answerOut struct {
	key waitKey
	res result
}

// applyCommitted applies the given groups' committed entries in one batch,
// then answers their proposers.
func (e *Engine) applyCommitted(readies []readyRep) error {
	if len(readies) == 0 {
		return nil
	}
	start := time.Now()
	b := e.db.NewIndexedBatch()
	defer b.Close()
	var answers []answerOut
	for _, rr := range readies {
		r := rr.r
		if len(rr.rd.CommittedEntries) == 0 {
			continue
		}
		for _, ent := range rr.rd.CommittedEntries {
			var err error
			answers, err = e.applyEntry(b, r, ent, answers)
			if err != nil {
				return fmt.Errorf("apply group %d index %d: %w", r.group, ent.GetIndex(), err)
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
	// lose applied state that is then re-applied from the log.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit applied state: %w", err)
	}
	e.cfg.Metrics.ApplyLatency.Observe(time.Since(start).Seconds())
	for _, a := range answers {
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
			var err error
			if answers, err = e.applyRequests(b, r, ent.GetData(), answers); err != nil {
				return answers, err
			}
			e.cfg.Metrics.Commits.Inc()
		}
	case pb.EntryConfChange, pb.EntryConfChangeV2:
		var cc pb.ConfChangeI
		if ent.GetType() == pb.EntryConfChange {
			var c pb.ConfChange
			if err := proto.Unmarshal(ent.GetData(), &c); err != nil {
				return answers, err
			}
			cc = &c
		} else {
			var c pb.ConfChangeV2
			if err := proto.Unmarshal(ent.GetData(), &c); err != nil {
				return answers, err
			}
			cc = &c
		}
		r.applied.Conf = r.rn.ApplyConfChange(cc)
		r.log.SetConf(r.applied.Conf)
	}
	r.applied.Index, r.applied.Term = ent.GetIndex(), ent.GetTerm()
	return answers, nil
}

var errStale = errors.New(kv.ErrStaleRequest)

// applyRequests applies one entry's commands with deduplication.
func (e *Engine) applyRequests(b *pebble.Batch, r *replica, data []byte, answers []answerOut) ([]answerOut, error) {
	reqs, err := decodeRequests(data)
	if err != nil {
		// A malformed entry can only come from a bug; refuse it on every
		// replica alike rather than crash them all.
		e.cfg.Logger.Error("skipping malformed entry", "group", r.group)
		return answers, nil
	}
	w := &applyWriter{b: b, group: r.group, r: r}
	for i := range reqs {
		req := &reqs[i]
		key := waitKey{req.Origin, req.Seq}
		dedupe := req.Origin != 0 && (e.cfg.Dedupe == nil || e.cfg.Dedupe(r.group, req.Args))
		if dedupe {
			wm, err := r.watermark(b, req.Origin)
			if err != nil {
				return answers, err
			}
			if req.Seq < wm {
				answers = append(answers, answerOut{key, result{err: errStale}})
				continue
			}
			if prev, ok, err := storage.Get(b, storage.DedupeKey(r.group, req.Origin, req.Seq)); err != nil {
				return answers, err
			} else if ok {
				answers = append(answers, answerOut{key, result{reply: prev}})
				continue
			}
		}
		reply, err := e.cfg.Apply(r.group, w, req.Args, nil)
		if err != nil {
			return answers, err
		}
		if dedupe {
			if err := b.Set(storage.DedupeKey(r.group, req.Origin, req.Seq), reply, nil); err != nil {
				return answers, err
			}
			if err := r.advanceWatermark(b, req.Origin, req.Watermark); err != nil {
				return answers, err
			}
		}
		answers = append(answers, answerOut{key, result{reply: reply}})
	}
	return answers, nil
}

// watermark returns origin's dedupe watermark in r's group.
func (r *replica) watermark(b *pebble.Batch, origin uint64) (uint64, error) {
	if wm, ok := r.watermarks[origin]; ok {
		return wm, nil
	}
	v, ok, err := storage.Get(b, storage.DedupeKey(r.group, origin, math.MaxUint64))
	if err != nil {
		return 0, err
	}
	var wm uint64
	if ok && len(v) == 8 {
		wm = binary.BigEndian.Uint64(v)
	}
	r.watermarks[origin] = wm
	return wm, nil
}

// watermarkStep is how far an origin's watermark must move before its old
// dedupe records are dropped: amortizing keeps the per-write cost at one
// point write.
const watermarkStep = 64

// advanceWatermark drops origin's dedupe records below wm: the origin has
// answered all of them, so no retry of them can come any more. Records are
// removed with point deletes (found by a short scan) because range
// tombstones on this hot path make every later read slower.
func (r *replica) advanceWatermark(b *pebble.Batch, origin, wm uint64) error {
	cur, err := r.watermark(b, origin)
	if err != nil || wm < cur+watermarkStep {
		return err
	}
	it, err := b.NewIter(&pebble.IterOptions{
		LowerBound: storage.DedupeKey(r.group, origin, cur),
		UpperBound: storage.DedupeKey(r.group, origin, wm),
	})
	if err != nil {
		return err
	}
	var dead [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		dead = append(dead, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range dead {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	r.watermarks[origin] = wm
	return b.Set(storage.DedupeKey(r.group, origin, math.MaxUint64), binary.BigEndian.AppendUint64(nil, wm), nil)
}

// applyWriter is the kv.Writer of a group over the cycle's indexed batch.
type applyWriter struct {
	b     *pebble.Batch
	group uint64
	r     *replica
	key   []byte // scratch
}

func (w *applyWriter) dataKey(k []byte) []byte {
	w.key = append(storage.DataKey(w.group, nil)[:9], k...)
	return w.key
}

func (w *applyWriter) Get(k []byte) ([]byte, bool, error) {
	v, closer, err := w.b.Get(w.dataKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

func (w *applyWriter) Put(k, v []byte, created bool) error {
	if created {
		w.r.applied.Keys++
	}
	return w.b.Set(w.dataKey(k), v, nil)
}

func (w *applyWriter) Del(k []byte) error {
	w.r.applied.Keys--
	return w.b.Delete(w.dataKey(k), nil)
}

// DataReader reads a group's user data straight from the database.
type DataReader struct {
	r     pebble.Reader
	group uint64
}

// Get implements kv.Reader.
func (d *DataReader) Get(k []byte) ([]byte, bool, error) {
	return storage.Get(d.r, storage.DataKey(d.group, k))
}
