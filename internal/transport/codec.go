package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

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
	b := binary.AppendUvarint(nil, from)
	b = binary.AppendUvarint(b, uint64(len(envs)))
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
		b = binary.AppendUvarint(b, g)
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b, nil
}

func decodeEnvelopes(b []byte) (from uint64, envs []raftstore.Envelope, err error) {
	r := reader{b: b}
	from = r.uvarint()
	n := r.uvarint()
	if r.err != nil || n > uint64(len(b)) {
		return 0, nil, errBadFrame
	}
	envs = make([]raftstore.Envelope, 0, n)
	for i := uint64(0); i < n; i++ {
		g := r.uvarint()
		m := r.bytes()
		if r.err != nil {
			return 0, nil, r.err
		}
		msg := &pb.Message{}
		if err := proto.Unmarshal(m, msg); err != nil {
			return 0, nil, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		envs = append(envs, raftstore.Envelope{Group: g >> 1, Removed: g&1 == 1, Msg: msg, From: from})
	}
	return from, envs, nil
}

// encodePairs packs snapshot key-value pairs.
func appendPair(b, k, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// reader decodes length-prefixed fields, bounding every length by what
// is actually there.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadFrame
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	l := r.uvarint()
	if r.err != nil {
		return nil
	}
	if l > uint64(len(r.b)) {
		r.err = errBadFrame
		return nil
	}
	out := r.b[:l:l]
	r.b = r.b[l:]
	return out
}

func (r *reader) done() bool { return r.err == nil && len(r.b) == 0 }
