package transport

import (
	"bytes"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/raftstore"
)

func TestEnvelopesRoundTrip(t *testing.T) {
	envs := []raftstore.Envelope{
		{Group: 0, Msg: &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(7))}},
		{Group: 1 << 32, Msg: &pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(3)), From: new(uint64(1)),
			Entries: []*pb.Entry{{Index: new(uint64(11)), Term: new(uint64(7)), Data: bytes.Repeat([]byte("x"), 1000)}}}},
		{Group: 5, Removed: true, Msg: &pb.Message{To: new(uint64(4))}},
	}
	b, err := encodeEnvelopes(9, envs)
	if err != nil {
		t.Fatal(err)
	}
	from, got, err := decodeEnvelopes(b)
	if err != nil || from != 9 || len(got) != len(envs) {
		t.Fatalf("decode: from=%d n=%d err=%v", from, len(got), err)
	}
	for i := range envs {
		if got[i].Group != envs[i].Group || got[i].Removed != envs[i].Removed || got[i].From != 9 || !proto.Equal(got[i].Msg, envs[i].Msg) {
			t.Fatalf("envelope %d differs: %v vs %v", i, got[i], envs[i])
		}
	}
	// Every strict prefix is rejected, never misread.
	for n := 0; n < len(b); n++ {
		if _, _, err := decodeEnvelopes(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", n)
		}
	}
}

func TestPairsReader(t *testing.T) {
	var b []byte
	b = appendPair(b, []byte("k1"), []byte("v1"))
	b = appendPair(b, []byte{}, bytes.Repeat([]byte("v"), 300))
	r := reader{b: b}
	if k, v := r.bytes(), r.bytes(); string(k) != "k1" || string(v) != "v1" {
		t.Fatalf("pair 1: %q %q", k, v)
	}
	if k, v := r.bytes(), r.bytes(); len(k) != 0 || len(v) != 300 {
		t.Fatalf("pair 2: %d %d", len(k), len(v))
	}
	if !r.done() {
		t.Fatal("reader not done")
	}
	// A declared length beyond the data is an error, not a huge allocation.
	r = reader{b: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}}
	if r.bytes(); r.err == nil {
		t.Fatal("oversized length accepted")
	}
}

// FuzzDecodeEnvelopes: arbitrary frames from the network never panic.
func FuzzDecodeEnvelopes(f *testing.F) {
	b, _ := encodeEnvelopes(1, []raftstore.Envelope{{Group: 3, Msg: &pb.Message{Type: pb.MsgVote.Enum(), Term: new(uint64(2))}}})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, envs, err := decodeEnvelopes(b)
		if err == nil {
			for _, e := range envs {
				if e.Msg == nil {
					t.Fatal("nil message decoded")
				}
			}
		}
	})
}
