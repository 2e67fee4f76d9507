package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/storage"
)

// Incoming snapshots are staged on disk, never in memory. The pairs of
// each replicated span arrive in key order (the sender reads them with
// one iterator per span), so the builder writes each span straight into
// an sstable of its own that begins with a range deletion of the whole
// span. Raft accepting the snapshot ingests those files, with one more
// holding the group's applied state and descriptor, in one Pebble ingest
// (CockroachDB installs snapshots the same way).
//
// Invariants:
//   - The install is atomic: an ingest is equivalent to one batch, so a
//     crash leaves the replica's old state or the snapshot's, its data,
//     applied index and descriptor together; the range deletions in the
//     files clear what the replica held, as the batch's did.
//   - Memory per incoming snapshot is the sstable writer's buffers and the
//     tables the loop keeps (transaction records, dedupe marks: at most
//     MaxSnapshotTableBytes), whatever the snapshot's size; its disk is
//     bounded by MaxSnapshotBytes, and staging stops before the volume's
//     free space falls under the disk guard's reserve.
//   - Nothing out of order or outside the group's spans is written: a
//     span seen twice, a key not above the one before it, or a foreign key
//     refuses the whole snapshot.
//   - A staged snapshot's files are removed when it is installed (Pebble
//     takes them), replaced, refused or dropped; what a crash left is
//     removed when the engine starts.

// stager is where an engine stages incoming snapshots: a directory on the
// file system of the node's database (an ingest links files, so it must
// be the same one).
type stager struct {
	fs     vfs.FS
	dir    string
	temp   bool // a directory of its own, removed when the engine stops
	seq    atomic.Uint64
	format sstable.TableFormat
}

// initStager empties the staging directory: a snapshot staged before a
// restart is never installed (raft asks for it again).
func (e *Engine) initStager() error {
	s := &e.stage
	s.fs = e.cfg.FS
	if s.fs == nil {
		s.fs = vfs.Default
	}
	s.format = e.db.TableFormat()
	switch {
	case e.cfg.SnapshotDir != "":
		s.dir = e.cfg.SnapshotDir
	case e.cfg.DataDir != "":
		s.dir = filepath.Join(e.cfg.DataDir, "snapshots")
	default:
		// No data dir named (tests of the engine alone, on the real file
		// system): a directory of its own.
		dir, err := os.MkdirTemp("", "kintsu-snapshots-")
		if err != nil {
			return fmt.Errorf("snapshot staging: %w", err)
		}
		s.dir, s.temp = dir, true
	}
	if err := s.fs.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("snapshot staging at %s: %w", s.dir, err)
	}
	if err := s.fs.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("snapshot staging at %s: %w", s.dir, err)
	}
	return nil
}

func (s *stager) close() {
	if s.temp {
		_ = s.fs.RemoveAll(s.dir)
	}
}

// newStage makes a directory for one incoming snapshot.
func (s *stager) newStage(group uint64) (*stagedSnap, error) {
	dir := s.fs.PathJoin(s.dir, fmt.Sprintf("%d-%d", group, s.seq.Add(1)))
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &stagedSnap{fs: s.fs, dir: dir, format: s.format}, nil
}

// stagedSnap is one snapshot's sstables on disk.
type stagedSnap struct {
	fs     vfs.FS
	dir    string
	format sstable.TableFormat
	files  []string
	// doomed: the stage will be removed, not ingested, so its files'
	// writes and syncs are skipped (doomedFile): closing an sstable
	// writer syncs its file, and an aborted snapshot's need not be.
	doomed atomic.Bool
}

// doomedFile is a staged file whose writes fail and whose syncs do
// nothing once its stage is doomed.
type doomedFile struct {
	vfs.File
	doomed *atomic.Bool
}

var errDoomed = errors.New("snapshot stage aborted")

func (f doomedFile) Write(p []byte) (int, error) {
	if f.doomed.Load() {
		return 0, errDoomed
	}
	return f.File.Write(p)
}

func (f doomedFile) Sync() error {
	if f.doomed.Load() {
		return nil
	}
	return f.File.Sync()
}

func (f doomedFile) SyncData() error {
	if f.doomed.Load() {
		return nil
	}
	return f.File.SyncData()
}

func (f doomedFile) SyncTo(length int64) (bool, error) {
	if f.doomed.Load() {
		return true, nil
	}
	return f.File.SyncTo(length)
}

// stageBytesPerSync is how much of a staged file is written before its
// pages are handed to the disk (sync_file_range), as Pebble's own
// BytesPerSync.
const stageBytesPerSync = 1 << 20

// create starts a new sstable in the stage.
func (s *stagedSnap) create(name string) (*sstable.Writer, error) {
	path := s.fs.PathJoin(s.dir, name)
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	s.files = append(s.files, path)
	opts := sstable.WriterOptions{TableFormat: s.format, FilterPolicy: bloom.FilterPolicy(10)}
	// Written back a megabyte at a time as it grows, as Pebble writes its
	// own sstables: a span's file can be the whole partition, and syncing
	// hundreds of megabytes of dirty pages at its close stalls every
	// other sync on the volume — the node's raft log among them.
	file := vfs.NewSyncingFile(doomedFile{File: f, doomed: &s.doomed}, vfs.SyncingFileOptions{BytesPerSync: stageBytesPerSync})
	return sstable.NewWriter(objstorageprovider.NewFileWritable(file), opts), nil
}

// checkSpace refuses to stage more when the volume has less than reserve
// and two more check intervals free. A file system that cannot say (a
// simulated one) is not checked.
func (s *stagedSnap) checkSpace(reserve uint64) error {
	u, err := s.fs.GetDiskUsage(s.dir)
	if err != nil {
		return nil
	}
	if u.AvailBytes < reserve+2*stageCheckBytes {
		return fmt.Errorf("%w: %d MiB free, reserve %d MiB: not staging more", ErrNoSpace, u.AvailBytes>>20, reserve>>20)
	}
	return nil
}

// Close removes what is left of the stage (nothing, after an ingest).
func (s *stagedSnap) Close() {
	if s == nil || s.dir == "" {
		return
	}
	_ = s.fs.RemoveAll(s.dir)
	s.dir, s.files = "", nil
}

// ingest installs the staged spans, with the group's applied state and
// descriptor, in one atomic ingest.
func (s *stagedSnap) ingest(db *pebble.DB, group uint64, applied storage.AppliedState, desc []byte) error {
	w, err := s.create("state.sst")
	if err != nil {
		return err
	}
	// The applied state's key sorts before the descriptor's (keys.go).
	if err := w.Set(storage.AppliedKey(group), applied.Encode()); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Set(storage.DescriptorKey(group), desc); err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return db.Ingest(context.Background(), s.files)
}

// spanWriter writes one replicated span of a snapshot being received.
type spanWriter struct {
	idx  int
	w    *sstable.Writer
	last []byte
}

// open starts span i's file with a deletion of the whole span.
func (b *SnapshotBuilder) open(i int) error {
	w, err := b.stage.create("span-" + strconv.Itoa(i) + ".sst")
	if err != nil {
		return err
	}
	b.cur = &spanWriter{idx: i, w: w}
	b.written[i] = true
	return w.DeleteRange(b.spans[i][0], b.spans[i][1])
}

// closeSpan finishes the span being written, if any.
func (b *SnapshotBuilder) closeSpan() error {
	if b.cur == nil {
		return nil
	}
	err := b.cur.w.Close()
	b.cur = nil
	return err
}

// put writes k, v into span i, in order.
func (b *SnapshotBuilder) put(i int, k, v []byte) error {
	if b.cur == nil || b.cur.idx != i {
		if b.written[i] {
			return fmt.Errorf("snapshot for group %d: its pairs are out of order", b.group)
		}
		if err := b.closeSpan(); err != nil {
			return err
		}
		if err := b.open(i); err != nil {
			return err
		}
	}
	if b.cur.last != nil && bytes.Compare(k, b.cur.last) <= 0 {
		return fmt.Errorf("snapshot for group %d: its pairs are out of order", b.group)
	}
	b.cur.last = append(b.cur.last[:0], k...)
	return b.cur.w.Set(k, v)
}

// finish closes the last span and writes the spans no pair named (only
// their deletion: the snapshot holds nothing there).
func (b *SnapshotBuilder) finish() error {
	if err := b.closeSpan(); err != nil {
		return err
	}
	for i := range b.spans {
		if !b.written[i] {
			if err := b.open(i); err != nil {
				return err
			}
			if err := b.closeSpan(); err != nil {
				return err
			}
		}
	}
	return nil
}
