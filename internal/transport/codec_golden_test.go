package transport

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// Frames cross nodes of different builds during a rolling upgrade, so
// their bytes are pinned: produced by the encoders as released, and a
// change here is a protocol change, not a test update. The raft messages
// inside are protobuf's encoding, pinned along with the framing because
// the whole frame is what an older node sends.
func TestEnvelopeEncodingGolden(t *testing.T) {
	hb := &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(7))}
	app := &pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(3)), Entries: []*pb.Entry{{Data: []byte(strings.Repeat("x", 130))}}}
	envs := []raftstore.Envelope{
		{Group: 0, Msg: hb},
		{Group: 300, Removed: true, Msg: app},
	}
	// from, count, then per envelope: group<<1|removed, message length, message
	want := "8a01" + "02" +
		"00" + "08" + "0808100218012007" +
		"d904" + "8c01" + "080310033a8501228201" + strings.Repeat("78", 130)
	b, err := encodeEnvelopes(138, envs)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("envelopes encoded\n%s\nwant\n%s", got, want)
	}
	from, got, err := decodeEnvelopes(b)
	if err != nil || from != 138 || len(got) != 2 {
		t.Fatalf("decoded from %d, %d envelopes, %v", from, len(got), err)
	}
	for i := range envs {
		if got[i].Group != envs[i].Group || got[i].Removed != envs[i].Removed || got[i].From != 138 || !proto.Equal(got[i].Msg, envs[i].Msg) {
			t.Fatalf("envelope %d decoded as %+v", i, got[i])
		}
	}
}

// A unary call is the method and the body as one pair; a snapshot chunk
// is a run of key-value pairs.
func TestPairEncodingGolden(t *testing.T) {
	b := appendPair(nil, []byte("w"), []byte{1, 2})
	b = appendPair(b, []byte{}, []byte(strings.Repeat("v", 200)))
	want := "0177" + "020102" + "00" + "c801" + strings.Repeat("76", 200)
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("pairs encoded\n%s\nwant\n%s", got, want)
	}
	if m, body, err := decodeCall(b[:5]); err != nil || m != "w" || hex.EncodeToString(body) != "0102" {
		t.Fatalf("call decoded as %q %x, %v", m, body, err)
	}
}

// A node that runs read leases says so once per frame, in a trailer after
// the envelopes (tag 1, its election timeout in nanoseconds). Older
// decoders stop after the envelopes, so they read such a frame as before;
// a tag this decoder does not know ends the trailer, and the envelopes
// stand.
func TestFrameTrailerGolden(t *testing.T) {
	hb := &pb.Message{Type: pb.MsgHeartbeatResp.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(7))}
	b, err := encodeEnvelopes(3, []raftstore.Envelope{{Group: 1, Msg: hb, Lease: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	want := "03" + "01" + "02" + "08" + "0809100218012007" + "01" + "80cab5ee01"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("frame encoded\n%s\nwant\n%s", got, want)
	}
	_, envs, err := decodeEnvelopes(b)
	if err != nil || len(envs) != 1 || envs[0].Lease != 500*time.Millisecond || !proto.Equal(envs[0].Msg, hb) {
		t.Fatalf("decoded %+v, %v", envs, err)
	}
	// The frame as a decoder that knows no trailer reads it: the
	// envelopes alone (what an older node sees).
	_, old, err := decodeEnvelopes(b[:len(b)-6])
	if err != nil || len(old) != 1 || old[0].Lease != 0 {
		t.Fatalf("without its trailer: %+v, %v", old, err)
	}
	// A tag this decoder does not know ends the trailer: nothing after it
	// is read, and the envelopes stand.
	for _, tail := range []string{"0205", "0205" + "01" + "80cab5ee01", "ff"} {
		x, _ := hex.DecodeString(tail)
		_, envs, err := decodeEnvelopes(append(b[:len(b)-6:len(b)-6], x...))
		if err != nil || len(envs) != 1 || envs[0].Lease != 0 {
			t.Fatalf("trailer %s: %+v, %v", tail, envs, err)
		}
	}
}
