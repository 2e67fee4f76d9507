package raftstore

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/storage"
)

// migrateLegacyLogs moves the raft logs of a data dir written before they
// left Pebble (entries, hard states and truncated states under the raft
// prefix, storage.LogStore) into rlog, once.
//
// Order, so that a crash anywhere leaves a dir that migrates again to the
// same result: every group's log goes into rlog first (each group's
// records start with a drop, so a repeat replaces a partial copy), synced;
// then one synced Pebble batch deletes the legacy keys and writes
// storage.RaftLogOutKey. A dir with that key is never migrated again, and
// from then on a descriptor without its raft log refuses the start
// (loadReplica). A fresh dir gets the key at once.
func migrateLegacyLogs(db *pebble.DB, rlog *raftlog.Log, logger *slog.Logger) error {
	if _, ok, err := storage.Get(db, storage.RaftLogOutKey); err != nil || ok {
		return err
	}
	descs, err := storage.Descriptors(db)
	if err != nil {
		return err
	}
	for _, d := range descs {
		if err := migrateGroupLog(db, rlog, d.Group); err != nil {
			return fmt.Errorf("move the raft log of partition group %d out of Pebble: %w", d.Group, err)
		}
	}
	b := db.NewBatch()
	defer b.Close()
	for _, d := range descs {
		lo, hi := storage.LogSpan(d.Group, 0, ^uint64(0))
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
		for _, k := range [][]byte{storage.HardStateKey(d.Group), storage.TruncatedKey(d.Group)} {
			if err := b.Delete(k, nil); err != nil {
				return err
			}
		}
	}
	if err := b.Set(storage.RaftLogOutKey, nil, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("finish moving the raft logs out of Pebble: %w", err)
	}
	if len(descs) > 0 {
		logger.Info("moved the raft logs out of the state machine store into the raft log directory", "groups", len(descs))
	}
	return nil
}

// migrateGroupLog copies group's legacy log and hard state into rlog,
// synced. An empty replica (no legacy keys) gets an empty log.
func migrateGroupLog(db *pebble.DB, rlog *raftlog.Log, group uint64) error {
	ls, err := storage.LoadLogStore(db, group, nil, 0)
	if err != nil {
		return err
	}
	hs, _, err := ls.InitialState()
	if err != nil {
		return err
	}
	tr := ls.Truncated()
	last, err := ls.LastIndex()
	if err != nil {
		return err
	}
	b := rlog.NewBatch()
	b.Drop(group)
	b.Reset(group, tr.Index, tr.Term)
	for lo := tr.Index + 1; lo <= last; {
		ents, err := ls.Entries(lo, last+1, maxPersistRecord/4)
		if err != nil {
			return err
		}
		b.Append(group, ents)
		lo += uint64(len(ents))
		if b.Bytes() >= maxPersistRecord {
			if err := rlog.Commit(b, false); err != nil {
				return err
			}
			b = rlog.NewBatch()
		}
	}
	b.SetHardState(group, hs)
	return rlog.Commit(b, true)
}
