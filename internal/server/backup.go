package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/storage"
)

// Backup and restore on the node's side.
//
// A backup is a consistent cut (raftstore/cut.go): the node asked for one
// proposes a cut entry to every partition, in parallel, and releases them
// all once every one applied. It keeps the cut only if they all applied
// within half the lease (measured from before the first was proposed):
// then no replica's hold ran out before the release, which the cut's
// consistency needs. Otherwise it releases and tries again with a new id.
// Each partition is then streamed, as a backup file, from any node that
// applied its cut (GET /v1/backup/ID/partitions/P).
//
// A restore loads a partition through its log, in chunks, between a begin
// and an end entry. Begin refuses a partition that holds data, unless it
// is a restore of the same backup starting over (its marker is there):
// then it clears the partition first. End checks the key count. The
// client (kintsu ctl restore) verifies the whole backup before it begins.

// Internal commands of data partitions; clients cannot send them (the
// front end only routes kv commands).
const (
	opCut          = "kintsu.cut"           // ID LEASE-MS -> :index
	opUncut        = "kintsu.uncut"         // ID
	opRestoreBegin = "kintsu.restore.begin" // ID
	opRestoreLoad  = "kintsu.restore.load"  // ID CHUNK
	opRestoreEnd   = "kintsu.restore.end"   // ID KEYS
)

// cutLease bounds how long a cut holds answers if its release never comes.
const cutLease = 5 * time.Second

// cutAttempts: a cut round that does not finish within half the lease
// (a partition without a leader) is retried this many times in all.
const cutAttempts = 3

// MaxRestoreChunk bounds one restore request's body: a chunk holds records
// of about 256 KiB, or one record larger than that.
const MaxRestoreChunk = backup.MaxTxnValueBytes + 1<<20

func isBackupOp(name []byte) bool { return bytes.HasPrefix(name, []byte("kintsu.")) }

// applyBackupOp evaluates a backup or restore command in a partition's
// state machine. Deterministic: every replica replies the same.
func applyBackupOp(w *raftstore.Writer, args [][]byte, out []byte) ([]byte, error) {
	bad := func(msg string) ([]byte, error) { return resp.AppendError(out, "ERR "+msg), nil }
	if len(args) < 2 {
		return bad("wrong number of arguments for " + string(args[0]))
	}
	id := string(args[1])
	switch string(args[0]) {
	case opCut:
		ms, err := strconv.Atoi(string(args[len(args)-1]))
		if len(args) != 3 || err != nil || ms <= 0 {
			return bad("usage: kintsu.cut ID LEASE-MS")
		}
		return resp.AppendInt(out, int64(w.Index())), w.Cut(id, time.Duration(ms)*time.Millisecond)
	case opUncut:
		return resp.AppendSimple(out, "OK"), w.Uncut(id)
	}
	mark, restoring, err := w.TxnGet(storage.RestoreMark, nil)
	if err != nil {
		return out, err
	}
	switch string(args[0]) {
	case opRestoreBegin:
		switch {
		case restoring && string(mark) == id:
			if err := w.Clear(); err != nil { // the same restore starting over
				return out, err
			}
		case restoring:
			return bad(fmt.Sprintf("the partition is being restored from backup %s", mark))
		default:
			empty, err := w.TxnEmpty()
			if err != nil {
				return out, err
			}
			if n := w.KeyCount(); n != 0 || !empty {
				return bad(fmt.Sprintf("the partition is not empty (%d keys): restore needs a new, empty cluster", n))
			}
		}
		return resp.AppendSimple(out, "OK"), w.TxnPut(storage.RestoreMark, nil, []byte(id))
	case opRestoreLoad, opRestoreEnd:
		if !restoring || string(mark) != id || len(args) != 3 {
			return bad("no restore of backup " + id + " is in progress on this partition")
		}
	default:
		return bad("unknown internal command " + string(args[0]))
	}
	if string(args[0]) == opRestoreEnd {
		want, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil || w.KeyCount() != want {
			return bad(fmt.Sprintf("the partition holds %d keys, the backup %s", w.KeyCount(), args[2]))
		}
		return resp.AppendSimple(out, "OK"), w.TxnDel(storage.RestoreMark, nil)
	}
	err = backup.DecodeRecords(args[2], func(table byte, k, v []byte) error {
		if table != backup.TableData {
			return w.TxnPut(table, k, v)
		}
		_, exists, err := w.Get(k)
		if err != nil {
			return err
		}
		return w.Put(k, v, !exists)
	})
	if err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// CutJSON answers POST /v1/backup/cut.
type CutJSON struct {
	ID         string         `json:"id"`
	ClusterID  string         `json:"cluster_id"`
	Version    string         `json:"version"`
	Started    string         `json:"started"`
	CutAt      string         `json:"cut_at"`
	Partitions []CutPartition `json:"partitions"`
}

// CutPartition is one partition's cut, and nodes that may hold it.
type CutPartition struct {
	ID        int      `json:"id"`
	SlotStart uint16   `json:"slot_start"`
	SlotEnd   uint16   `json:"slot_end"`
	Index     uint64   `json:"index"`
	Nodes     []string `json:"nodes"` // admin addresses, the likeliest first
}

// cutAll takes a consistent cut of every partition.
func (n *Node) cutAll(ctx context.Context) (*CutJSON, error) {
	parts := n.view().parts
	var lastErr error
	for attempt := 0; attempt < cutAttempts; attempt++ {
		idb := make([]byte, 8)
		_, _ = rand.Read(idb)
		id := hex.EncodeToString(idb)
		started := time.Now()
		indexes, err := n.eachPartition(ctx, len(parts), cutLease/2, func(cctx context.Context, p int) (uint64, error) {
			reply := n.router.write(cctx, uint64(p), [][]byte{[]byte(opCut), []byte(id), strconv.AppendInt(nil, cutLease.Milliseconds(), 10)})
			v, _, err := resp.ParseValue(reply)
			if err != nil || v.Kind != ':' {
				return 0, fmt.Errorf("partition %d: %s", p, bytes.TrimSpace(reply))
			}
			return uint64(v.Int), nil
		})
		cutAt := time.Now()
		// Release whatever applied, whether or not the round is kept.
		if _, rerr := n.eachPartition(ctx, len(parts), cutLease, func(cctx context.Context, p int) (uint64, error) {
			reply := n.router.write(cctx, uint64(p), [][]byte{[]byte(opUncut), []byte(id)})
			if !bytes.HasPrefix(reply, []byte("+OK")) {
				return 0, fmt.Errorf("partition %d: %s", p, bytes.TrimSpace(reply))
			}
			return 0, nil
		}); rerr != nil {
			n.log.Warn("releasing a backup cut failed (its lease ends the hold)", "cut", id, "err", rerr)
		}
		if err == nil && cutAt.Sub(started) < cutLease/2 {
			out := &CutJSON{ID: id, ClusterID: n.layout.ident.ClusterID, Version: Version,
				Started: started.UTC().Format(time.RFC3339Nano), CutAt: cutAt.UTC().Format(time.RFC3339Nano)}
			addrs := map[uint64]string{}
			for _, rec := range n.nodeRecords() {
				addrs[rec.ID] = rec.HTTPAddr
			}
			for p, rec := range parts {
				cp := CutPartition{ID: p, SlotStart: rec.SlotStart, SlotEnd: rec.SlotEnd, Index: indexes[p]}
				nodes := append([]uint64{n.leaderOf(uint64(p))}, n.groupNodes(uint64(p))...)
				seen := map[uint64]bool{}
				for _, id := range nodes {
					if a := addrs[id]; a != "" && !seen[id] {
						seen[id] = true
						cp.Nodes = append(cp.Nodes, a)
					}
				}
				out.Partitions = append(out.Partitions, cp)
			}
			n.log.Info("backup cut taken", "cut", id, "partitions", len(parts), "took", cutAt.Sub(started))
			return out, nil
		}
		n.eng.DropCut(id)
		if err == nil {
			err = fmt.Errorf("the cut took %v, over half its lease", cutAt.Sub(started).Round(time.Millisecond))
		}
		lastErr = err
		n.log.Warn("backup cut round failed; retrying", "cut", id, "err", err)
	}
	return nil, fmt.Errorf("no consistent cut after %d attempts: %w", cutAttempts, lastErr)
}

// eachPartition runs fn for every partition at once, each with its own
// deadline, and returns the results or the first error.
func (n *Node) eachPartition(ctx context.Context, parts int, timeout time.Duration, fn func(context.Context, int) (uint64, error)) ([]uint64, error) {
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

func (n *Node) backupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/backup/cut", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		c, err := n.cutAll(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("GET /v1/backup/{id}/partitions/{p}", n.servePartitionBackup)
	mux.HandleFunc("DELETE /v1/backup/{id}", func(w http.ResponseWriter, r *http.Request) {
		n.eng.DropCut(r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/restore/{id}/partitions/{p}/{step}", n.serveRestoreStep)
}

func (n *Node) partitionParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	p, err := strconv.Atoi(r.PathValue("p"))
	if err != nil || p < 0 || p >= len(n.view().parts) {
		http.Error(w, fmt.Sprintf("no partition %q (the cluster has %d)", r.PathValue("p"), len(n.view().parts)), http.StatusNotFound)
		return 0, false
	}
	return p, true
}

// servePartitionBackup streams this node's snapshot of a partition at a
// cut as a backup file. A reader that stops reading is cut off after
// streamIdle; the client sees a file without its trailer.
func (n *Node) servePartitionBackup(w http.ResponseWriter, r *http.Request) {
	p, ok := n.partitionParam(w, r)
	if !ok {
		return
	}
	c, ok := n.eng.OpenCut(uint64(p), r.PathValue("id"))
	if !ok {
		http.Error(w, fmt.Sprintf("node %d holds no cut %s of partition %d", n.cfg.NodeID, r.PathValue("id"), p), http.StatusNotFound)
		return
	}
	defer c.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	rc := http.NewResponseController(w)
	bw, err := backup.NewWriter(deadlineWriter{w: w, rc: rc}, backup.Header{Partition: p, Index: c.Index()})
	if err == nil {
		err = c.Iterate(bw.Add)
	}
	if err == nil {
		_, err = bw.Close()
	}
	if err != nil {
		n.log.Warn("streaming a backup partition failed", "partition", p, "err", err)
		panic(http.ErrAbortHandler) // cut the stream: the client must not take it as whole
	}
}

// streamIdle bounds how long one write of a stream may block.
const streamIdle = 30 * time.Second

type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(streamIdle))
	return d.w.Write(b)
}

// serveRestoreStep runs one step of a partition's restore: begin, load
// (the body is a chunk of records), or end?keys=N.
func (n *Node) serveRestoreStep(w http.ResponseWriter, r *http.Request) {
	p, ok := n.partitionParam(w, r)
	if !ok {
		return
	}
	id := []byte(r.PathValue("id"))
	var args [][]byte
	switch r.PathValue("step") {
	case "begin":
		args = [][]byte{[]byte(opRestoreBegin), id}
	case "end":
		args = [][]byte{[]byte(opRestoreEnd), id, []byte(r.URL.Query().Get("keys"))}
	case "load":
		chunk, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRestoreChunk))
		if err != nil {
			http.Error(w, "restore chunk: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err := backup.DecodeRecords(chunk, func(table byte, _, v []byte) error {
			if table == backup.TableData && !kv.ValidStored(v) {
				return fmt.Errorf("%w: a value this version cannot read", backup.ErrCorrupt)
			}
			return nil
		}); err != nil {
			http.Error(w, "restore chunk: "+err.Error(), http.StatusBadRequest)
			return
		}
		args = [][]byte{[]byte(opRestoreLoad), id, chunk}
	default:
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	reply := n.router.write(ctx, uint64(p), args)
	if !bytes.HasPrefix(reply, []byte("+OK")) {
		http.Error(w, fmt.Sprintf("partition %d: %s", p, bytes.TrimSpace(reply)), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// abandonedCut: a cut marker this old belongs to a backup whose
// coordinator never released it (it died); its hold ended with its lease,
// and the marker would only make restarts hold again.
const abandonedCut = time.Minute

// dropAbandonedCuts releases group's old cut markers (on its leader).
func (n *Node) dropAbandonedCuts(group uint64) {
	marks, err := n.eng.Reader(group).CutMarks()
	if err != nil || len(marks) == 0 {
		return
	}
	now := n.clock.Now().UnixMilli()
	for id, at := range marks {
		if now-at < abandonedCut.Milliseconds() {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		n.router.write(ctx, group, [][]byte{[]byte(opUncut), []byte(id)})
		cancel()
	}
}
