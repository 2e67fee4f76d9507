package transport

import (
	"errors"
	"fmt"
	"math"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// frame is the only message type on the wire; the codec passes it through.
type frame struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Name() string { return "kintsu-raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("transport: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("transport: cannot unmarshal into %T", v)
	}
	f.b = append(f.b[:0], data...)
	return nil
}

var errBadFrame = errors.New("transport: malformed frame")

// Tags of a frame's trailer: fields after the envelopes, as (tag, value)
// uvarints. A decoder stops at the first tag it does not know, and
// decoders older than the trailer never read past the envelopes, so
// fields can be added without breaking nodes of other versions.
const (
	trailerLease = 1 // raftstore.Envelope.Lease, in nanoseconds
)

// encodeEnvelopes packs raft messages for one peer into a frame. Every
// envelope of a frame comes from one engine; the first's Lease is the
// frame's (the trailer is left out when it is 0, so such frames are the
// bytes older versions sent).
func encodeEnvelopes(from uint64, envs []raftstore.Envelope) ([]byte, error) {
	e := codec.Encoder(nil).Uvarint(from).Uvarint(uint64(len(envs)))
	for _, env := range envs {
		m, err := proto.Marshal(env.Msg)
		if err != nil {
			return nil, err
		}
		// The group's low bit carries the Removed flag.
		g := env.Group << 1
		if env.Removed {
			g |= 1
		}
		e = e.Uvarint(g).Bytes(m)
	}
	if len(envs) > 0 && envs[0].Lease > 0 {
		e = e.Uvarint(trailerLease).Uvarint(uint64(envs[0].Lease))
	}
	return e, nil
}

func decodeEnvelopes(b []byte) (from uint64, envs []raftstore.Envelope, err error) {
	d := codec.NewDecoder(b)
	from = d.Uvarint()
	n := d.Count()
	if d.Err() != nil {
		return 0, nil, errBadFrame
	}
	envs = make([]raftstore.Envelope, 0, n)
	for range n {
		g := d.Uvarint()
		m := d.Bytes()
		if d.Err() != nil {
			return 0, nil, errBadFrame
		}
		msg := &pb.Message{}
		if err := proto.Unmarshal(m, msg); err != nil {
			return 0, nil, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		envs = append(envs, raftstore.Envelope{Group: g >> 1, Removed: g&1 == 1, Msg: msg, From: from})
	}
	for d.Len() > 0 {
		tag, v := d.Uvarint(), d.Uvarint()
		if d.Err() != nil || tag != trailerLease {
			break // a field of a newer version, or a broken trailer: the envelopes stand
		}
		if v <= math.MaxInt64 {
			for i := range envs {
				envs[i].Lease = time.Duration(v)
			}
		}
	}
	return from, envs, nil
}

// appendPair packs a key-value pair of a snapshot chunk, or a unary
// call's method and body.
func appendPair(b, k, v []byte) []byte { return codec.Encoder(b).Bytes(k).Bytes(v) }

// decodeCall splits a unary call's frame into its method and body.
func decodeCall(b []byte) (method string, body []byte, err error) {
	d := codec.NewDecoder(b)
	m, body := d.Bytes(), d.Bytes()
	if d.Done() != nil {
		return "", nil, errBadFrame
	}
	return string(m), body, nil
}
