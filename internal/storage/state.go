package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt reports a stored record that cannot be decoded.
var ErrCorrupt = errors.New("storage: corrupt record")

// AppliedState is what a replica has applied. It is written in the same
// batch as the effects of the entries it covers.
type AppliedState struct {
	Index uint64 // Invariant: Index <= the group's committed index.
	Term  uint64 // term of the entry at Index (kept so snapshots can name it after truncation)
	Keys  int64  // number of user keys in the group, maintained on apply
	// KeysInexact: writes that did not read their key (SET, MSET) were
	// applied since Keys was last exact, each counted as a new key, so
	// Keys is an upper bound: it exceeds the truth by those that
	// overwrote a key.
	KeysInexact bool
	Conf        *pb.ConfState
}

// keysInexactBit marks KeysInexact in the stored key count, whose top bit
// a count leaves free (Invariant: Keys >= 0: exact writes count what they
// find, blind ones only add); records written before it existed read as
// exact, which they were.
const keysInexactBit = 1 << 63

// Encode returns the record's stored form.
func (a *AppliedState) Encode() []byte {
	conf, err := proto.Marshal(pb.EnsureConfState(a.Conf))
	if err != nil {
		panic(err) // a ConfState always marshals
	}
	b := make([]byte, 24, 24+len(conf))
	binary.BigEndian.PutUint64(b[0:], a.Index)
	binary.BigEndian.PutUint64(b[8:], a.Term)
	keys := uint64(a.Keys) &^ keysInexactBit
	if a.KeysInexact {
		keys |= keysInexactBit
	}
	binary.BigEndian.PutUint64(b[16:], keys)
	return append(b, conf...)
}

// DecodeAppliedState parses a stored AppliedState.
func DecodeAppliedState(b []byte) (AppliedState, error) {
	if len(b) < 24 {
		return AppliedState{}, fmt.Errorf("%w: applied state of %d bytes", ErrCorrupt, len(b))
	}
	a := AppliedState{
		Index:       binary.BigEndian.Uint64(b[0:]),
		Term:        binary.BigEndian.Uint64(b[8:]),
		Keys:        int64(binary.BigEndian.Uint64(b[16:]) &^ keysInexactBit),
		KeysInexact: binary.BigEndian.Uint64(b[16:])&keysInexactBit != 0,
		Conf:        &pb.ConfState{},
	}
	if err := proto.Unmarshal(b[24:], a.Conf); err != nil {
		return AppliedState{}, fmt.Errorf("%w: conf state: %v", ErrCorrupt, err)
	}
	return a, nil
}

// Replica names one member of a group: raft replica id on a node.
type Replica struct {
	ID   uint64 // raft replica id, unique within the group, never reused
	Node uint64
}

// Descriptor is a group's membership as the engine needs it to route raft
// messages: which node hosts each replica id.
type Descriptor struct {
	Group    uint64
	Replicas []Replica
	NextID   uint64 // next replica id to allocate; Invariant: > every id ever used
}

// NodeOf returns the node hosting replica id, or 0.
func (d *Descriptor) NodeOf(id uint64) uint64 {
	for _, r := range d.Replicas {
		if r.ID == id {
			return r.Node
		}
	}
	return 0
}

// ReplicaOn returns the replica id hosted on node, or 0.
func (d *Descriptor) ReplicaOn(node uint64) uint64 {
	for _, r := range d.Replicas {
		if r.Node == node {
			return r.ID
		}
	}
	return 0
}

// Nodes returns the node ids of the replicas in descriptor order.
func (d *Descriptor) Nodes() []uint64 {
	out := make([]uint64, len(d.Replicas))
	for i, r := range d.Replicas {
		out[i] = r.Node
	}
	return out
}

// Clone returns a deep copy.
func (d *Descriptor) Clone() *Descriptor {
	c := *d
	c.Replicas = slices.Clone(d.Replicas)
	return &c
}

// Encode returns the descriptor's stored form.
func (d *Descriptor) Encode() []byte {
	b := make([]byte, 0, 24+16*len(d.Replicas))
	b = binary.BigEndian.AppendUint64(b, d.Group)
	b = binary.BigEndian.AppendUint64(b, d.NextID)
	b = binary.BigEndian.AppendUint64(b, uint64(len(d.Replicas)))
	for _, r := range d.Replicas {
		b = binary.BigEndian.AppendUint64(b, r.ID)
		b = binary.BigEndian.AppendUint64(b, r.Node)
	}
	return b
}

// DecodeDescriptor parses a stored Descriptor.
func DecodeDescriptor(b []byte) (*Descriptor, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("%w: descriptor of %d bytes", ErrCorrupt, len(b))
	}
	d := &Descriptor{Group: binary.BigEndian.Uint64(b), NextID: binary.BigEndian.Uint64(b[8:])}
	n := binary.BigEndian.Uint64(b[16:])
	b = b[24:]
	// Divide rather than multiply: 16*n wraps for a corrupt huge n.
	if body := uint64(len(b)); body%16 != 0 || body/16 != n {
		return nil, fmt.Errorf("%w: descriptor with %d replicas in %d bytes", ErrCorrupt, n, len(b))
	}
	for i := uint64(0); i < n; i++ {
		d.Replicas = append(d.Replicas, Replica{ID: binary.BigEndian.Uint64(b), Node: binary.BigEndian.Uint64(b[8:])})
		b = b[16:]
	}
	return d, nil
}

// TruncatedState names the last entry removed from a group's log.
type TruncatedState struct{ Index, Term uint64 }

func (t TruncatedState) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, t.Index)
	return binary.BigEndian.AppendUint64(b, t.Term)
}

func decodeTruncated(b []byte) (TruncatedState, error) {
	if len(b) != 16 {
		return TruncatedState{}, fmt.Errorf("%w: truncated state of %d bytes", ErrCorrupt, len(b))
	}
	return TruncatedState{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, nil
}

// Descriptors returns the descriptor of every group with replica state in
// db, by group.
func Descriptors(db *pebble.DB) ([]*Descriptor, error) {
	return descriptorsIn(db, []byte{prefixRaft}, []byte{prefixRaft + 1}, nil)
}

// DescriptorsOutside is Descriptors for a db holding damaged files: it
// reads around each of damaged (a file's key bounds, both inclusive), so
// that no read opens those files; descriptors inside them are not
// returned. A Pebble iterator only opens files whose bounds meet its own.
func DescriptorsOutside(db *pebble.DB, damaged [][2][]byte) ([]*Descriptor, error) {
	spans := slices.Clone(damaged)
	slices.SortFunc(spans, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	var out []*Descriptor
	lo, end := []byte{prefixRaft}, []byte{prefixRaft + 1}
	for _, sp := range spans {
		if bytes.Compare(lo, sp[0]) < 0 {
			var err error
			if out, err = descriptorsIn(db, lo, minBytes(sp[0], end), out); err != nil {
				return nil, err
			}
		}
		// The next key after the inclusive bound sp[1] is sp[1]+0x00.
		if next := append(slices.Clone(sp[1]), 0); bytes.Compare(next, lo) > 0 {
			lo = next
		}
	}
	if bytes.Compare(lo, end) < 0 {
		return descriptorsIn(db, lo, end, out)
	}
	return out, nil
}

func minBytes(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

// descriptorsIn appends to out the descriptors whose keys lie in [lo, hi).
func descriptorsIn(db *pebble.DB, lo, hi []byte, out []*Descriptor) ([]*Descriptor, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 9 {
			return nil, fmt.Errorf("%w: raft key %x", ErrCorrupt, k)
		}
		group := binary.BigEndian.Uint64(k[1:9])
		if it.SeekGE(DescriptorKey(group)) && bytes.Equal(it.Key(), DescriptorKey(group)) {
			d, err := DecodeDescriptor(it.Value())
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		if group == ^uint64(0) {
			break
		}
		ok = it.SeekGE(groupPrefix(prefixRaft, group+1))
	}
	return out, it.Error()
}
