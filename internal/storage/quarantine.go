package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/durable"
)

// Quarantine: a corrupt sstable whose keys all belong to a few replicas
// takes only those replicas out of service, instead of the whole node
// (corrupt.go is the fallback). What storage guarantees, for the node's
// quarantine driver (server/quarantine.go) and for every restart:
//
//   - Isolatable decides from the file's key bounds alone, without
//     reading it: only a file whose bounds stay within the replicated
//     state's families (user data, dedupe, transaction tables: read
//     through errors a replica can be taken out on) can be isolated. A
//     file reaching the node-local keys (identity, tombstones, cluster
//     map) or the raft logs and states is not, and the node fences itself
//     as before (corrupt.go).
//   - A quarantined replica is recorded in QuarantineFile (outside Pebble,
//     synced) with its group, its replica id and the file's bounds, before
//     anything of it is deleted. The record is what a restart trusts: it
//     finishes each entry (FinishQuarantine) before Open returns, so no
//     replica of a recorded group is ever loaded from the damaged data.
//   - Finishing an entry writes, in one synced batch, a tombstone at its
//     replica id and range deletions over the group's spans, then excises
//     the group's spans and the file's whole bounds (DB.Excise). The
//     tombstone keeps the damaged replica's id from ever being created
//     again here (a leader's message to it creates nothing), so the id
//     that acknowledged entries never votes again; the excise drops the
//     damaged file from the LSM without opening it (a file entirely inside
//     an excised span is removed as is), so no later read or compaction
//     meets its blocks. Both steps are idempotent.
//   - An entry is excised exactly once, before the group can host a new
//     replica: the record marks it Excised, and a new replica of the group
//     is created only after that (raftstore's quarantine holds creation
//     back until then). Excising later would delete the rebuilt copy.

// QuarantineFile is the name, in the data dir, of the record of the
// replicas taken out of service because of a corrupt file.
const QuarantineFile = "QUARANTINE"

// Quarantined is one replica taken out of service.
type Quarantined struct {
	Group uint64 `json:"group"`
	// Replica is the raft replica id the node held; 0 if it held none
	// (the file also held keys of a group not hosted here).
	Replica uint64 `json:"replica"`
	// File is the damaged file, Start and End its key bounds (inclusive).
	File  string `json:"file"`
	Start []byte `json:"start"`
	End   []byte `json:"end"`
	// FileOnly: the file held no replica hosted here (only keys left by
	// removed ones); Group means nothing, only the file is excised.
	FileOnly bool `json:"file_only,omitempty"`
	// Excised: the group's spans and the file's bounds are excised.
	Excised bool `json:"excised"`
	// IDUnknown: the damage was met while the node loaded its replicas,
	// and the file held the group's descriptor, which names the replica's
	// id; Replica is 0 until the group's leader tells it. Until then the
	// group hosts nothing here (the node holds it condemned, also across
	// restarts), since no tombstone keeps the old id from coming back.
	IDUnknown bool `json:"id_unknown,omitempty"`
}

type quarantineRecord struct {
	Entries []Quarantined `json:"entries"`
}

// ErrQuarantineUnreadable: the record exists but does not decode.
var ErrQuarantineUnreadable = errors.New("quarantine record unreadable")

// ReadQuarantine returns the recorded entries of dir; none if there is no
// record.
func ReadQuarantine(fs vfs.FS, dir string) ([]Quarantined, error) {
	if fs == nil {
		fs = vfs.Default
	}
	f, err := fs.Open(fs.PathJoin(dir, QuarantineFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	var rec quarantineRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrQuarantineUnreadable, fs.PathJoin(dir, QuarantineFile), err)
	}
	return rec.Entries, nil
}

// WriteQuarantine replaces dir's record with entries, synced.
func WriteQuarantine(fs vfs.FS, dir string, entries []Quarantined) error {
	if fs == nil {
		fs = vfs.Default
	}
	if len(entries) == 0 {
		// Nothing left: the record goes, as if none had been written.
		if err := fs.Remove(fs.PathJoin(dir, QuarantineFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return durable.SyncDir(fs, dir)
	}
	b, err := json.MarshalIndent(quarantineRecord{Entries: entries}, "", "  ")
	if err != nil {
		return err
	}
	return durable.ReplaceFile(fs, dir, QuarantineFile, append(b, '\n'))
}

// Isolatable reports whether every key c's file may hold belongs to the
// state of raft groups' replicas (applied states and descriptors, user
// data, dedupe and transaction tables), so that removing some groups'
// spans removes the whole file. Unknown bounds are not, nor bounds that
// reach the node-local keys (0x00: identity, tombstones, cluster map) or
// past the last per-group family. The raft prefix (0x01) qualifies since
// the raft logs left Pebble (package raftlog): what remains there is read
// only when a replica is loaded, never by raft itself, so a read of it
// that fails is an error a replica can be taken out on. A data dir not
// yet migrated still holds logs there, but it is migrated before any
// replica runs.
func Isolatable(c Corruption) bool {
	if len(c.Start) == 0 || len(c.End) == 0 {
		return false
	}
	return c.Start[0] >= prefixRaft && c.End[0] <= prefixSub
}

// GroupsTouching returns those of groups with a key span that intersects
// [start, end] (end inclusive): the replicas a file with these bounds may
// hold keys of.
func GroupsTouching(start, end []byte, groups []uint64) []uint64 {
	var out []uint64
	for _, g := range groups {
		for _, sp := range ReplicaSpans(g) {
			// [sp0, sp1) meets [start, end] iff sp0 <= end and start < sp1.
			if bytes.Compare(sp[0], end) <= 0 && bytes.Compare(start, sp[1]) < 0 {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// RaiseTombstone makes group's tombstone at least id, synced: no replica
// of group with an id at or below it is created here again.
func RaiseTombstone(db *pebble.DB, group, id uint64) error {
	b := db.NewBatch()
	defer b.Close()
	if err := raiseTombstone(db, b, group, id); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

func raiseTombstone(db *pebble.DB, b *pebble.Batch, group, id uint64) error {
	if v, ok, err := Get(db, TombstoneKey(group)); err != nil {
		return err
	} else if ok && len(v) == 8 {
		id = max(id, binary.BigEndian.Uint64(v))
	}
	return b.Set(TombstoneKey(group), binary.BigEndian.AppendUint64(nil, id), nil)
}

// exciseSpans is what quarantining entries removes: every span of their
// groups and the whole bounds of their files, merged into disjoint
// ranges.
func exciseSpans(entries []Quarantined) []pebble.KeyRange {
	var spans []pebble.KeyRange
	for _, q := range entries {
		for _, sp := range ReplicaSpans(q.Group) {
			if !q.FileOnly {
				spans = append(spans, pebble.KeyRange{Start: sp[0], End: sp[1]})
			}
		}
		if len(q.Start) > 0 && len(q.End) > 0 {
			// End is inclusive: the next key after it is End+0x00.
			spans = append(spans, pebble.KeyRange{Start: q.Start, End: append(slices.Clone(q.End), 0)})
		}
	}
	slices.SortFunc(spans, func(a, b pebble.KeyRange) int { return bytes.Compare(a.Start, b.Start) })
	var out []pebble.KeyRange
	for _, sp := range spans {
		if n := len(out); n > 0 && bytes.Compare(sp.Start, out[n-1].End) <= 0 {
			if bytes.Compare(sp.End, out[n-1].End) > 0 {
				out[n-1].End = sp.End
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// FinishQuarantine finishes every entry of dir's record that is not
// excised yet: tombstones and range deletions (one synced batch), then
// the excise, then the record marks them excised. It never reads the
// groups' data, so it works whatever the damaged file holds.
func FinishQuarantine(ctx context.Context, db *pebble.DB, fs vfs.FS, dir string) error {
	entries, err := ReadQuarantine(fs, dir)
	if err != nil {
		return err
	}
	var todo []Quarantined
	for _, q := range entries {
		if !q.Excised {
			todo = append(todo, q)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	b := db.NewBatch()
	defer b.Close()
	for _, q := range todo {
		if q.FileOnly {
			continue
		}
		for _, sp := range ReplicaSpans(q.Group) {
			if err := b.DeleteRange(sp[0], sp[1], nil); err != nil {
				return err
			}
		}
		if q.Replica == 0 {
			continue
		}
		if err := raiseTombstone(db, b, q.Group, q.Replica); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("quarantine: tombstones: %w", err)
	}
	for _, sp := range exciseSpans(todo) {
		if err := db.Excise(ctx, sp); err != nil {
			return fmt.Errorf("quarantine: excise [%x, %x): %w", sp.Start, sp.End, err)
		}
	}
	for i := range entries {
		entries[i].Excised = true
	}
	return WriteQuarantine(fs, dir, entries)
}
