package failure

// A Signal is a state machine's answer that is not a client's reply: the
// command did not take effect, and why. It is carried like any reply
// (through deduplication records and forwarded calls), but it starts with
// a byte no RESP reply starts with ('+', '-', ':', '$', '*'), so a reply
// is never mistaken for a signal, whatever its text.
type Signal byte

const (
	// Locked: the command met transactions' locks; the body names the
	// holders (the txn package's encoding). Nothing was applied; the
	// proposer resolves them and retries.
	Locked Signal = 0x01
	// Blocked: an earlier command of the same batch was refused in this
	// entry, so this one was not applied either.
	Blocked Signal = 0x02
	// WatchFailed: a key the transaction watched has changed.
	WatchFailed Signal = 0x03
	// BadOp: a malformed internal operation (a bug, answered alike by
	// every replica rather than stopping them).
	BadOp Signal = 0x04
	// Exists: a transaction's record or part already exists.
	Exists Signal = 0x05
	// Loading: a restore is loading the partition; client writes wait.
	Loading Signal = 0x06
)

// AppendSignal appends signal s with body to out.
func AppendSignal(out []byte, s Signal, body []byte) []byte {
	return append(append(out, byte(s)), body...)
}

// SignalOf reads a signal from a reply; ok is false for a RESP reply.
func SignalOf(reply []byte) (s Signal, body []byte, ok bool) {
	if len(reply) == 0 || reply[0] < byte(Locked) || reply[0] > byte(Loading) {
		return 0, nil, false
	}
	return Signal(reply[0]), reply[1:], true
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

// Err turns a signal a client's request ended with into its error:
// Loading is LoadingError; anything else is a SignalError.
func (s Signal) Err() error {
	if s == Loading {
		return &LoadingError{}
	}
	return &SignalError{Signal: s}
}
