package ctl

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/backup"
	"github.com/kintsu/kintsu/internal/clock"
)

// Parallel is how many partitions a backup or restore moves at once.
const Parallel = 4

// idleTimeout cuts off a transfer that made no progress for this long.
const idleTimeout = 30 * time.Second

// chunkBytes is the size a restore aims at for one request: one raft
// entry of the default size (raftstore.Config.MaxEntryBytes), so each
// round trip through the log carries as much as it can.
const chunkBytes = 1 << 20

// Backup takes an online backup of the cluster that the node at addr
// belongs to into dir, which must not hold a backup already. Progress is
// written to progress every second.
func Backup(ctx context.Context, addr, dir string, progress io.Writer) (*backup.Manifest, error) {
	if _, err := os.Stat(filepath.Join(dir, backup.ManifestName)); err == nil {
		return nil, fmt.Errorf("%s already holds a backup", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	st, err := Fetch(ctx, addr)
	if err != nil {
		return nil, err
	}
	var cut api.CutJSON
	if err := call(ctx, http.MethodPost, adminURL(addr, "/v1/backup/cut"), nil, 60*time.Second, &cut); err != nil {
		return nil, fmt.Errorf("taking the cut: %w", err)
	}
	var all []string
	for _, rec := range st.Nodes {
		if rec.HTTPAddr != "" {
			all = append(all, rec.HTTPAddr)
		}
	}
	defer func() {
		for _, a := range all { // the cut's snapshots are no longer needed
			cctx, cancel := context.WithTimeout(context.Background(), Timeout)
			_ = call(cctx, http.MethodDelete, adminURL(a, "/v1/backup/"+cut.ID), nil, Timeout, nil)
			cancel()
		}
	}()
	m := &backup.Manifest{Format: backup.FormatVersion, KintsuVersion: cut.Version, ClusterID: cut.ClusterID,
		BackupID: cut.ID, Started: cut.Started, CutAt: cut.CutAt}
	m.Partitions = make([]backup.Partition, len(cut.Partitions))
	var bytesDone atomic.Int64
	tr := newTracker(progress, "backup", len(cut.Partitions), 0, &bytesDone)
	defer tr.stop()
	err = forEach(ctx, len(cut.Partitions), func(ctx context.Context, i int) error {
		cp := cut.Partitions[i]
		nodes := append(slices.Clone(cp.Nodes), all...)
		var errs []error
		for _, node := range dedupe(nodes) {
			p, err := fetchPartition(ctx, node, cut.ID, cp, dir, &bytesDone)
			if err == nil {
				m.Partitions[i] = p
				tr.partitionDone()
				return nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return fmt.Errorf("partition %d: no node could stream its cut: %w", cp.ID, errors.Join(errs...))
	})
	if err != nil {
		return nil, err
	}
	for _, p := range m.Partitions {
		m.Keys, m.Bytes = m.Keys+p.Keys, m.Bytes+p.Bytes
	}
	m.Finished = time.Now().UTC().Format(time.RFC3339Nano)
	if err := backup.SyncDir(dir); err != nil {
		return nil, err
	}
	return m, backup.WriteManifest(dir, m)
}

// fetchPartition streams one partition's cut from node into dir, checking
// it as it arrives, and renames it into place only once it is whole and
// synced.
func fetchPartition(ctx context.Context, node, id string, cp api.CutPartition, dir string, done *atomic.Int64) (p backup.Partition, err error) {
	p = backup.Partition{ID: cp.ID, SlotStart: cp.SlotStart, SlotEnd: cp.SlotEnd, Index: cp.Index, File: backup.FileName(cp.ID)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The idle bound starts before the request: a node that accepts the
	// connection but never answers (a paused process) is given up too.
	body := newIdleReader(idleTimeout, cancel)
	defer body.stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL(node, fmt.Sprintf("/v1/backup/%s/partitions/%d", id, cp.ID)), nil)
	if err != nil {
		return p, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return p, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("%s: %s", node, answerText(resp))
	}
	tmp := filepath.Join(dir, p.File+".part")
	f, err := os.Create(tmp)
	if err != nil {
		return p, err
	}
	defer os.Remove(tmp) // a no-op once renamed
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{done: done}
	defer func() {
		if err != nil {
			done.Add(-cw.n) // the bytes of a failed attempt do not count
		}
	}()
	body.r = resp.Body
	counts, hdr, err := backup.Scan(io.TeeReader(body, io.MultiWriter(f, h, cw)), nil)
	if err != nil {
		return p, fmt.Errorf("%s: %w", node, err)
	}
	if hdr.Partition != cp.ID || hdr.Index != cp.Index {
		return p, fmt.Errorf("%s sent partition %d at %d, want %d at %d", node, hdr.Partition, hdr.Index, cp.ID, cp.Index)
	}
	if err := f.Sync(); err != nil {
		return p, err
	}
	if err := f.Close(); err != nil {
		return p, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, p.File)); err != nil {
		return p, err
	}
	p.Keys, p.Records, p.Bytes, p.SHA256 = counts.Keys, counts.Records, cw.n, hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// Verify checks the backup in dir, writing progress.
func Verify(dir string, progress io.Writer) (*backup.Manifest, error) {
	m, _, err := verify(dir, progress)
	return m, err
}

// verify is Verify that also tallies the transaction records, which a
// restore into another layout cannot carry: counted on the one reading
// that checks every file, so the refusal costs no second pass.
func verify(dir string, progress io.Writer) (*backup.Manifest, txnTally, error) {
	var tally txnTally
	m, err := backup.ReadManifest(dir)
	if err != nil {
		return nil, tally, err
	}
	var bytesDone atomic.Int64
	tr := newTracker(progress, "verify", len(m.Partitions), m.Bytes, &bytesDone)
	defer tr.stop()
	var inFile int64
	m, err = backup.Verify(dir, func(table byte, k, v []byte) error {
		if isTxnTable(table) {
			inFile++
		}
		return backup.CheckRecord(table, k, v)
	}, func(p backup.Partition) {
		if inFile > 0 {
			tally.records += inFile
			tally.partitions = append(tally.partitions, p.ID)
			inFile = 0
		}
		bytesDone.Add(p.Bytes)
		tr.partitionDone()
	})
	return m, tally, err
}

// Restore loads the backup in dir into the new, empty cluster that the
// node at addr belongs to. The whole backup is verified first; nothing is
// sent if any file is bad. Every partition is then marked as restoring
// (refused if it holds data), loaded, and finally unmarked with its key
// count checked. A restore that fails half way can be run again: it
// starts the marked partitions over.
//
// A cluster laid out as the backup (the same partition ids and ranges)
// gets each file as it is. Any other layout gets each record in the
// partition owning its key's slot (relayout.go), unless the backup holds
// transaction records, which name partitions by id.
func Restore(ctx context.Context, addr, dir string, progress io.Writer) (*backup.Manifest, error) {
	m, txns, err := verify(dir, progress)
	if err != nil {
		return nil, fmt.Errorf("the backup is refused, nothing was restored: %w", err)
	}
	st, err := Fetch(ctx, addr)
	if err != nil {
		return nil, err
	}
	cluster, err := clusterLayout(st)
	if err != nil {
		return nil, fmt.Errorf("nothing was restored: %w", err)
	}
	same := sameLayout(m.Partitions, cluster)
	if !same && txns.records > 0 {
		return nil, txns.refusal(m, cluster)
	}
	base := adminURL(addr, fmt.Sprintf("/v1/restore/%s/partitions/", m.BackupID))
	step := func(ctx context.Context, p int, what string, body []byte) error {
		return call(ctx, http.MethodPost, fmt.Sprintf("%s%d/%s", base, p, what), body, 60*time.Second, nil)
	}
	// A chunk is retried with its number: the partition loads it once.
	load := func(ctx context.Context, p, seq int, chunk []byte) error {
		var err error
		for attempt := range 3 {
			if err = step(ctx, p, fmt.Sprintf("load?seq=%d", seq), chunk); err == nil || ctx.Err() != nil {
				break
			}
			clock.Sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond)
		}
		return err
	}
	// Mark every partition first: a cluster that is not empty is refused
	// before anything is loaded, and every mark is taken back (ending a
	// partition that was not marked is refused, harmlessly).
	var refused error
	var mu sync.Mutex
	_ = forEach(context.WithoutCancel(ctx), len(cluster), func(ctx context.Context, i int) error {
		if err := step(ctx, cluster[i].ID, "begin", nil); err != nil {
			mu.Lock()
			refused = cmp.Or(refused, err)
			mu.Unlock()
		}
		return nil
	})
	if refused != nil {
		_ = forEach(context.WithoutCancel(ctx), len(cluster), func(ctx context.Context, i int) error {
			_ = step(ctx, cluster[i].ID, "end?keys=0", nil)
			return nil
		})
		return nil, fmt.Errorf("nothing was restored: %w", refused)
	}
	var bytesDone atomic.Int64
	tr := newTracker(progress, "restore", len(m.Partitions), m.Bytes, &bytesDone)
	keys := make([]int64, len(cluster)) // by position in cluster
	if same {
		err = forEach(ctx, len(m.Partitions), func(ctx context.Context, i int) error {
			p := m.Partitions[i]
			seq := 0
			if err := loadPartition(ctx, dir, p, &bytesDone, func(chunk []byte) error {
				seq++
				return load(ctx, p.ID, seq-1, chunk)
			}); err != nil {
				return err
			}
			keys[i] = p.Keys
			tr.partitionDone()
			return nil
		})
	} else {
		keys, err = relayout(ctx, dir, m, cluster, load, tr, &bytesDone)
	}
	tr.stop()
	if err == nil {
		err = forEach(ctx, len(cluster), func(ctx context.Context, i int) error {
			return step(ctx, cluster[i].ID, fmt.Sprintf("end?keys=%d", keys[i]), nil)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("the restore did not finish (run the same command again to start it over): %w", err)
	}
	return m, nil
}

// loadPartition sends one partition's records in chunks.
func loadPartition(ctx context.Context, dir string, p backup.Partition, done *atomic.Int64, send func([]byte) error) error {
	var chunk []byte
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := send(chunk); err != nil {
			return err
		}
		done.Add(int64(len(chunk)))
		chunk = chunk[:0]
		return ctx.Err()
	}
	err := readPartition(dir, p, func(table byte, k, v []byte) error {
		chunk = backup.AppendRecord(chunk, table, k, v)
		if len(chunk) >= chunkBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		if err = flush(); err != nil {
			err = fmt.Errorf("partition %d: %w", p.ID, err)
		}
	}
	return err
}

// readPartition reads one partition's records, checking the file's
// checksum again as it goes (it was verified, but is read anew).
func readPartition(dir string, p backup.Partition, fn func(table byte, k, v []byte) error) error {
	f, err := os.Open(filepath.Join(dir, p.File))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, _, err := backup.Scan(io.TeeReader(f, h), fn); err != nil {
		return fmt.Errorf("partition %d: %w", p.ID, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		return fmt.Errorf("%s changed while it was restored", p.File)
	}
	return nil
}

// forEach runs fn for 0..n-1, Parallel at a time, stopping at the first
// error.
func forEach(ctx context.Context, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(Parallel, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// call sends one admin request and decodes a JSON answer into out.
func call(ctx context.Context, method, url string, body []byte, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New(answerText(resp))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(out)
}

func answerText(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if t := strings.TrimSpace(string(b)); t != "" {
		return t
	}
	return resp.Status
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

type countWriter struct {
	n    int64
	done *atomic.Int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	c.done.Add(int64(len(b)))
	return len(b), nil
}

// idleReader cancels a transfer that delivers nothing for idle.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

// newIdleReader starts the clock at once; r is set when the answer comes.
func newIdleReader(idle time.Duration, cancel func()) *idleReader {
	return &idleReader{t: time.AfterFunc(idle, cancel), d: idle}
}

func (i *idleReader) Read(b []byte) (int, error) {
	n, err := i.r.Read(b)
	if n > 0 {
		i.t.Reset(i.d)
	}
	return n, err
}

func (i *idleReader) stop() { i.t.Stop() }
