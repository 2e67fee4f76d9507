package route

import (
	"context"
	"errors"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// Forwarded calls between nodes. A node that does not lead a partition
// sends the command to the node it believes does; the answer says what
// happened in terms the caller can act on.
const (
	methodWrite = "w" // group, then per command: origin, seq, watermark, args
	methodRead  = "r" // group, then per command: args
	// MethodLeader asks a node which node leads a group (its answer is a
	// hint). Exported for the node's hint refresher.
	MethodLeader = "l" // group -> leader hint
)

// Serve answers the request path's peer calls: forwarded writes and reads
// and leader hints; ok is false for any other method.
func (r *Router) Serve(ctx context.Context, method string, body []byte) (answer []byte, ok bool, err error) {
	switch method {
	case methodWrite:
		group, reqs, err := decodeWrites(body)
		if err != nil {
			return nil, true, err
		}
		replies, errs := r.propose(ctx, group, reqs)
		outs := make([]outcome, len(reqs))
		for i := range outs {
			outs[i] = outcomeOf(replies[i], errs[i])
		}
		return encodeOutcomes(outs), true, nil
	case methodRead:
		group, cmds, err := decodeReads(body)
		if err != nil {
			return nil, true, err
		}
		return encodeOutcomes(r.serveReads(ctx, group, cmds, forwardCap)), true, nil
	case MethodLeader:
		d := codec.NewDecoder(body)
		group := d.Uvarint()
		if d.Err() != nil {
			return nil, true, errMalformed
		}
		return codec.Encoder(nil).Uvarint(r.eng.Leader(group)), true, nil
	}
	return nil, false, nil
}

// Outcome codes of a forwarded call.
const (
	codeOK           byte = iota // payload: RESP reply
	codeNotLeader                // payload: uvarint leader node hint (0 unknown); nothing was done
	codeMaybeApplied             // proposed, leader changed or deadline passed: retry with same seq
	codeBusy                     // refused before proposing
	codeNoGroup                  // the node has no replica of the group
	codeStopped                  // the node is shutting down
	codeReadFailed               // a read could not be served (payload: text)
	// 7 and 8 are codeNotRun and codeTooLarge (replies.go).
	codeNoSpace byte = 9 // the leader's disk is almost full, refused before proposing (payload: text)
	// codeStorageFailed: the serving replica's storage failed a read
	// (payload: text); not retried, unlike codeReadFailed.
	codeStorageFailed byte = 10
)

var (
	errMalformed = errors.New("malformed forwarded call")
)

func encodeWrites(group uint64, reqs []*raftstore.Request) []byte {
	e := codec.Encoder(nil).Uvarint(group).Uvarint(uint64(len(reqs)))
	for _, req := range reqs {
		e = e.Uvarint(req.Origin).Uvarint(req.Seq).Uvarint(req.Watermark).Uvarint(req.Batch).Args(req.Args)
	}
	return e
}

func decodeWrites(b []byte) (uint64, []*raftstore.Request, error) {
	d := codec.NewDecoder(b)
	group := d.Uvarint()
	n := d.Count()
	if d.Err() != nil || n == 0 {
		return 0, nil, errMalformed
	}
	reqs := make([]*raftstore.Request, n)
	for i := range reqs {
		req := &raftstore.Request{Origin: d.Uvarint(), Seq: d.Uvarint(), Watermark: d.Uvarint(), Batch: d.Uvarint()}
		req.Args = d.Args()
		if d.Err() != nil || len(req.Args) == 0 {
			return 0, nil, errMalformed
		}
		reqs[i] = req
	}
	if d.Done() != nil {
		return 0, nil, errMalformed
	}
	return group, reqs, nil
}

func encodeReads(group uint64, cmds [][][]byte) []byte {
	e := codec.Encoder(nil).Uvarint(group).Uvarint(uint64(len(cmds)))
	for _, args := range cmds {
		e = e.Args(args)
	}
	return e
}

func decodeReads(b []byte) (uint64, [][][]byte, error) {
	d := codec.NewDecoder(b)
	group := d.Uvarint()
	n := d.Count()
	if d.Err() != nil || n == 0 {
		return 0, nil, errMalformed
	}
	cmds := make([][][]byte, n)
	for i := range cmds {
		if cmds[i] = d.Args(); d.Err() != nil || len(cmds[i]) == 0 {
			return 0, nil, errMalformed
		}
	}
	if d.Done() != nil {
		return 0, nil, errMalformed
	}
	return group, cmds, nil
}

func encodeOutcomes(os []outcome) []byte {
	e := codec.Encoder(nil).Uvarint(uint64(len(os)))
	for _, o := range os {
		e = e.Bytes(o.encode())
	}
	return e
}

// decodeOutcomes reads the answer to a call of want commands. Bytes after
// the last outcome are ignored, as they always have been.
func decodeOutcomes(b []byte, want int) ([]outcome, error) {
	d := codec.NewDecoder(b)
	if n := d.Uvarint(); d.Err() != nil || n != uint64(want) {
		return nil, errMalformed
	}
	out := make([]outcome, want)
	for i := range out {
		o, err := decodeOutcome(d.Bytes())
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// outcome is the result of one attempt, local or forwarded.
type outcome struct {
	code  byte
	reply []byte // codeOK: the RESP reply; codeReadFailed: error text
	hint  uint64 // codeNotLeader: believed leader; codeTooLarge: the reply's size
}

func (o outcome) encode() []byte {
	e := codec.Encoder(nil).Byte(o.code)
	switch o.code {
	case codeOK, codeReadFailed, codeNoSpace, codeStorageFailed:
		e = e.Raw(o.reply)
	case codeNotLeader, codeTooLarge:
		e = e.Uvarint(o.hint)
	}
	return e
}

// decodeOutcome reads one outcome; a payload where none is expected, or
// after the leader hint, is ignored, as it always has been.
func decodeOutcome(b []byte) (outcome, error) {
	d := codec.NewDecoder(b)
	o := outcome{code: d.Byte()}
	switch o.code {
	case codeOK, codeReadFailed, codeNoSpace, codeStorageFailed:
		o.reply = d.Raw(d.Len())
	case codeNotLeader, codeTooLarge:
		o.hint = d.Uvarint()
	}
	if d.Err() != nil {
		return outcome{}, errMalformed
	}
	return o, nil
}

// outcomeOf classifies an engine error.
func outcomeOf(reply []byte, err error) outcome {
	var nl *raftstore.NotLeaderError
	var ns *raftstore.NoSpaceError
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
	case errors.As(err, &ns):
		return outcome{code: codeNoSpace, reply: []byte(ns.Error())}
	case errors.Is(err, raftstore.ErrStopped):
		// The node stopped while the command may already have been handed
		// to raft: never claim it was not applied.
		return outcome{code: codeMaybeApplied}
	case errors.Is(err, raftstore.ErrNoGroup):
		return outcome{code: codeNoGroup}
	}
	return outcome{code: codeReadFailed, reply: []byte(err.Error())}
}
