package txn

import (
	"bytes"
	"strconv"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
)

// Operation names: the first argument of the commands this package puts in
// a partition's log (or reads from it). Clients cannot send them: the front
// end only dispatches commands of the kv table.
const (
	opPrepare = "txn.prepare" // Prepare: locks, checks, evaluates; maybe creates the record
	opExec1   = "txn.exec1"   // a transaction within one partition, in one entry
	// opEffects (effects.go): a script's writes, if what it read is unchanged
	opResolve   = "txn.resolve"   // id, status: apply (COMMITTED) or drop (else) a part
	opCommit    = "txn.commit"    // id: record PENDING -> COMMITTED
	opAbort     = "txn.abort"     // id, heartbeat or "": record PENDING -> ABORTED
	opHeartbeat = "txn.heartbeat" // id, heartbeat
	opGC        = "txn.gc"        // id: delete a decided record
	opRecord    = "txn.record"    // read: id -> record
	opVersion   = "txn.version"   // read: key -> version
	opSnap      = "txn.snap"      // read: a read-only share -> its keys' versions and replies
)

// op is the Impl of this package's operations in the command registry.
type op struct {
	read    bool // served by a read, never through the log
	clients bool // the write a client asked for: it takes locks or applies
}

func init() {
	for _, o := range []struct {
		name string
		op   op
	}{
		{opPrepare, op{clients: true}}, {opExec1, op{clients: true}}, {opEffects, op{clients: true}},
		{opResolve, op{}}, {opCommit, op{}}, {opAbort, op{}}, {opHeartbeat, op{}}, {opGC, op{}},
		{opRecord, op{read: true}}, {opVersion, op{read: true}}, {opSnap, op{read: true}},
	} {
		flags := command.Internal | command.Write
		if o.op.read {
			flags = command.Internal | command.ReadOnly
		}
		command.Register(&command.Spec{Name: o.name, Arity: -2, Flags: flags, Category: command.CatInternal, Impl: o.op})
	}
}

// Owns reports whether spec is one of this package's operations.
func Owns(spec *command.Spec) bool {
	_, ok := spec.Impl.(op)
	return ok
}

// ClientWrite reports whether spec is an operation that carries a
// client's write: a PREPARE or a one-partition transaction.
func ClientWrite(spec *command.Spec) bool {
	o, ok := spec.Impl.(op)
	return ok && o.clients
}

// IsOp reports whether name is one of this package's operations.
func IsOp(name []byte) bool { return bytes.HasPrefix(name, []byte("txn.")) }

// IsPrepare reports whether args is a participant's PREPARE.
func IsPrepare(args [][]byte) bool { return len(args) > 0 && string(args[0]) == opPrepare }

// Watch is a key a transaction watched and the version it had then.
type Watch struct {
	Key     []byte
	Version uint64
}

// prepare is a participant's share of a transaction.
type prepare struct {
	ref     Ref
	create  *Record // set on the record's partition: create it, PENDING
	watches []Watch
	cmds    [][][]byte
}

func (p *prepare) encode() []byte {
	e := encodeRef(nil, p.ref)
	if p.create != nil {
		e = e.Byte(1).Bytes(p.create.encode())
	} else {
		e = e.Byte(0)
	}
	return encodeBody(e, p.watches, p.cmds)
}

func decodePrepare(b []byte) (prepare, error) {
	d := codec.NewDecoder(b)
	p := prepare{ref: decodeRef(&d)}
	if d.Byte() == 1 {
		rec, err := decodeRecord(d.Bytes())
		if err != nil {
			return p, err
		}
		p.create = &rec
	}
	p.watches, p.cmds = decodeBody(&d)
	return p, decoded(&d)
}

func encodeBody(e codec.Encoder, watches []Watch, cmds [][][]byte) codec.Encoder {
	e = e.Uvarint(uint64(len(watches)))
	for _, w := range watches {
		e = e.Bytes(w.Key).Uvarint(w.Version)
	}
	e = e.Uvarint(uint64(len(cmds)))
	for _, c := range cmds {
		e = e.Args(c)
	}
	return e
}

func decodeBody(d *codec.Decoder) ([]Watch, [][][]byte) {
	var ws []Watch
	n := d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		ws = append(ws, Watch{Key: d.Bytes(), Version: d.Uvarint()})
	}
	var cmds [][][]byte
	n = d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		c := d.Args()
		if len(c) == 0 {
			d.Fail()
		}
		cmds = append(cmds, c)
	}
	return ws, cmds
}

// Argument builders for each operation.

func prepareArgs(p *prepare) [][]byte { return [][]byte{[]byte(opPrepare), p.encode()} }

func snapArgs(watches []Watch, cmds [][][]byte) [][]byte {
	return [][]byte{[]byte(opSnap), encodeBody(nil, watches, cmds)}
}

func exec1Args(watches []Watch, cmds [][][]byte) [][]byte {
	return [][]byte{[]byte(opExec1), encodeBody(nil, watches, cmds)}
}

func resolveArgs(id ID, s Status) [][]byte {
	return [][]byte{[]byte(opResolve), id[:], {byte(s)}}
}

func commitArgs(id ID) [][]byte { return [][]byte{[]byte(opCommit), id[:]} }

// abortArgs aborts id if its record is PENDING with heartbeat hb, or with
// any heartbeat when any is set (an older transaction wounding it, or its
// own coordinator giving up).
func abortArgs(id ID, hb uint64, any bool) [][]byte {
	h := []byte{}
	if !any {
		h = strconv.AppendUint(nil, hb, 10)
	}
	return [][]byte{[]byte(opAbort), id[:], h}
}

func heartbeatArgs(id ID, hb uint64) [][]byte {
	return [][]byte{[]byte(opHeartbeat), id[:], strconv.AppendUint(nil, hb, 10)}
}

func gcArgs(id ID) [][]byte { return [][]byte{[]byte(opGC), id[:]} }

func recordArgs(id ID) [][]byte { return [][]byte{[]byte(opRecord), id[:]} }

// VersionArgs reads key's version (for WATCH).
func VersionArgs(key []byte) [][]byte { return [][]byte{[]byte(opVersion), key} }

// LockedReply names the transactions whose locks stand in a command's way
// (a failure.Locked signal; it never reaches a client).
func LockedReply(out []byte, holders []Ref) []byte {
	return failure.AppendSignal(out, failure.Locked, encodeRefs(holders))
}

// signal appends one of the signals with no body (failure.WatchFailed,
// BadOp, Exists) to out.
func signal(out []byte, s failure.Signal) []byte { return failure.AppendSignal(out, s, nil) }

func encodeRefs(refs []Ref) []byte {
	e := codec.Encoder(nil).Uvarint(uint64(len(refs)))
	for _, h := range refs {
		e = encodeRef(e, h)
	}
	return e
}

func decodeRefs(b []byte) ([]Ref, error) {
	d := codec.NewDecoder(b)
	var refs []Ref
	n := d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		refs = append(refs, decodeRef(&d))
	}
	return refs, decoded(&d)
}

// ParseLocked returns the holders named by a reply that says a command met
// transaction locks, or ok=false for any other reply.
func ParseLocked(reply []byte) (holders []Ref, ok bool) {
	s, raw, ok := failure.SignalOf(reply)
	if !ok || s != failure.Locked {
		return nil, false
	}
	holders, err := decodeRefs(raw)
	if err != nil || len(holders) == 0 {
		return nil, false
	}
	return holders, true
}

func statusReply(out []byte, s Status) []byte { return resp.AppendSimple(out, s.String()) }

// parseStatus reads a record operation's reply: ok=false when the reply is
// something else (an error from the router: not reached, or unknown).
func parseStatus(reply []byte) (Status, bool) {
	v, _, err := resp.ParseValue(reply)
	if err != nil || v.Kind != '+' {
		return 0, false
	}
	for _, s := range []Status{Pending, Committed, Aborted, Missing} {
		if string(v.Str) == s.String() {
			return s, true
		}
	}
	return 0, false
}

// SplitArray returns the raw bytes of each element of a RESP array reply.
func SplitArray(b []byte) ([][]byte, bool) {
	v, n, err := resp.ParseValue(b)
	if err != nil || v.Kind != '*' || v.Null || n != len(b) {
		return nil, false
	}
	// Skip the header line, then cut each element where it ends.
	i := bytes.Index(b, []byte("\r\n")) + 2
	out := make([][]byte, 0, len(v.Array))
	for range v.Array {
		_, m, err := resp.ParseValue(b[i:])
		if err != nil {
			return nil, false
		}
		out = append(out, b[i:i+m])
		i += m
	}
	return out, true
}
