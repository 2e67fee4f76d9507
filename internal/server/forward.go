package server

import (
	"encoding/binary"
	"errors"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// Forwarded calls between nodes. A node that does not lead a partition
// sends the command to the node it believes does; the answer says what
// happened in terms the caller can act on.
const (
	methodWrite          = "w" // group, then per command: origin, seq, watermark, args
	methodRead           = "r" // group, then per command: args
	methodLeader         = "l" // group -> leader hint
	methodKnown          = "k" // node id -> 1 if it has announced itself before, 0 if not, 2 if this node cannot tell
	methodClusterMap     = "m" // -> the cluster map (JSON) from the local metadata replica
	methodGroupInfo      = "g" // group -> its membership (JSON), from its leader
	methodChangeReplicas = "c" // group, kind, node: one membership step, on the group's leader
	methodJoin           = "j" // api.NodeRecord JSON -> api.JoinJSON JSON
)

// Outcome codes of a forwarded call.
const (
	codeOK           byte = iota // payload: RESP reply
	codeNotLeader                // payload: uvarint leader node hint (0 unknown); nothing was done
	codeMaybeApplied             // proposed, leader changed or deadline passed: retry with same seq
	codeBusy                     // refused before proposing
	codeNoGroup                  // the node has no replica of the group
	codeStopped                  // the node is shutting down
	codeReadFailed               // a read could not be served (payload: text)
)

func encodeArgs(b []byte, args [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(args)))
	for _, a := range args {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) args() [][]byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	out := make([][]byte, n)
	for i := range out {
		l := d.uvarint()
		if d.bad || l > uint64(len(d.b)) {
			d.bad = true
			return nil
		}
		out[i], d.b = d.b[:l:l], d.b[l:]
	}
	return out
}

var (
	errMalformed = errors.New("malformed forwarded call")
)

func encodeWrites(group uint64, reqs []*raftstore.Request) []byte {
	b := binary.AppendUvarint(nil, group)
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, req := range reqs {
		b = binary.AppendUvarint(b, req.Origin)
		b = binary.AppendUvarint(b, req.Seq)
		b = binary.AppendUvarint(b, req.Watermark)
		b = binary.AppendUvarint(b, req.Batch)
		b = encodeArgs(b, req.Args)
	}
	return b
}

func decodeWrites(b []byte) (uint64, []*raftstore.Request, error) {
	d := decoder{b: b}
	group := d.uvarint()
	n := d.uvarint()
	if d.bad || n == 0 || n > uint64(len(d.b)) {
		return 0, nil, errMalformed
	}
	reqs := make([]*raftstore.Request, n)
	for i := range reqs {
		req := &raftstore.Request{Origin: d.uvarint(), Seq: d.uvarint(), Watermark: d.uvarint(), Batch: d.uvarint()}
		req.Args = d.args()
		if d.bad || len(req.Args) == 0 {
			return 0, nil, errMalformed
		}
		reqs[i] = req
	}
	if len(d.b) != 0 {
		return 0, nil, errMalformed
	}
	return group, reqs, nil
}

func encodeReads(group uint64, cmds [][][]byte) []byte {
	b := binary.AppendUvarint(nil, group)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, args := range cmds {
		b = encodeArgs(b, args)
	}
	return b
}

func decodeReads(b []byte) (uint64, [][][]byte, error) {
	d := decoder{b: b}
	group := d.uvarint()
	n := d.uvarint()
	if d.bad || n == 0 || n > uint64(len(d.b)) {
		return 0, nil, errMalformed
	}
	cmds := make([][][]byte, n)
	for i := range cmds {
		if cmds[i] = d.args(); d.bad || len(cmds[i]) == 0 {
			return 0, nil, errMalformed
		}
	}
	if len(d.b) != 0 {
		return 0, nil, errMalformed
	}
	return group, cmds, nil
}

func encodeOutcomes(os []outcome) []byte {
	b := binary.AppendUvarint(nil, uint64(len(os)))
	for _, o := range os {
		e := o.encode()
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

func decodeOutcomes(b []byte, want int) ([]outcome, error) {
	d := decoder{b: b}
	if n := d.uvarint(); d.bad || n != uint64(want) {
		return nil, errMalformed
	}
	out := make([]outcome, want)
	for i := range out {
		l := d.uvarint()
		if d.bad || l > uint64(len(d.b)) {
			return nil, errMalformed
		}
		o, err := decodeOutcome(d.b[:l])
		if err != nil {
			return nil, err
		}
		out[i], d.b = o, d.b[l:]
	}
	return out, nil
}

// outcome is the result of one attempt, local or forwarded.
type outcome struct {
	code  byte
	reply []byte // codeOK: the RESP reply; codeReadFailed: error text
	hint  uint64 // codeNotLeader: believed leader
}

func (o outcome) encode() []byte {
	b := []byte{o.code}
	switch o.code {
	case codeOK, codeReadFailed:
		b = append(b, o.reply...)
	case codeNotLeader:
		b = binary.AppendUvarint(b, o.hint)
	}
	return b
}

func decodeOutcome(b []byte) (outcome, error) {
	if len(b) == 0 {
		return outcome{}, errMalformed
	}
	o := outcome{code: b[0]}
	switch o.code {
	case codeOK, codeReadFailed:
		o.reply = b[1:]
	case codeNotLeader:
		d := decoder{b: b[1:]}
		o.hint = d.uvarint()
		if d.bad {
			return outcome{}, errMalformed
		}
	}
	return o, nil
}

// outcomeOf classifies an engine error.
func outcomeOf(reply []byte, err error) outcome {
	var nl *raftstore.NotLeaderError
	switch {
	case err == nil:
		return outcome{code: codeOK, reply: reply}
	case errors.As(err, &nl):
		return outcome{code: codeNotLeader, hint: nl.Leader}
	case errors.Is(err, raftstore.ErrNotLeader):
		return outcome{code: codeNotLeader}
	case errors.Is(err, raftstore.ErrLeaderChanged), errors.Is(err, raftstore.ErrUnknownOutcome), errors.Is(err, raftstore.ErrSuperseded):
		return outcome{code: codeMaybeApplied}
	case errors.Is(err, raftstore.ErrBusy):
		return outcome{code: codeBusy}
	case errors.Is(err, raftstore.ErrStopped):
		// The node stopped while the command may already have been handed
		// to raft: never claim it was not applied.
		return outcome{code: codeMaybeApplied}
	case errors.Is(err, raftstore.ErrNoGroup):
		return outcome{code: codeNoGroup}
	}
	return outcome{code: codeReadFailed, reply: []byte(err.Error())}
}
