package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Backup and restore orchestration. The cut, uncut and restore entries
// themselves are applied in the log (statemachine); this file proposes
// them, streams cuts and checks restore chunks (doc.go has the why).

// cutLease bounds how long a cut holds answers if its release never comes.
const cutLease = 5 * time.Second

// cutAttempts: a cut round that does not finish within half the lease
// (a partition without a leader) is retried this many times in all.
const cutAttempts = 3

// MaxRestoreChunk bounds one restore request's body: a chunk holds records
// of about 1 MiB, or one record larger than that.
const MaxRestoreChunk = backup.MaxTxnValueBytes + 1<<20

// Cut takes a consistent cut of every partition.
func (a *API) Cut(ctx context.Context) (*api.CutJSON, error) {
	var lastErr error
	for attempt := 0; attempt < cutAttempts; attempt++ {
		if attempt > 0 && a.cfg.RefreshMap != nil {
			// A partition split or merged away since this node last read
			// the map fails the round: read it again.
			a.cfg.RefreshMap(ctx)
		}
		parts := a.cfg.Partitions()
		idb := make([]byte, 8)
		_, _ = rand.Read(idb)
		id := hex.EncodeToString(idb)
		started := time.Now()
		indexes, err := eachPartition(ctx, len(parts), cutLease/2, func(cctx context.Context, i int) (uint64, error) {
			rec := parts[i]
			reply := a.cfg.Write(cctx, uint64(rec.ID), [][]byte{[]byte(statemachine.OpCut), []byte(id), strconv.AppendInt(nil, cutLease.Milliseconds(), 10)})
			return cutIndex(rec, reply)
		})
		cutAt := time.Now()
		// Release whatever applied, whether or not the round is kept.
		if _, rerr := eachPartition(ctx, len(parts), cutLease, func(cctx context.Context, i int) (uint64, error) {
			reply := a.cfg.Write(cctx, uint64(parts[i].ID), [][]byte{[]byte(statemachine.OpUncut), []byte(id)})
			if !bytes.HasPrefix(reply, []byte("+OK")) {
				return 0, fmt.Errorf("partition %d: %s", parts[i].ID, replyText(reply))
			}
			return 0, nil
		}); rerr != nil {
			a.log.Warn("releasing a backup cut failed (its lease ends the hold)", "cut", id, "err", rerr)
		}
		if err == nil && cutAt.Sub(started) < cutLease/2 {
			out := &api.CutJSON{ID: id, ClusterID: a.cfg.ClusterID, Version: api.Version,
				Started: started.UTC().Format(time.RFC3339Nano), CutAt: cutAt.UTC().Format(time.RFC3339Nano)}
			addrs := map[uint64]string{}
			for _, rec := range a.cfg.Nodes() {
				addrs[rec.ID] = rec.HTTPAddr
			}
			for i, rec := range parts {
				cp := api.CutPartition{ID: rec.ID, SlotStart: rec.SlotStart, SlotEnd: rec.SlotEnd, Index: indexes[i]}
				nodes := append([]uint64{a.cfg.Leader(uint64(rec.ID))}, a.cfg.GroupNodes(uint64(rec.ID))...)
				seen := map[uint64]bool{}
				for _, id := range nodes {
					if addr := addrs[id]; addr != "" && !seen[id] {
						seen[id] = true
						cp.Nodes = append(cp.Nodes, addr)
					}
				}
				out.Partitions = append(out.Partitions, cp)
			}
			a.log.Info("backup cut taken", "cut", id, "partitions", len(parts), "took", cutAt.Sub(started))
			return out, nil
		}
		a.dropCutEverywhere(id)
		if err == nil {
			err = fmt.Errorf("the cut took %v, over half its lease", cutAt.Sub(started).Round(time.Millisecond))
		}
		lastErr = err
		a.log.Warn("backup cut round failed; retrying", "cut", id, "err", err)
	}
	return nil, fmt.Errorf("no consistent cut after %d attempts: %w", cutAttempts, lastErr)
}

// cutIndex reads a partition's answer to OpCut: the index of its cut,
// and, once a split gave it a range, that range, which must be the one
// its record in the map says: a map from before a split (or a split
// during the cut) would leave keys out of the backup. A partition never
// split answers the index alone; it owns the range it began with, which
// no later map can contradict without a split recording its range first.
func cutIndex(rec api.PartitionRecord, reply []byte) (uint64, error) {
	v, _, err := resp.ParseValue(reply)
	switch {
	case err == nil && v.Kind == ':':
		return uint64(v.Int), nil
	case err == nil && v.Kind == '*' && len(v.Array) == 3 && v.Array[0].Kind == ':' && v.Array[1].Kind == ':' && v.Array[2].Kind == ':':
		lo, hi := v.Array[1].Int, v.Array[2].Int
		if lo != int64(rec.SlotStart) || hi != int64(rec.SlotEnd) {
			return 0, fmt.Errorf("partition %d owns slots %d-%d, the map says %d-%d: a split ran during the cut", rec.ID, lo, hi, rec.SlotStart, rec.SlotEnd)
		}
		return uint64(v.Array[0].Int), nil
	}
	return 0, fmt.Errorf("partition %d: %s", rec.ID, replyText(reply))
}

// eachPartition runs fn for every partition at once, each with its own
// deadline, and returns the results or the first error.
func eachPartition(ctx context.Context, parts int, timeout time.Duration, fn func(context.Context, int) (uint64, error)) ([]uint64, error) {
	out := make([]uint64, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[p], errs[p] = fn(cctx, p)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (a *API) backupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/backup/cut", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		c, err := a.Cut(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("GET /v1/backup/{id}/partitions/{p}", a.servePartitionBackup)
	mux.HandleFunc("DELETE /v1/backup/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.cfg.Engine.DropCut(r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/restore/{id}/partitions/{p}/{step}", a.serveRestoreStep)
}

func (a *API) partitionParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	parts := a.cfg.Partitions()
	p, err := strconv.Atoi(r.PathValue("p"))
	if err == nil && slices.ContainsFunc(parts, func(rec api.PartitionRecord) bool { return rec.ID == p }) {
		return p, true
	}
	http.Error(w, fmt.Sprintf("no partition %q (the cluster has %d)", r.PathValue("p"), len(parts)), http.StatusNotFound)
	return 0, false
}

// servePartitionBackup streams this node's snapshot of a partition at a
// cut as a backup file. A reader that stops reading is cut off after
// streamIdle; the client sees a file without its trailer.
func (a *API) servePartitionBackup(w http.ResponseWriter, r *http.Request) {
	p, ok := a.partitionParam(w, r)
	if !ok {
		return
	}
	c, ok := a.cfg.Engine.OpenCut(uint64(p), r.PathValue("id"))
	if !ok {
		http.Error(w, fmt.Sprintf("node %d holds no cut %s of partition %d", a.cfg.NodeID, r.PathValue("id"), p), http.StatusNotFound)
		return
	}
	defer c.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	rc := http.NewResponseController(w)
	bw, err := backup.NewWriter(deadlineWriter{w: w, rc: rc, n: &a.backups.bytes}, backup.Header{Partition: p, Index: c.Index()})
	if err == nil {
		err = c.Iterate(func(table byte, k, v []byte) error {
			if err := a.cfg.Context.Err(); err != nil {
				return fmt.Errorf("node stopping: %w", err)
			}
			return bw.Add(table, k, v)
		})
	}
	if err == nil {
		_, err = bw.Close()
	}
	if err != nil {
		a.backups.streamsFailed.Add(1)
		a.log.Warn("streaming a backup partition failed", "partition", p, "err", err)
		panic(http.ErrAbortHandler) // cut the stream: the client must not take it as whole
	}
	a.backups.streams.Add(1)
}

// backupStats count the backup streams and restore steps this node
// served, for the metrics: a backup's or restore's progress shows as
// their rates.
type backupStats struct {
	streams, streamsFailed, bytes atomic.Int64
	restoreSteps, restoreFailed   atomic.Int64
}

// BackupStats are the backup and restore work this node has served.
type BackupStats struct {
	PartitionsStreamed, StreamsFailed, BytesStreamed int64
	RestoreSteps, RestoreStepsFailed                 int64
}

// BackupStats reads the counters.
func (a *API) BackupStats() BackupStats {
	b := &a.backups
	return BackupStats{b.streams.Load(), b.streamsFailed.Load(), b.bytes.Load(), b.restoreSteps.Load(), b.restoreFailed.Load()}
}

// streamIdle bounds how long one write of a stream may block.
const streamIdle = 30 * time.Second

type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
	n  *atomic.Int64 // bytes written
}

func (d deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(streamIdle))
	n, err := d.w.Write(b)
	d.n.Add(int64(n))
	return n, err
}

// serveRestoreStep runs one step of a partition's restore: begin,
// load?seq=N (the body is the partition's chunk N of records, from 0), or
// end?keys=N.
func (a *API) serveRestoreStep(w http.ResponseWriter, r *http.Request) {
	p, ok := a.partitionParam(w, r)
	if !ok {
		return
	}
	id := []byte(r.PathValue("id"))
	var args [][]byte
	switch r.PathValue("step") {
	case "begin":
		args = [][]byte{[]byte(statemachine.OpRestoreBegin), id}
	case "end":
		args = [][]byte{[]byte(statemachine.OpRestoreEnd), id, []byte(r.URL.Query().Get("keys"))}
	case "load":
		seq := r.URL.Query().Get("seq")
		chunk, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRestoreChunk))
		if err != nil {
			http.Error(w, "restore chunk: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := backup.DecodeRecords(chunk, func(table byte, k, v []byte) error {
			if table == backup.TableData && a.cfg.PartitionOf(k) != uint64(p) {
				return fmt.Errorf("%w: key %q does not belong to partition %d", backup.ErrCorrupt, k, p)
			}
			return backup.CheckRecord(table, k, v)
		}); err != nil {
			http.Error(w, "restore chunk: "+err.Error(), http.StatusBadRequest)
			return
		}
		args = [][]byte{[]byte(statemachine.OpRestoreLoad), id, []byte(seq), chunk}
	default:
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	reply := a.cfg.Write(ctx, uint64(p), args)
	if !bytes.HasPrefix(reply, []byte("+OK")) {
		a.backups.restoreFailed.Add(1)
		http.Error(w, fmt.Sprintf("partition %d: %s", p, replyText(reply)), http.StatusConflict)
		return
	}
	a.backups.restoreSteps.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// dropCutEverywhere drops this node's snapshots of a cut the coordinator
// gave up on, and asks every other node to drop theirs (over the peer
// port: authenticated as nodes, whatever the caller's credentials), so
// they do not pin old data until they expire.
func (a *API) dropCutEverywhere(id string) {
	a.cfg.Engine.DropCut(id)
	if a.cfg.DropCutOnPeers != nil {
		a.cfg.DropCutOnPeers(a.cfg.Context, id)
	}
}

// replyText is a RESP error reply's text.
func replyText(reply []byte) string {
	v, _, err := resp.ParseValue(reply)
	if err != nil {
		return string(reply)
	}
	return string(v.Str)
}
