package raftstore

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"

	"github.com/kintsu/kintsu/internal/storage"
)

// The durability mark (storage/mark.go) records, outside Pebble, the hard
// state each replica had made durable, so that a start whose write-ahead
// log lost synced records (damaged, or cut short, in a way the log itself
// cannot tell from a torn tail) is refused.
//
// Invariants:
//   - The mark never claims more than was synced: the loop hands the
//     writer the hard states of a batch only after that batch committed
//     with Sync (which also made every earlier unsynced write durable:
//     the raft log's records are ordered), never of an unsynced one.
//   - The mark is written off the loop (markEvery), so the loop pays a map
//     update per changed group and a mutex, not an fsync.
//   - A replica is checked against its mark only if it is the same replica
//     (group and replica id): a replica destroyed and created again under
//     a new id starts a history of its own.
const markEvery = 200 * time.Millisecond

type durableMark struct {
	latest map[uint64]storage.MarkEntry // the loop's: last written, synced or not
	mu     sync.Mutex
	synced map[uint64]storage.MarkEntry // guarded by mu: made durable by a synced batch
	dirty  bool                         // guarded by mu
	done   chan struct{}                // closed when runMark returns; nil when off
}

// noteHardStates is called by persist after its batch committed: synced
// says whether the batch was synced.
func (e *Engine) noteHardStates(readies []readyRep, synced bool) {
	m := &e.mark
	if m.latest == nil {
		m.latest = map[uint64]storage.MarkEntry{}
	}
	for _, rr := range readies {
		if hs := rr.rd.HardState; !raft.IsEmptyHardState(hs) {
			m.latest[rr.r.group] = storage.MarkEntry{Group: rr.r.group, Replica: rr.r.id, Term: hs.GetTerm(), Vote: hs.GetVote(), Commit: hs.GetCommit()}
		}
	}
	if !synced || len(m.latest) == 0 {
		return
	}
	m.mu.Lock()
	if m.synced == nil {
		m.synced = map[uint64]storage.MarkEntry{}
	}
	for g, me := range m.latest {
		if m.synced[g] != me {
			m.synced[g] = me
			m.dirty = true
		}
	}
	m.mu.Unlock()
}

func (e *Engine) markFS() vfs.FS {
	if e.cfg.FS != nil {
		return e.cfg.FS
	}
	return vfs.Default
}

// writeMark writes the mark if it changed; replicas no longer hosted are
// left out.
func (e *Engine) writeMark() error {
	m := &e.mark
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	entries := make([]storage.MarkEntry, 0, len(m.synced))
	for _, me := range m.synced {
		if r := e.hosted(me.Group); r != nil && r.id == me.Replica {
			entries = append(entries, me)
		}
	}
	m.dirty = false
	m.mu.Unlock()
	slices.SortFunc(entries, func(a, b storage.MarkEntry) int { return cmp.Compare(a.Group, b.Group) })
	if err := storage.WriteMark(e.markFS(), e.cfg.DataDir, entries); err != nil {
		m.mu.Lock()
		m.dirty = true // try again next time
		m.mu.Unlock()
		return err
	}
	return nil
}

// runMark keeps the mark up to date until the loop exits, then writes it
// a last time (a clean stop leaves a complete mark).
func (e *Engine) runMark() {
	defer close(e.mark.done)
	t := time.NewTicker(markEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-e.done:
			if e.Err() == nil {
				_ = e.writeMark()
			}
			return
		case <-t.C:
		}
		if err := e.writeMark(); err != nil && !failing {
			failing = true
			e.cfg.Logger.Error("cannot write the durability mark in the data dir", "dir", e.cfg.DataDir, "err", err)
		} else if err == nil {
			failing = false
		}
	}
}

// checkLogsAgainstMark compares the raft log of every replica the mark
// knows with it, before any replica loads: a lost tail of the node's raft
// log shows in some groups and not others (the mark is written every
// markEvery), and a load-time repair of one group (grouplog.go) must not
// be written before another group proves the loss. Every group is
// checked again after it loads (CheckDurable).
func (e *Engine) checkLogsAgainstMark() error {
	if e.cfg.DataDir == "" {
		return nil
	}
	entries, ok, err := storage.ReadMark(e.markFS(), e.cfg.DataDir)
	if !ok || err != nil {
		return nil // CheckDurable reports an unreadable mark
	}
	var lost []string
	for _, me := range entries {
		b, ok, err := storage.Get(e.db, storage.DescriptorKey(me.Group))
		if err != nil {
			if e.damagedAtLoad(me.Group, err) {
				continue
			}
			return err
		}
		if !ok || !e.rlog.Has(me.Group) {
			continue // no replica, or one whose load refuses anyway
		}
		desc, err := storage.DecodeDescriptor(b)
		if err != nil || desc.ReplicaOn(e.cfg.NodeID) != me.Replica {
			continue // the load reports a bad descriptor; another replica id starts afresh
		}
		var applied uint64
		if b, ok, err := storage.Get(e.db, storage.AppliedKey(me.Group)); err != nil {
			if e.damagedAtLoad(me.Group, err) {
				continue
			}
			return err
		} else if ok {
			if as, err := storage.DecodeAppliedState(b); err == nil {
				applied = as.Index
			}
		}
		hs, err := e.rlog.HardState(me.Group)
		if err != nil {
			return err
		}
		last, err := e.rlog.LastIndex(me.Group)
		if err != nil {
			return err
		}
		hs, last = asFound(hs, last, applied)
		if why := me.Behind(hs.GetTerm(), hs.GetVote(), hs.GetCommit(), last); why != "" {
			lost = append(lost, fmt.Sprintf("partition %d: %s", me.Group, why))
		}
	}
	if len(lost) == 0 {
		return nil
	}
	return e.behindMark(lost)
}

// ErrBehindMark: the recovered raft state is behind what the node had
// synced.
var ErrBehindMark = errors.New("the raft state on disk is behind what this node had synced")

// CheckDurable compares every loaded replica with the durability mark.
// Call after the replicas are loaded and before Start.
func (e *Engine) CheckDurable() error {
	if e.cfg.DataDir == "" {
		return nil
	}
	entries, ok, err := storage.ReadMark(e.markFS(), e.cfg.DataDir)
	if !ok {
		return nil // a new data dir, or one from before the mark
	}
	if err != nil {
		e.cfg.Logger.Warn("the durability mark is unreadable: the start cannot check that no synced write was lost", "dir", e.cfg.DataDir, "err", err)
		return nil
	}
	var lost []string
	for _, me := range entries {
		r := e.byGroup[me.Group]
		if r == nil || r.id != me.Replica {
			continue
		}
		// The log as found, before a load-time repair could paper over a
		// lost tail (grouplog.go).
		hs, last := r.log.loaded.hs, r.log.loaded.last
		if why := me.Behind(hs.GetTerm(), hs.GetVote(), hs.GetCommit(), last); why != "" {
			lost = append(lost, fmt.Sprintf("partition %d: %s", me.Group, why))
		}
	}
	if len(lost) == 0 {
		return nil
	}
	return e.behindMark(lost)
}

// behindMark is the refusal of a start that lost synced raft state.
func (e *Engine) behindMark(lost []string) error {
	more := ""
	if len(lost) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(lost)-5)
		lost = lost[:5]
	}
	return fmt.Errorf("%w (%s%s): the write-ahead log lost records that had been synced (damaged or cut short). "+
		"Starting would forget votes and acknowledged entries, so the node will not start. Restore the data dir from a backup, "+
		"or rebuild the node from its peers: remove this id (kintsu ctl node remove ID), wipe %s, and start the machine as a "+
		"new member (kintsu server --join MEMBER --id NEW-ID ...)", ErrBehindMark, strings.Join(lost, "; "), more, e.cfg.DataDir)
}
