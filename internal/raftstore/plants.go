package raftstore

import (
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/storage"
)

// Planted bugs (Config.Unsafe*): each breaks one guarantee on purpose so
// that a test can show the checks that guard it fail. Never set outside
// tests and the simulator.

// onlyHardState reports whether rd asks for durability only for its hard
// state: no entries, no snapshot.
func onlyHardState(rd raft.Ready) bool {
	return len(rd.Entries) == 0 && raft.IsEmptySnap(rd.Snapshot) && !raft.IsEmptyHardState(rd.HardState)
}

// plantReapply moves applied back by up to n normal entries still in the
// log, so that they are applied a second time.
func plantReapply(ls *groupLog, applied *storage.AppliedState, n int) {
	first, _ := ls.FirstIndex()
	for ; n > 0 && applied.Index > first; n-- {
		ents, err := ls.Entries(applied.Index, applied.Index+1, 1<<30)
		if err != nil || len(ents) != 1 || ents[0].GetType() != pb.EntryNormal {
			return
		}
		term, err := ls.Term(applied.Index - 1)
		if err != nil {
			return
		}
		applied.Index, applied.Term = applied.Index-1, term
	}
}
