package raftstore

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/storage"
)

func ents(term uint64, lo, hi uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, &pb.Entry{Index: new(i), Term: new(term), Data: []byte("x")})
	}
	return out
}

// TestCanApplyEarly: committed entries may be applied before the cycle's
// fsync only when the disk already holds them as committed. A follower
// with a deposed leader's uncommitted entries 11..15 (term 6) that
// receives conflicting entries 11..13 (term 7), already committed, must
// not apply them early: its disk still has the term-6 entries.
func TestCanApplyEarly(t *testing.T) {
	l, err := OpenLog(vfs.NewMem(), "data", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := createGroupLog(l, 1, 10, 5, &pb.HardState{Term: new(uint64(5)), Commit: new(uint64(10))}); err != nil {
		t.Fatal(err)
	}
	ls, _, err := loadGroupLog(l, 1, storage.AppliedState{Index: 10, Term: 5})
	if err != nil {
		t.Fatal(err)
	}
	b := l.NewBatch()
	ls.Append(b, ents(6, 11, 15))
	if err := l.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	r := &replica{log: ls}
	cases := []struct {
		name string
		rd   raft.Ready
		want bool
	}{
		{"committed, durable, nothing new", raft.Ready{CommittedEntries: ents(6, 11, 13)}, true},
		{"committed, durable, new entries after them", raft.Ready{CommittedEntries: ents(6, 11, 13), Entries: ents(6, 16, 17)}, true},
		{"conflicting entries overwrite what is committed", raft.Ready{CommittedEntries: ents(7, 11, 13), Entries: ents(7, 11, 13)}, false},
		{"committed beyond the durable log", raft.Ready{CommittedEntries: ents(6, 11, 16), Entries: ents(6, 16, 16)}, false},
		{"with a snapshot", raft.Ready{CommittedEntries: ents(6, 11, 12), Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(20)), Term: new(uint64(7))}}}, false},
		{"nothing committed", raft.Ready{Entries: ents(6, 16, 16)}, false},
	}
	for _, tc := range cases {
		if got := canApplyEarly(readyRep{r: r, rd: tc.rd}); got != tc.want {
			t.Errorf("%s: canApplyEarly = %v, want %v", tc.name, got, tc.want)
		}
	}
}
