package raftstore

import (
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncCountFS counts the syncs of the files it creates.
type syncCountFS struct {
	vfs.FS
	syncs *atomic.Int64
}

func (fs syncCountFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return syncCountFile{File: f, syncs: fs.syncs}, err
}

type syncCountFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f syncCountFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f syncCountFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f syncCountFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

// A staged table that will be ingested is synced when closed; one whose
// stage is doomed (an aborted snapshot) is neither written further nor
// synced, and the stage leaves nothing behind.
func TestDoomedStageIsNotSynced(t *testing.T) {
	var syncs atomic.Int64
	fs := syncCountFS{FS: vfs.NewMem(), syncs: &syncs}
	s := &stager{fs: fs, dir: "snapshots", format: sstable.TableFormatPebblev4}
	if err := fs.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(doom bool) int64 {
		syncs.Store(0)
		st, err := s.newStage(1)
		if err != nil {
			t.Fatal(err)
		}
		w, err := st.create("span-0.sst")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if err := w.Set([]byte{byte(i >> 8), byte(i)}, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
		}
		if doom {
			st.doomed.Store(true)
		}
		_ = w.Close()
		st.Close()
		if left, _ := fs.List(s.dir); len(left) > 0 {
			t.Fatalf("left behind: %v", left)
		}
		return syncs.Load()
	}
	if n := write(false); n == 0 {
		t.Fatal("a table closed for ingest was not synced: the counter counts nothing")
	}
	if n := write(true); n != 0 {
		t.Fatalf("a doomed table was synced %d times", n)
	}
}
