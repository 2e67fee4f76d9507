package raftstore

import (
	"encoding/binary"
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
)

// Crash points between the raft log and Pebble that the simulator does
// not reach (a cluster bootstraps once, before its faults start), each
// cut by hand: the first half of a two-step write done, then a power cut
// (vfs.MemFS's crash clone keeps only what was synced), then a start.

type crashDisk struct {
	t    *testing.T
	fs   *vfs.MemFS
	db   *pebble.DB
	rlog *raftlog.Log
}

func openCrashDisk(t *testing.T, fs *vfs.MemFS) *crashDisk {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: "data", FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	rlog, err := OpenLog(fs, "data", 4<<10, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &crashDisk{t: t, fs: fs, db: db, rlog: rlog}
}

// powerCut returns the disk as a power cut leaves it, reopened.
func (d *crashDisk) powerCut() *crashDisk {
	crashed := d.fs.CrashClone(vfs.CrashCloneCfg{})
	d.rlog.Close()
	d.db.Close()
	return openCrashDisk(d.t, crashed)
}

func (d *crashDisk) engine() *Engine {
	d.t.Helper()
	cfg := Config{NodeID: 1, Apply: func(uint64, *Writer, *command.Spec, [][]byte, []byte) ([]byte, error) { return nil, nil },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e, err := New(cfg, d.db, d.rlog, nopTransport{})
	if err != nil {
		d.t.Fatal(err)
	}
	return e
}

func bootDesc(group uint64) *storage.Descriptor {
	return &storage.Descriptor{Group: group, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
}

// A bootstrap cut after its raft log record and before its Pebble batch:
// a fresh start bootstraps again over it; a start that finds the node
// already bootstrapped (LoadAll) drops the orphan log.
func TestCrashInsideBootstrap(t *testing.T) {
	for _, fresh := range []bool{true, false} {
		d := openCrashDisk(t, vfs.NewCrashableMem())
		if err := createGroupLog(d.rlog, 4, bootIndex, bootTerm, &pb.HardState{Term: new(uint64(bootTerm)), Commit: new(uint64(bootIndex))}); err != nil {
			t.Fatal(err)
		}
		d = d.powerCut()
		e := d.engine()
		if fresh {
			if err := e.AddReplica(4, &Bootstrap{Desc: bootDesc(4)}); err != nil {
				t.Fatalf("bootstrap again: %v", err)
			}
			if r := e.byGroup[4]; r == nil || r.applied.Index != bootIndex {
				t.Fatalf("replica after the second bootstrap: %+v", r)
			}
		} else {
			if err := e.LoadAll(); err != nil {
				t.Fatal(err)
			}
			if d.rlog.Has(4) {
				t.Fatal("the orphan raft log of the cut bootstrap was kept")
			}
		}
		if !fresh == d.rlog.Has(4) {
			t.Fatalf("fresh=%v: raft log of group 4 present = %v", fresh, d.rlog.Has(4))
		}
	}
}

// A destroy cut after its synced Pebble batch and before the raft log's
// drop: the next start loads no replica, keeps the tombstone, and drops
// the log; a replica created later under a new id starts from an empty
// log, not the old one.
func TestCrashInsideDestroy(t *testing.T) {
	d := openCrashDisk(t, vfs.NewCrashableMem())
	e := d.engine()
	if err := e.AddReplica(4, &Bootstrap{Desc: bootDesc(4)}); err != nil {
		t.Fatal(err)
	}
	b := d.db.NewBatch()
	for _, sp := range storage.ReplicaSpans(4) {
		if err := b.DeleteRange(sp[0], sp[1], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(storage.TombstoneKey(4), binary.BigEndian.AppendUint64(nil, 1), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	d = d.powerCut()
	e = d.engine()
	if err := e.LoadAll(); err != nil {
		t.Fatal(err)
	}
	if e.byGroup[4] != nil || d.rlog.Has(4) || e.tombstone(4) != 1 {
		t.Fatalf("after the cut destroy: hosted %v, raft log %v, tombstone %d", e.byGroup[4] != nil, d.rlog.Has(4), e.tombstone(4))
	}
	if err := createGroupLog(d.rlog, 4, 0, 0, &pb.HardState{}); err != nil {
		t.Fatal(err)
	}
	if last, _ := d.rlog.LastIndex(4); last != 0 {
		t.Fatalf("a new replica's log starts at %d", last)
	}
}

// A descriptor whose raft log is gone (a data dir copied without
// raftlog/) refuses the start instead of starting with an empty log and
// no vote.
func TestMissingRaftLogRefusesTheStart(t *testing.T) {
	d := openCrashDisk(t, vfs.NewCrashableMem())
	if err := d.engine().AddReplica(4, &Bootstrap{Desc: bootDesc(4)}); err != nil {
		t.Fatal(err)
	}
	if err := d.rlog.DropGroup(4); err != nil {
		t.Fatal(err)
	}
	if err := d.engine().LoadAll(); err == nil {
		t.Fatal("loaded a replica whose raft log is missing")
	} else {
		t.Logf("refused: %v", err)
	}
}
