package raftstore

import (
	"encoding/binary"
	"errors"

	"github.com/kintsu/kintsu/internal/codec"
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
	e := codec.Encoder(make([]byte, 0, size)).Byte(entryVersion).Uvarint(uint64(max(nowMS, 0))).Uvarint(uint64(len(reqs)))
	for _, r := range reqs {
		e = e.Uvarint(r.Origin).Uvarint(r.Seq).Uvarint(r.Watermark).Uvarint(r.Batch).Args(r.Args)
	}
	return e
}

// decodeRequests unpacks an entry payload and its time (Unix ms, 0 for
// entries written before times were stamped). Args alias b.
func decodeRequests(b []byte) ([]Request, int64, error) {
	d := codec.NewDecoder(b)
	version := d.Byte()
	if d.Err() != nil || version != entryVersion && version != entryVersionV2 && version != entryVersionV1 {
		return nil, 0, errBadEntry
	}
	var nowMS int64
	if version >= entryVersion {
		t := d.Uvarint()
		if t > 1<<62 {
			d.Fail()
		}
		nowMS = int64(t)
	}
	out := make([]Request, d.Count())
	for i := 0; i < len(out) && d.Err() == nil; i++ {
		r := &out[i]
		r.Origin, r.Seq, r.Watermark = d.Uvarint(), d.Uvarint(), d.Uvarint()
		if version >= entryVersionV2 {
			r.Batch = d.Uvarint()
		}
		r.Args = d.Args()
	}
	if d.Done() != nil {
		return nil, 0, errBadEntry
	}
	return out, nowMS, nil
}
