package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func confState(voters, learners, outgoing, next []uint64, autoLeave bool) *pb.ConfState {
	cs := &pb.ConfState{Voters: voters, Learners: learners, VotersOutgoing: outgoing, LearnersNext: next}
	if autoLeave {
		cs.AutoLeave = new(true)
	}
	return cs
}

func TestAppliedStateRoundTrip(t *testing.T) {
	for _, a := range []AppliedState{
		{},
		{Index: 1, Term: 1, Keys: 0, Conf: nil},
		{Index: 10, Term: 3, Keys: 42, Conf: confState([]uint64{1, 2, 3}, nil, nil, nil, false)},
		{Index: math.MaxUint64, Term: math.MaxUint64, Keys: 5, KeysInexact: true, Conf: confState([]uint64{1, 2}, []uint64{4}, []uint64{1, 2, 3}, []uint64{3}, true)},
		{Index: 7, Term: 2, Keys: 0, KeysInexact: true, Conf: &pb.ConfState{}},
		{Index: 1 << 40, Term: 9, Keys: math.MaxInt64, Conf: confState([]uint64{math.MaxUint64}, nil, nil, nil, false)},
		{Index: 1 << 40, Term: 9, Keys: math.MaxInt64, KeysInexact: true},
	} {
		got, err := DecodeAppliedState(a.Encode())
		if err != nil {
			t.Fatalf("decode %+v: %v", a, err)
		}
		if got.Index != a.Index || got.Term != a.Term || got.Keys != a.Keys || got.KeysInexact != a.KeysInexact {
			t.Errorf("round trip of %+v = %+v", a, got)
		}
		if !proto.Equal(got.Conf, pb.EnsureConfState(a.Conf)) {
			t.Errorf("conf round trip: got %v, want %v", got.Conf, a.Conf)
		}
		if got.Conf == nil {
			t.Error("decoded Conf is nil; callers rely on a non-nil ConfState")
		}
	}
}

func TestAppliedStateDecodeCorrupt(t *testing.T) {
	good := (&AppliedState{Index: 5, Term: 2, Keys: 3, Conf: confState([]uint64{1, 2, 3}, []uint64{4}, nil, nil, true)}).Encode()
	for n := range 24 {
		if _, err := DecodeAppliedState(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d-byte prefix: err = %v, want ErrCorrupt", n, err)
		}
	}
	for _, tail := range [][]byte{{0xff}, {0x0a}, {0x08, 0x80}, {0x0a, 0x05, 0x01}} {
		b := append(slices.Clone(good[:24]), tail...)
		if _, err := DecodeAppliedState(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("conf bytes %x: err = %v, want ErrCorrupt", tail, err)
		}
	}
}

func TestDescriptorRoundTrip(t *testing.T) {
	for _, d := range []*Descriptor{
		{},
		{Group: 1, NextID: 2, Replicas: []Replica{{ID: 1, Node: 10}}},
		{Group: math.MaxUint64, NextID: math.MaxUint64, Replicas: []Replica{{1, 10}, {2, 20}, {5, 30}, {math.MaxUint64, math.MaxUint64}}},
	} {
		enc := d.Encode()
		got, err := DecodeDescriptor(enc)
		if err != nil {
			t.Fatalf("decode %+v: %v", d, err)
		}
		if got.Group != d.Group || got.NextID != d.NextID || !slices.Equal(got.Replicas, d.Replicas) {
			t.Errorf("round trip of %+v = %+v", d, got)
		}
		if !bytes.Equal(got.Encode(), enc) {
			t.Error("re-encoding differs")
		}
	}

	d := &Descriptor{Group: 3, NextID: 7, Replicas: []Replica{{1, 10}, {2, 20}, {6, 30}}}
	if d.NodeOf(2) != 20 || d.NodeOf(6) != 30 || d.NodeOf(3) != 0 {
		t.Error("NodeOf")
	}
	if d.ReplicaOn(10) != 1 || d.ReplicaOn(30) != 6 || d.ReplicaOn(99) != 0 {
		t.Error("ReplicaOn")
	}
	if !slices.Equal(d.Nodes(), []uint64{10, 20, 30}) {
		t.Errorf("Nodes = %v", d.Nodes())
	}
	c := d.Clone()
	c.Replicas[0].Node = 99
	c.Replicas = append(c.Replicas, Replica{7, 70})
	if d.Replicas[0].Node != 10 || len(d.Replicas) != 3 {
		t.Error("Clone shares replicas with the original")
	}
}

func descriptorBytes(group, next, count uint64, body []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, group)
	b = binary.BigEndian.AppendUint64(b, next)
	b = binary.BigEndian.AppendUint64(b, count)
	return append(b, body...)
}

func TestDescriptorDecodeCorrupt(t *testing.T) {
	good := (&Descriptor{Group: 1, NextID: 4, Replicas: []Replica{{1, 10}, {2, 20}, {3, 30}}}).Encode()
	for n := range len(good) {
		if _, err := DecodeDescriptor(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d-byte prefix: err = %v, want ErrCorrupt", n, err)
		}
	}
	for _, b := range [][]byte{
		append(slices.Clone(good), 0),                   // trailing byte
		append(slices.Clone(good), make([]byte, 16)...), // one replica more than counted
		descriptorBytes(1, 1, 1, nil),
		descriptorBytes(1, 1, 0, make([]byte, 16)),
		descriptorBytes(1, 1, math.MaxUint64, make([]byte, 16)),
	} {
		if _, err := DecodeDescriptor(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: err = %v, want ErrCorrupt", b, err)
		}
	}
}

func TestDescriptorCountOverflow(t *testing.T) {
	for _, b := range [][]byte{
		descriptorBytes(1, 1, 1<<60, nil),
		descriptorBytes(1, 1, 1<<60+1, make([]byte, 16)),
		descriptorBytes(1, 1, 3<<60+2, make([]byte, 32)),
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("DecodeDescriptor(%x) panicked: %v", b, r)
				}
			}()
			if _, err := DecodeDescriptor(b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeDescriptor(%x): err = %v, want ErrCorrupt", b, err)
			}
		}()
	}
}

func TestTruncatedStateRoundTrip(t *testing.T) {
	for _, ts := range []TruncatedState{{}, {1, 1}, {math.MaxUint64, 7}, {1 << 33, math.MaxUint64}} {
		got, err := decodeTruncated(ts.encode())
		if err != nil || got != ts {
			t.Errorf("round trip of %+v = %+v, %v", ts, got, err)
		}
	}
	for _, n := range []int{0, 1, 8, 15, 17, 32} {
		if _, err := decodeTruncated(make([]byte, n)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

func FuzzDecodeDescriptor(f *testing.F) {
	f.Add([]byte{})
	f.Add((&Descriptor{}).Encode())
	f.Add((&Descriptor{Group: 1, NextID: 3, Replicas: []Replica{{1, 10}, {2, 20}}}).Encode())
	f.Add(descriptorBytes(1, 1, 2, make([]byte, 16)))
	f.Add(descriptorBytes(1, 1, math.MaxUint64/8, make([]byte, 48)))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDescriptor(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// The encoding is canonical: whatever decodes re-encodes to itself.
		if !bytes.Equal(d.Encode(), b) {
			t.Fatalf("re-encoding %x gave %x", b, d.Encode())
		}
	})
}

func FuzzDecodeAppliedState(f *testing.F) {
	f.Add([]byte{})
	f.Add((&AppliedState{}).Encode())
	f.Add((&AppliedState{Index: 9, Term: 2, Keys: -4, Conf: confState([]uint64{1, 2, 3}, []uint64{4}, []uint64{1}, []uint64{5}, true)}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAppliedState(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Protobuf need not be canonical, but a decoded state must survive
		// its own round trip.
		again, err := DecodeAppliedState(a.Encode())
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if again.Index != a.Index || again.Term != a.Term || again.Keys != a.Keys || !proto.Equal(again.Conf, a.Conf) {
			t.Fatalf("round trip changed %+v into %+v", a, again)
		}
	})
}
