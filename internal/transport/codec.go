package transport

import (
	"errors"
	"fmt"

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

// encodeEnvelopes packs raft messages for one peer into a frame.
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
