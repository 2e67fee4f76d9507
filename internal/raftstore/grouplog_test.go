package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/kintsu/kintsu/internal/dst/simfs"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func openRaftlog(t *testing.T, fs *simfs.FS) *raftlog.Log {
	t.Helper()
	l, err := raftlog.Open(fs, "raftlog", raftlog.Options{SegmentSize: 4 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open raftlog: %v", err)
	}
	return l
}

func commitBatch(t *testing.T, l *raftlog.Log, fill func(b *raftlog.Batch)) {
	t.Helper()
	b := l.NewBatch()
	fill(b)
	if err := l.Commit(b, true); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func logEnts(lo, hi, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Data: []byte(fmt.Sprint(i))})
	}
	return out
}

func hardState(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

// seedLog writes group 7's log: reset after (5, 1), entries 6..10 of term
// 2, and the hard state.
func seedLog(t *testing.T, l *raftlog.Log, hs *pb.HardState) {
	commitBatch(t, l, func(b *raftlog.Batch) {
		b.Reset(7, 5, 1)
		b.Append(7, logEnts(6, 10, 2))
		b.SetHardState(7, hs)
	})
}

func applied(index, term uint64) storage.AppliedState {
	return storage.AppliedState{Index: index, Term: term, Conf: &pb.ConfState{Voters: []uint64{1, 2, 3}}}
}

func checkLog(t *testing.T, g *groupLog, first, last uint64) {
	t.Helper()
	if f, _ := g.FirstIndex(); f != first {
		t.Errorf("FirstIndex %d, want %d", f, first)
	}
	if l, _ := g.LastIndex(); l != last {
		t.Errorf("LastIndex %d, want %d", l, last)
	}
}

// A log that agrees with the applied state loads untouched; the commit
// rises to the applied index in memory only.
func TestGroupLogLoadRaisesCommit(t *testing.T) {
	fs := simfs.New(0)
	l := openRaftlog(t, fs)
	seedLog(t, l, hardState(2, 1, 7))
	g, repair, err := loadGroupLog(l, 7, applied(9, 2))
	if err != nil || repair != "" {
		t.Fatalf("load: %q %v", repair, err)
	}
	hs, cs, _ := g.InitialState()
	if hs.GetCommit() != 9 || hs.GetTerm() != 2 || hs.GetVote() != 1 {
		t.Errorf("hard state %v, want term 2 vote 1 commit 9", hs)
	}
	if len(cs.GetVoters()) != 3 {
		t.Errorf("conf %v, want the applied state's", cs)
	}
	checkLog(t, g, 6, 10)
	if stored, _ := l.HardState(7); stored.GetCommit() != 7 {
		t.Errorf("stored commit %d: a load must not write when nothing needs repair", stored.GetCommit())
	}
	if ts, err := g.Truncated(); err != nil || ts != (storage.TruncatedState{Index: 5, Term: 1}) {
		t.Errorf("Truncated %v %v", ts, err)
	}
}

// The crash between a snapshot's synced Pebble batch and the log's Reset,
// in both its shapes, is repaired at load, synced, and the repair survives
// a power loss right after it.
func TestGroupLogRepairsInterruptedSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hs        *pb.HardState
		a, at     uint64
		wantTerm  uint64
		wantVote  uint64
		wantCommt uint64
	}{
		// The snapshot is past the log's end, in a newer term: the vote of
		// the older term is void.
		{"past the end", hardState(2, 3, 8), 20, 4, 4, 0, 20},
		// The same term: the vote stands.
		{"past the end, same term", hardState(4, 3, 8), 20, 4, 4, 3, 20},
		// The snapshot's index is in the log, but the log's entry there is
		// an uncommitted one of an older leader.
		{"beside an uncommitted tail", hardState(2, 2, 7), 9, 3, 3, 0, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := simfs.New(0)
			l := openRaftlog(t, fs)
			seedLog(t, l, tc.hs)
			g, repair, err := loadGroupLog(l, 7, applied(tc.a, tc.at))
			if err != nil || repair == "" {
				t.Fatalf("load: repair %q, err %v; want a repair", repair, err)
			}
			checkLog(t, g, tc.a+1, tc.a)
			if term, err := g.Term(tc.a); err != nil || term != tc.at {
				t.Errorf("Term(%d) = %d, %v; want %d", tc.a, term, err, tc.at)
			}
			hs, _, _ := g.InitialState()
			want := hardState(tc.wantTerm, tc.wantVote, tc.wantCommt)
			if !proto.Equal(hs, want) {
				t.Errorf("hard state %v, want %v", hs, want)
			}
			// Power loss right after the load: the repair was synced.
			crashed := fs.Crash(simfs.CrashOptions{})
			_ = l.Close()
			l2 := openRaftlog(t, crashed)
			defer l2.Close()
			g2, repair2, err := loadGroupLog(l2, 7, applied(tc.a, tc.at))
			if err != nil || repair2 != "" {
				t.Fatalf("reload after the crash: repair %q, err %v; want none", repair2, err)
			}
			checkLog(t, g2, tc.a+1, tc.a)
			if hs2, _, _ := g2.InitialState(); !proto.Equal(hs2, want) {
				t.Errorf("hard state after the crash %v, want %v", hs2, want)
			}
		})
	}
}

// Loads that cannot be repaired are refused with an error, never a raft
// panic or a silent rewrite of committed entries.
func TestGroupLogRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hs    *pb.HardState
		a, at uint64
		want  error
	}{
		{"compacted past the applied index", hardState(2, 1, 8), 3, 1, ErrBehindLog},
		{"committed entry with another term", hardState(2, 1, 9), 8, 5, storage.ErrCorrupt},
		{"commit past the log's end", hardState(2, 1, 12), 8, 2, storage.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openRaftlog(t, simfs.New(0))
			defer l.Close()
			seedLog(t, l, tc.hs)
			if _, _, err := loadGroupLog(l, 7, applied(tc.a, tc.at)); !errors.Is(err, tc.want) {
				t.Fatalf("load: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestGroupLogCompactBounds(t *testing.T) {
	l := openRaftlog(t, simfs.New(0))
	defer l.Close()
	seedLog(t, l, hardState(2, 1, 10))
	g, _, err := loadGroupLog(l, 7, applied(10, 2))
	if err != nil {
		t.Fatal(err)
	}
	b := l.NewBatch()
	if err := g.Compact(b, 4); err != nil || b.Len() != 0 {
		t.Errorf("compact below the first index: %v, %d ops; want nothing to do", err, b.Len())
	}
	if err := g.Compact(b, 11); err == nil {
		t.Error("compact beyond the last index accepted")
	}
	if err := g.Compact(b, 8); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	checkLog(t, g, 9, 10)
	if ts, _ := g.Truncated(); ts != (storage.TruncatedState{Index: 8, Term: 2}) {
		t.Errorf("Truncated %v, want {8 2}", ts)
	}
}

// A real RawNode runs on the storage: it campaigns, commits proposals
// persisted through raftlog batches, compacts, and after a reopen of the
// log restarts where it was.
func TestGroupLogDrivesRawNode(t *testing.T) {
	fs := simfs.New(0)
	l := openRaftlog(t, fs)
	commitBatch(t, l, func(b *raftlog.Batch) {
		b.Reset(1, 5, 1)
		b.SetHardState(1, hardState(1, 0, 5))
	})
	as := storage.AppliedState{Index: 5, Term: 1, Conf: &pb.ConfState{Voters: []uint64{1}}}
	g, _, err := loadGroupLog(l, 1, as)
	if err != nil {
		t.Fatal(err)
	}
	newNode := func(g *groupLog, applied uint64) *raft.RawNode {
		rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: g,
			Applied: applied, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: &raftLogger{slog.New(slog.NewTextHandler(io.Discard, nil))}})
		if err != nil {
			t.Fatal(err)
		}
		return rn
	}
	rn := newNode(g, as.Index)
	drain := func() {
		for rn.HasReady() {
			rd := rn.Ready()
			b := l.NewBatch()
			g.Append(b, rd.Entries)
			if !raft.IsEmptyHardState(rd.HardState) {
				g.SetHardState(b, rd.HardState)
			}
			if b.Len() > 0 {
				if err := l.Commit(b, true); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range rd.CommittedEntries {
				as.Index, as.Term = e.GetIndex(), e.GetTerm()
			}
			rn.Advance(rd)
		}
	}
	if err := rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	drain()
	for i := range 40 {
		if err := rn.Propose([]byte(fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
		drain()
		if i == 20 {
			b := l.NewBatch()
			if err := g.Compact(b, as.Index-3); err != nil {
				t.Fatal(err)
			}
			if err := l.Commit(b, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if as.Index != 5+1+40 { // the new leader's empty entry, then the proposals
		t.Fatalf("applied %d, want 46", as.Index)
	}
	crashed := fs.Crash(simfs.CrashOptions{})
	_ = l.Close()
	l = openRaftlog(t, crashed)
	defer l.Close()
	g, repair, err := loadGroupLog(l, 1, as)
	if err != nil || repair != "" {
		t.Fatalf("reload: %q %v", repair, err)
	}
	rn = newNode(g, as.Index)
	if st := rn.Status(); st.GetCommit() != 46 || st.GetTerm() != 2 {
		t.Fatalf("after the restart: commit %d term %d, want 46 and 2", st.GetCommit(), st.GetTerm())
	}
	if err := rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	drain()
	if err := rn.Propose([]byte("after")); err != nil {
		t.Fatal(err)
	}
	drain()
	if as.Index != 48 || as.Term != 3 {
		t.Fatalf("after the restart applied (%d, %d), want (48, 3)", as.Index, as.Term)
	}
}
