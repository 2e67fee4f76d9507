package raftlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// groupStorage is the raft.Storage view of one group, as the engine will
// build it (conf state and snapshots come from elsewhere).
type groupStorage struct {
	l     *Log
	group uint64
}

var _ raft.Storage = groupStorage{}

func (s groupStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs, err := s.l.HardState(s.group)
	return hs, &pb.ConfState{}, err
}
func (s groupStorage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	return s.l.Entries(s.group, lo, hi, maxSize)
}
func (s groupStorage) Term(i uint64) (uint64, error) { return s.l.Term(s.group, i) }
func (s groupStorage) LastIndex() (uint64, error)    { return s.l.LastIndex(s.group) }
func (s groupStorage) FirstIndex() (uint64, error)   { return s.l.FirstIndex(s.group) }
func (s groupStorage) Snapshot() (*pb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
}

// TestMatchesMemoryStorage holds the log to raft's own MemoryStorage:
// same appends (with suffix replacement) and compactions, same answers to
// every raft.Storage read, maxSize included.
func TestMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 3))
		ms := raft.NewMemoryStorage()
		l := open(t, simfs.New(0), Options{SegmentSize: 4 << 10, CacheEntries: 5, CacheBytes: 512})
		var s raft.Storage = groupStorage{l, 1}
		term := uint64(1)
		for step := range 400 {
			first, _ := ms.FirstIndex()
			last, _ := ms.LastIndex()
			ctx := fmt.Sprintf("seed %d step %d", seed, step)
			if rng.IntN(5) == 0 && last >= first {
				i := first + rng.Uint64N(last-first+1)
				if err := ms.Compact(i); err != nil {
					t.Fatal(err)
				}
				b := l.NewBatch()
				b.Compact(1, i)
				if err := l.Commit(b, rng.IntN(2) == 0); err != nil {
					t.Fatalf("%s: %v", ctx, err)
				}
			} else {
				at := last + 1
				if last >= first && rng.IntN(4) == 0 {
					at = first + rng.Uint64N(last-first+1)
					term++
				}
				var es []*pb.Entry
				for k := range 1 + rng.IntN(8) {
					es = append(es, ent(at+uint64(k), term, make([]byte, rng.IntN(300))))
				}
				if err := ms.Append(es); err != nil {
					t.Fatal(err)
				}
				b := l.NewBatch()
				b.Append(1, es)
				if err := l.Commit(b, rng.IntN(2) == 0); err != nil {
					t.Fatalf("%s: %v", ctx, err)
				}
			}
			if rng.IntN(30) == 0 {
				l.Close()
				l = open(t, l.fs, Options{SegmentSize: 4 << 10, CacheEntries: 5, CacheBytes: 512})
				s = groupStorage{l, 1}
			}
			compareStorage(t, ctx, ms, s, rng)
		}
		l.Close()
	}
}

func compareStorage(t *testing.T, ctx string, want *raft.MemoryStorage, got raft.Storage, rng *rand.Rand) {
	t.Helper()
	wf, _ := want.FirstIndex()
	wl, _ := want.LastIndex()
	gf, _ := got.FirstIndex()
	gl, _ := got.LastIndex()
	if wf != gf || wl != gl {
		t.Fatalf("%s: bounds [%d, %d], want [%d, %d]", ctx, gf, gl, wf, wl)
	}
	for i := wf - 1; i <= wl+1; i++ {
		wt, werr := want.Term(i)
		gt, gerr := got.Term(i)
		if wt != gt || !errors.Is(gerr, werr) {
			t.Fatalf("%s: Term(%d) = %d, %v; want %d, %v", ctx, i, gt, gerr, wt, werr)
		}
	}
	if wl < wf {
		return
	}
	for range 5 {
		lo := wf - 1 + rng.Uint64N(wl-wf+2) // lo = wf-1 is compacted
		hi := max(lo+1, wf) + rng.Uint64N(wl-max(lo, wf)+1)
		maxSize := rng.Uint64N(1500)
		we, werr := want.Entries(lo, hi, maxSize)
		ge, gerr := got.Entries(lo, hi, maxSize)
		if !errors.Is(gerr, werr) || len(we) != len(ge) {
			t.Fatalf("%s: Entries(%d, %d, %d) = %d, %v; want %d, %v", ctx, lo, hi, maxSize, len(ge), gerr, len(we), werr)
		}
		for k := range we {
			if !proto.Equal(we[k], ge[k]) {
				t.Fatalf("%s: Entries(%d, %d): entry %d differs", ctx, lo, hi, k)
			}
		}
	}
}
