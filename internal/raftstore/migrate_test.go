package raftstore

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
)

// legacyGroup is a replica's raft state as a data dir from before the
// raft log left Pebble holds it.
type legacyGroup struct {
	group      uint64
	trunc      uint64 // 0: an empty replica, no truncated state
	last, term uint64 // entries (trunc, last] of term
	hs         *pb.HardState
}

// writeLegacy writes gs the old way: descriptor, applied state, and the
// raft state under the raft prefix, through storage.LogStore.
func writeLegacy(t *testing.T, db *pebble.DB, gs []legacyGroup) {
	t.Helper()
	for _, g := range gs {
		b := db.NewBatch()
		desc := &storage.Descriptor{Group: g.group, NextID: 2, Replicas: []storage.Replica{{ID: 1, Node: 1}}}
		conf := &pb.ConfState{Voters: []uint64{1}}
		if g.trunc > 0 {
			if err := storage.WriteInitial(b, g.group, g.trunc, g.term, conf, desc, 0); err != nil {
				t.Fatal(err)
			}
		} else {
			empty := storage.AppliedState{Conf: &pb.ConfState{}}
			_ = b.Set(storage.DescriptorKey(g.group), desc.Encode(), nil)
			_ = b.Set(storage.AppliedKey(g.group), empty.Encode(), nil)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		ls, err := storage.LoadLogStore(db, g.group, conf, 0)
		if err != nil {
			t.Fatal(err)
		}
		b = db.NewBatch()
		if g.last > g.trunc {
			if err := ls.Append(b, logEnts(g.trunc+1, g.last, g.term)); err != nil {
				t.Fatal(err)
			}
		}
		if g.hs != nil {
			if err := ls.SetHardState(b, g.hs); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateLegacyLogs: a data dir written before the raft log left
// Pebble is migrated at the engine's creation — entries, compaction
// point and hard state of every replica, an empty one included — and its
// legacy keys deleted, whatever a crash in an earlier migration left in
// the raft log; a second engine migrates nothing again and loads the
// same logs.
func TestMigrateLegacyLogs(t *testing.T) {
	legacy := []legacyGroup{
		{group: 1, trunc: 10, last: 40, term: 6, hs: hardState(6, 1, 35)},
		{group: 2},                         // an empty replica: descriptor and empty applied state
		{group: 3, hs: hardState(9, 1, 0)}, // an empty replica that voted
	}
	for _, crashed := range []bool{false, true} {
		fs := vfs.NewMem()
		db, err := storage.Open(storage.Options{Dir: "data", FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		writeLegacy(t, db, legacy)
		rlog, err := OpenLog(fs, "data", 4<<10, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if crashed {
			// An earlier migration copied group 1 differently and crashed
			// before deleting the legacy keys.
			commitBatch(t, rlog, func(b *raftlog.Batch) {
				b.Reset(1, 0, 0)
				b.Append(1, logEnts(1, 3, 2))
				b.SetHardState(1, hardState(2, 0, 1))
			})
		}
		cfg := Config{NodeID: 1, Apply: func(uint64, *Writer, *command.Spec, [][]byte, []byte) ([]byte, error) { return nil, nil }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		for round := range 2 {
			e, err := New(cfg, db, rlog, nopTransport{})
			if err != nil {
				t.Fatalf("crashed=%v round %d: %v", crashed, round, err)
			}
			if err := e.LoadAll(); err != nil {
				t.Fatalf("crashed=%v round %d: load: %v", crashed, round, err)
			}
			for _, g := range legacy {
				r := e.byGroup[g.group]
				if r == nil {
					t.Fatalf("group %d not loaded", g.group)
				}
				first, _ := r.log.FirstIndex()
				last, _ := r.log.LastIndex()
				if first != g.trunc+1 || last != max(g.last, g.trunc) {
					t.Errorf("crashed=%v group %d: log [%d, %d], want [%d, %d]", crashed, g.group, first, last, g.trunc+1, max(g.last, g.trunc))
				}
				if g.last > g.trunc {
					ents, err := r.log.Entries(g.trunc+1, g.last+1, 1<<30)
					if err != nil || len(ents) != int(g.last-g.trunc) || ents[0].GetTerm() != g.term || !bytes.Equal(ents[len(ents)-1].GetData(), logEnts(g.last, g.last, g.term)[0].GetData()) {
						t.Errorf("crashed=%v group %d: entries %v %v", crashed, g.group, len(ents), err)
					}
				}
				want := g.hs
				if want == nil {
					want = hardState(g.term, 0, g.trunc) // WriteInitial's
				}
				if hs, _ := rlog.HardState(g.group); !proto.Equal(hs, want) {
					t.Errorf("crashed=%v group %d: hard state %v, want %v", crashed, g.group, hs, want)
				}
				lo, hi := storage.LogSpan(g.group, 0, ^uint64(0))
				for _, k := range [][2][]byte{{lo, hi}, {storage.HardStateKey(g.group), append(storage.HardStateKey(g.group), 0)}, {storage.TruncatedKey(g.group), append(storage.TruncatedKey(g.group), 0)}} {
					if n := countSpan(t, db, k[0], k[1]); n != 0 {
						t.Errorf("crashed=%v group %d: %d legacy keys left in %x", crashed, g.group, n, k[0])
					}
				}
			}
			if _, ok, _ := storage.Get(db, storage.RaftLogOutKey); !ok {
				t.Fatal("the migration is not recorded")
			}
			if got := rlog.Groups(); !slices.Equal(got, []uint64{1, 2, 3}) {
				t.Errorf("raft log groups %v", got)
			}
		}
		rlog.Close()
		db.Close()
	}
}

func countSpan(t *testing.T, db *pebble.DB, lo, hi []byte) int {
	n := 0
	if err := iterSpan(db, lo, hi, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
