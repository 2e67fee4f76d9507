package failure

import (
	"bytes"
	"encoding/hex"
)

// A Signal is a state machine's answer that is not a client's reply: the
// command did not take effect, and why. Signals are carried like replies
// (through deduplication records and forwarded calls), so their bytes are
// a frozen wire format, the one earlier versions wrote: nodes of two
// versions exchange them during a rolling upgrade, and old records are
// read back by new nodes. Only this file writes or reads those bytes;
// everyone else goes through AppendSignal and SignalOf.
type Signal byte

const (
	// Locked: the command met transactions' locks; the body names the
	// holders (the txn package's encoding). Nothing was applied; the
	// proposer resolves them and retries.
	Locked Signal = iota + 1
	// Blocked: an earlier command of the same batch was refused in this
	// entry, so this one was not applied either.
	Blocked
	// WatchFailed: a key the transaction watched has changed.
	WatchFailed
	// BadOp: a malformed internal operation (a bug, answered alike by
	// every replica rather than stopping them).
	BadOp
	// Exists: a transaction's record or part already exists.
	Exists
	// Loading: a restore is loading the partition; client writes wait.
	// Its wire form is the reply a client sees, so a node of an earlier
	// version that forwards it unread still answers the client right.
	Loading
	// WrongGroup: a key of the command is no longer the partition's (a
	// split moved it); nothing was applied, and the router's map is stale.
	WrongGroup
)

// The wire forms. A kv command never answers an error starting with
// "KINTSU.", and LOADING only comes from the restore's refusal, so no
// client reply is mistaken for a signal.
const lockedPrefix = "-KINTSU.LOCKED "

var wire = [...]string{
	Blocked:     "-KINTSU.BLOCKED behind a refused command\r\n",
	WatchFailed: "-KINTSU.WATCH\r\n",
	BadOp:       "-KINTSU.BADOP\r\n",
	Exists:      "-KINTSU.EXISTS\r\n",
	Loading:     "-LOADING Kintsu is restoring a backup into this partition\r\n",
	WrongGroup:  "-KINTSU.WRONGGROUP\r\n",
}

// AppendSignal appends signal s, with body for Locked, to out.
func AppendSignal(out []byte, s Signal, body []byte) []byte {
	if s == Locked {
		out = append(out, lockedPrefix...)
		out = hex.AppendEncode(out, body)
		return append(out, "\r\n"...)
	}
	return append(out, wire[s]...)
}

// SignalOf reads a signal from a reply (with Locked's body); ok is false
// for any other reply.
func SignalOf(reply []byte) (s Signal, body []byte, ok bool) {
	if len(reply) < 2 || reply[0] != '-' || (reply[1] != 'K' && reply[1] != 'L') {
		return 0, nil, false // the common case, decided on two bytes
	}
	if bytes.HasPrefix(reply, []byte(lockedPrefix)) && bytes.HasSuffix(reply, []byte("\r\n")) {
		raw, err := hex.DecodeString(string(reply[len(lockedPrefix) : len(reply)-2]))
		if err != nil {
			return 0, nil, false
		}
		return Locked, raw, true
	}
	for i, w := range wire {
		if w != "" && string(reply) == w {
			return Signal(i), nil, true
		}
	}
	return 0, nil, false
}

// Is reports whether reply is signal s.
func (s Signal) Is(reply []byte) bool {
	got, _, ok := SignalOf(reply)
	return ok && got == s
}

// LoadingError: a restore is loading the partition; the write was not
// applied.
type LoadingError struct{}

func (*LoadingError) Error() string { return "a restore is loading the partition" }

// SignalError is a signal that reached a place that cannot act on it (a
// bug): the command may have been applied.
type SignalError struct{ Signal Signal }

func (e *SignalError) Error() string { return "internal: unexpected state machine signal" }

// WrongGroupError: the partition asked no longer owns a key of the
// request (a split moved it); nothing was applied.
type WrongGroupError struct{ Group uint64 }

func (e *WrongGroupError) Error() string { return "the key's partition was split or merged" }

// Err turns a signal a client's request ended with into its error:
// Loading is LoadingError, WrongGroup WrongGroupError (of no group);
// anything else is a SignalError.
func (s Signal) Err() error {
	switch s {
	case Loading:
		return &LoadingError{}
	case WrongGroup:
		return &WrongGroupError{}
	}
	return &SignalError{Signal: s}
}
