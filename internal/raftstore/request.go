package raftstore

import (
	"encoding/binary"
	"errors"
)

// Request is one client command as carried in the raft log.
type Request struct {
	// Origin identifies the process that accepted the command from a client
	// (a node incarnation); 0 means no deduplication.
	Origin uint64
	// Seq is unique per origin; a retry reuses it.
	Seq uint64
	// Watermark: every seq of this origin below it has been answered, so
	// its dedupe records may be dropped and late copies refused.
	Watermark uint64
	// Batch groups requests proposed together, in order (one client
	// pipeline's commands for a partition): 0 means none, else the same
	// value on every request of the batch. A batch never spans entries, and
	// once one of its requests is refused the rest of it is not applied.
	Batch uint64
	Args  [][]byte
}

// Size approximates the encoded size.
func (r *Request) Size() int {
	n := 50
	for _, a := range r.Args {
		n += len(a) + 5
	}
	return n
}

// Entry payload versions: 3 added the leader's time, 2 added Batch; 1
// and 2 are still read (their time is 0).
const (
	entryVersion   = 3
	entryVersionV2 = 2
	entryVersionV1 = 1
)

var errBadEntry = errors.New("raftstore: malformed entry")

// encodeRequests packs requests into one entry payload, stamped with the
// proposing leader's wall-clock time in Unix milliseconds: every replica
// applies the entry at that time (key expiry), whatever its own clock.
func encodeRequests(reqs []*Request, nowMS int64) []byte {
	size := 1 + 2*binary.MaxVarintLen64
	for _, r := range reqs {
		size += r.Size()
	}
	b := make([]byte, 0, size)
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, uint64(max(nowMS, 0)))
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = binary.AppendUvarint(b, r.Origin)
		b = binary.AppendUvarint(b, r.Seq)
		b = binary.AppendUvarint(b, r.Watermark)
		b = binary.AppendUvarint(b, r.Batch)
		b = binary.AppendUvarint(b, uint64(len(r.Args)))
		for _, a := range r.Args {
			b = binary.AppendUvarint(b, uint64(len(a)))
			b = append(b, a...)
		}
	}
	return b
}

// decodeRequests unpacks an entry payload and its time (Unix ms, 0 for
// entries written before times were stamped). Args alias b.
func decodeRequests(b []byte) ([]Request, int64, error) {
	if len(b) == 0 || b[0] != entryVersion && b[0] != entryVersionV2 && b[0] != entryVersionV1 {
		return nil, 0, errBadEntry
	}
	version := b[0]
	v2 := version >= entryVersionV2
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	var nowMS int64
	if version >= entryVersion {
		t, ok := next()
		if !ok || t > 1<<62 {
			return nil, 0, errBadEntry
		}
		nowMS = int64(t)
	}
	count, ok := next()
	if !ok || count > uint64(len(b)) {
		return nil, 0, errBadEntry
	}
	out := make([]Request, 0, count)
	for i := uint64(0); i < count; i++ {
		var r Request
		var nargs uint64
		if r.Origin, ok = next(); !ok {
			return nil, 0, errBadEntry
		}
		if r.Seq, ok = next(); !ok {
			return nil, 0, errBadEntry
		}
		if r.Watermark, ok = next(); !ok {
			return nil, 0, errBadEntry
		}
		if v2 {
			if r.Batch, ok = next(); !ok {
				return nil, 0, errBadEntry
			}
		}
		if nargs, ok = next(); !ok || nargs > uint64(len(b)) {
			return nil, 0, errBadEntry
		}
		r.Args = make([][]byte, nargs)
		for j := range r.Args {
			l, ok := next()
			if !ok || l > uint64(len(b)) {
				return nil, 0, errBadEntry
			}
			r.Args[j], b = b[:l:l], b[l:]
		}
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, 0, errBadEntry
	}
	return out, nowMS, nil
}
