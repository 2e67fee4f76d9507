package storage

import "encoding/binary"

// Key-space prefixes. Keeping each kind of record under a per-group prefix
// makes a replica's whole state a handful of contiguous ranges.
const (
	prefixLocal  byte = 0x00
	prefixRaft   byte = 0x01
	prefixData   byte = 0x02
	prefixDedupe byte = 0x03
	prefixTxn    byte = 0x04 // transaction tables: locks, participant states, records
	prefixSub    byte = 0x05 // collections' sub-keys (fields, members, elements)
)

// Transaction tables under prefixTxn/<group>/<table>/...
const (
	TxnLocks   byte = 'l' // user key -> lock holders
	TxnParts   byte = 'p' // txn id -> this partition's part of a prepared transaction
	TxnRecords byte = 'r' // txn id -> transaction record (in the record partition)
	// CutMarks is not a transaction table: it holds the consistent cuts
	// (backups) whose hold is open, cut id -> lease (see raftstore/cut.go).
	CutMarks byte = 'c'
	// RestoreMark (one key, empty within the table) names the backup a
	// restore is loading into the partition.
	RestoreMark byte = 'x'
	// SlotRange (one key, empty within the table) holds the partition's
	// slot range once a split has set it: first and last slot, 2 bytes
	// each. Before any split a partition has none and owns the range it
	// was created with (raftstore/split.go).
	SlotRange byte = 'g'
)

const (
	raftLog        byte = 'l'
	raftHardState  byte = 'h'
	raftTruncated  byte = 't'
	raftApplied    byte = 'a'
	raftDescriptor byte = 'd'
)

// TombstoneKey holds the highest replica id of group destroyed on this
// node (see raftstore's membership invariants). It is node-local and
// outlives the replica.
func TombstoneKey(group uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLocal, 't'}, group)
}

// IdentKey holds the node's identity record.
var IdentKey = []byte{prefixLocal, 'i', 'd', 'e', 'n', 't'}

// RaftLogOutKey says the raft logs live in the node's raft log directory
// (package raftlog), not under the raft prefix here: data dirs written
// before that move lack it, and are migrated once (raftstore/migrate.go).
var RaftLogOutKey = []byte{prefixLocal, 'r', 'l', 'o', 'g'}

// ClusterMapKey holds the node's last view of the cluster's membership, so
// a restart need not rely on the initial members still being there.
var ClusterMapKey = []byte{prefixLocal, 'c', 'm', 'a', 'p'}

func groupPrefix(prefix byte, group uint64) []byte {
	k := make([]byte, 9, 32)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], group)
	return k
}

// groupEnd is the exclusive end of group's range under prefix; the last
// group id's range ends where the next prefix begins.
func groupEnd(prefix byte, group uint64) []byte {
	if group == ^uint64(0) {
		return []byte{prefix + 1}
	}
	return groupPrefix(prefix, group+1)
}

func raftKey(group uint64, kind byte) []byte {
	return append(groupPrefix(prefixRaft, group), kind)
}

// LogKey is the key of raft log entry index of group.
func LogKey(group, index uint64) []byte {
	k := raftKey(group, raftLog)
	return binary.BigEndian.AppendUint64(k, index)
}

// HardStateKey is the key of group's raft HardState.
func HardStateKey(group uint64) []byte { return raftKey(group, raftHardState) }

// TruncatedKey is the key of group's truncated state.
func TruncatedKey(group uint64) []byte { return raftKey(group, raftTruncated) }

// AppliedKey is the key of group's applied state.
func AppliedKey(group uint64) []byte { return raftKey(group, raftApplied) }

// DescriptorKey is the key of group's replica descriptor.
func DescriptorKey(group uint64) []byte { return raftKey(group, raftDescriptor) }

// DataKey is the storage key of user key k in group.
func DataKey(group uint64, k []byte) []byte {
	return append(groupPrefix(prefixData, group), k...)
}

// DataSpan returns the [start, end) range of group's user data.
func DataSpan(group uint64) (start, end []byte) {
	return groupPrefix(prefixData, group), groupEnd(prefixData, group)
}

// GroupOf is the group of a key under a per-group prefix (data, dedupe,
// transaction tables, sub-keys).
func GroupOf(k []byte) uint64 { return binary.BigEndian.Uint64(k[1:9]) }

// Regroup is k, a key under a per-group prefix, moved to group.
func Regroup(k []byte, group uint64) []byte {
	out := append([]byte(nil), k...)
	binary.BigEndian.PutUint64(out[1:9], group)
	return out
}

// SubUserKey is the user key of a collection's sub-key (see SubPrefix),
// false if sub is too short to hold one.
func SubUserKey(sub []byte) ([]byte, bool) {
	if len(sub) < 13 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(sub[9:13]))
	if n > len(sub)-13 {
		return nil, false
	}
	return sub[13 : 13+n], true
}

// UserKey strips the group prefix from a data key.
func UserKey(dataKey []byte) []byte { return dataKey[9:] }

// DedupeKey is the key of the stored reply for (origin, seq) in group.
func DedupeKey(group, origin, seq uint64) []byte {
	k := groupPrefix(prefixDedupe, group)
	k = binary.BigEndian.AppendUint64(k, origin)
	return binary.BigEndian.AppendUint64(k, seq)
}

// DedupeSpan returns the [start, end) range of group's dedupe table.
func DedupeSpan(group uint64) (start, end []byte) {
	return groupPrefix(prefixDedupe, group), groupEnd(prefixDedupe, group)
}

// TxnKey is the key of k in one of group's transaction tables.
func TxnKey(group uint64, table byte, k []byte) []byte {
	return append(append(groupPrefix(prefixTxn, group), table), k...)
}

// TxnSpan returns the [start, end) range of one of group's transaction
// tables.
func TxnSpan(group uint64, table byte) (start, end []byte) {
	return append(groupPrefix(prefixTxn, group), table), append(groupPrefix(prefixTxn, group), table+1)
}

// SubPrefix is the common prefix of the sub-keys of the collection stored
// at user key k with version ver in group: the prefix, the group, k's
// length (4 bytes), k and the version. A collection's sub-keys are the
// range [SubPrefix, PrefixEnd(SubPrefix)); the sub-keys of every version
// of k sort together, by version.
func SubPrefix(group uint64, k []byte, ver uint64) []byte {
	p := SubKeyPrefix(group, k)
	return binary.BigEndian.AppendUint64(p, ver)
}

// SubKeyPrefix is the prefix shared by the sub-keys of every version of
// the collections stored at user key k in group.
func SubKeyPrefix(group uint64, k []byte) []byte {
	p := make([]byte, 0, 9+4+len(k)+8+16)
	p = append(p, groupPrefix(prefixSub, group)...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(k)))
	return append(p, k...)
}

// SubSpan returns the [start, end) range of group's sub-keys.
func SubSpan(group uint64) (start, end []byte) {
	return groupPrefix(prefixSub, group), groupEnd(prefixSub, group)
}

// PrefixEnd is the smallest key greater than every key starting with p,
// or nil if there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ReplicatedSpans lists the ranges of group's replicated state machine
// (what a snapshot carries): user data first, then the dedupe table, the
// transaction tables and the collections' sub-keys.
func ReplicatedSpans(group uint64) [][2][]byte {
	ds, de := DataSpan(group)
	qs, qe := DedupeSpan(group)
	ss, se := SubSpan(group)
	return [][2][]byte{
		{ds, de},
		{qs, qe},
		{groupPrefix(prefixTxn, group), groupEnd(prefixTxn, group)},
		{ss, se},
	}
}

// LogSpan returns the [start, end) range of group's log entries with
// index in [lo, hi).
func LogSpan(group, lo, hi uint64) (start, end []byte) {
	return LogKey(group, lo), LogKey(group, hi)
}

// ReplicaSpans lists every range that holds replica state of group, for
// snapshot installation and replica removal.
func ReplicaSpans(group uint64) [][2][]byte {
	return append([][2][]byte{{groupPrefix(prefixRaft, group), groupEnd(prefixRaft, group)}}, ReplicatedSpans(group)...)
}
