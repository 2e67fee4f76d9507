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

func TestCallFrame(t *testing.T) {
	body := bytes.Repeat([]byte("v"), 300)
	method, got, err := decodeCall(appendPair(nil, []byte("w"), body))
	if err != nil || method != "w" || !bytes.Equal(got, body) {
		t.Fatalf("decoded %q, %d bytes, %v", method, len(got), err)
	}
	for _, b := range [][]byte{
		nil,
		appendPair(nil, []byte("w"), nil)[:2], // no body
		append(appendPair(nil, []byte("w"), nil), 0), // trailing byte
		{1, 'w', 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'},  // body length beyond the frame
	} {
		if m, body, err := decodeCall(b); err != errBadFrame {
			t.Fatalf("%x decoded as %q %q, %v", b, m, body, err)
		}
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
