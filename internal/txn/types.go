package txn

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/kv"
)

// ID identifies one attempt of a transaction: the coordinator's origin
// (a node incarnation) and a counter. A retried transaction gets a new ID
// and keeps its priority.
type ID [16]byte

// NewID builds an ID from a coordinator origin and a counter.
func NewID(origin, n uint64) ID {
	var id ID
	binary.BigEndian.PutUint64(id[:8], origin)
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Ref names a transaction to those who meet its locks: its ID, the
// partition holding its record, and its priority.
type Ref struct {
	ID    ID
	Group uint64 // partition of the transaction record
	// Priority is the start of the transaction's first attempt (Unix ns):
	// lower is older, and the older transaction wins a conflict.
	Priority uint64
}

// Older reports whether r wins a conflict against o: lower priority, then
// lower ID, so any two distinct transactions are ordered.
func (r Ref) Older(o Ref) bool {
	if r.Priority != o.Priority {
		return r.Priority < o.Priority
	}
	return bytes.Compare(r.ID[:], o.ID[:]) < 0
}

// errCorrupt reports an encoded record or argument that cannot be decoded.
// On apply it answers an error reply instead of stopping the node: every
// replica decodes the same bytes the same way.
var errCorrupt = errors.New("txn: malformed encoding")

// decoded is d.Done as errCorrupt: the input was one whole, valid value.
func decoded(d *codec.Decoder) error {
	if d.Done() != nil {
		return errCorrupt
	}
	return nil
}

func encodeRef(e codec.Encoder, r Ref) codec.Encoder {
	return e.Raw(r.ID[:]).Uvarint(r.Group).Uvarint(r.Priority)
}

func decodeRef(d *codec.Decoder) Ref {
	var r Ref
	copy(r.ID[:], d.Raw(len(r.ID)))
	r.Group = d.Uvarint()
	r.Priority = d.Uvarint()
	return r
}

// Status is a transaction record's state.
type Status byte

const (
	Pending   Status = 'P'
	Committed Status = 'C'
	Aborted   Status = 'A'
	// Missing is what a reader finds where no record is: the transaction
	// was never created or has been garbage-collected after every lock of
	// it was resolved. A lock whose record is missing is aborted.
	Missing Status = 'M'
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "PENDING"
	case Committed:
		return "COMMITTED"
	case Aborted:
		return "ABORTED"
	case Missing:
		return "MISSING"
	}
	return fmt.Sprintf("Status(%d)", byte(s))
}

// Record is a transaction's record, kept in one partition. Its status
// moves only PENDING -> COMMITTED or PENDING -> ABORTED, each by a
// compare-and-set applied through that partition's log.
type Record struct {
	Status Status
	// Heartbeat counts the coordinator's signs of life. Someone who sees
	// it unchanged for the expiry may abort the record (CAS on the value).
	Heartbeat uint64
	Priority  uint64
	// Participants are the partitions holding the transaction's locks, the
	// record's own partition first. Resolution covers all of them before
	// the record is deleted.
	Participants []uint64
	// ReadOnly transactions release their locks without a decision.
	ReadOnly bool
}

func (r *Record) encode() []byte {
	ro := byte(0)
	if r.ReadOnly {
		ro = 1
	}
	e := codec.Encoder(nil).Byte(byte(r.Status)).Uvarint(r.Heartbeat).Uvarint(r.Priority).Byte(ro).Uvarint(uint64(len(r.Participants)))
	for _, g := range r.Participants {
		e = e.Uvarint(g)
	}
	return e
}

func decodeRecord(b []byte) (Record, error) {
	d := codec.NewDecoder(b)
	var r Record
	r.Status = Status(d.Byte())
	r.Heartbeat = d.Uvarint()
	r.Priority = d.Uvarint()
	r.ReadOnly = d.Byte() == 1
	n := d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		r.Participants = append(r.Participants, d.Uvarint())
	}
	if r.Status != Pending && r.Status != Committed && r.Status != Aborted {
		d.Fail()
	}
	return r, decoded(&d)
}

// Lock is the lock table entry of one key: one exclusive holder, or
// shared holders that only read the key.
type Lock struct {
	Writer  *Ref
	Readers []Ref
}

// maxReaders bounds a key's shared holders; one more conflicts.
const maxReaders = 32

// Holders lists every transaction holding the lock.
func (l *Lock) Holders() []Ref {
	if l.Writer != nil {
		return []Ref{*l.Writer}
	}
	return l.Readers
}

// Encode is the lock as a partition's lock table stores it.
func (l *Lock) Encode() []byte { return l.encode() }

func (l *Lock) encode() []byte {
	if l.Writer != nil {
		return encodeRef(codec.Encoder(nil).Byte('w'), *l.Writer)
	}
	e := codec.Encoder(nil).Byte('r').Uvarint(uint64(len(l.Readers)))
	for _, r := range l.Readers {
		e = encodeRef(e, r)
	}
	return e
}

func decodeLock(b []byte) (Lock, error) {
	d := codec.NewDecoder(b)
	var l Lock
	switch d.Byte() {
	case 'w':
		r := decodeRef(&d)
		l.Writer = &r
	case 'r':
		n := d.Count()
		for i := 0; i < n && d.Err() == nil; i++ {
			l.Readers = append(l.Readers, decodeRef(&d))
		}
	default:
		d.Fail()
	}
	return l, decoded(&d)
}

// without returns the lock with id's hold removed and whether any holder
// is left.
func (l Lock) without(id ID) (Lock, bool) {
	if l.Writer != nil {
		if l.Writer.ID == id {
			return Lock{}, false
		}
		return l, true
	}
	l.Readers = slices.DeleteFunc(slices.Clone(l.Readers), func(r Ref) bool { return r.ID == id })
	return l, len(l.Readers) > 0
}

// Intent kinds: what a committed transaction does to a key.
const (
	intentNone byte = 'n' // locked only (read, or a write that changed nothing)
	intentPut  byte = 'p'
	intentDel  byte = 'd'
	// A collection's sub-key, written or removed: the entry follows its
	// key's own in the part, and its key is the collection's version (8
	// bytes) and the sub-key. It holds no lock of its own.
	intentSubPut byte = 'P'
	intentSubDel byte = 'D'
)

// partKey is one key a prepared transaction holds in a partition.
type partKey struct {
	key    []byte
	write  bool // exclusive lock
	intent byte
	value  []byte // stored value for intentPut
}

// part is a partition's share of a prepared transaction: what resolving
// it must do. It is keyed by transaction ID in the partition's part table.
type part struct {
	ref  Ref
	keys []partKey
}

func (p *part) encode() []byte {
	e := encodeRef(nil, p.ref).Uvarint(uint64(len(p.keys)))
	for _, k := range p.keys {
		w := byte(0)
		if k.write {
			w = 1
		}
		e = e.Bytes(k.key).Byte(w).Byte(k.intent).Bytes(k.value)
	}
	return e
}

func decodePart(b []byte) (part, error) {
	d := codec.NewDecoder(b)
	p := part{ref: decodeRef(&d)}
	n := d.Count()
	for i := 0; i < n && d.Err() == nil; i++ {
		var k partKey
		k.key = d.Bytes()
		k.write = d.Byte() == 1
		k.intent = d.Byte()
		k.value = d.Bytes()
		if (k.intent == intentSubPut || k.intent == intentSubDel) && (i == 0 || len(k.key) < 8) {
			return part{}, errCorrupt // a sub-key intent without its key
		}
		p.keys = append(p.keys, k)
	}
	return p, decoded(&d)
}

// ValidTableEntry reports whether (k, v) is a well-formed entry of one of
// a partition's transaction tables (TableLocks, TableParts,
// TableRecords): a restore checks what it loads, so a damaged backup is
// refused instead of stopping the node that meets the entry later.
func ValidTableEntry(table byte, k, v []byte) bool {
	switch table {
	case TableLocks:
		_, err := decodeLock(v)
		return len(k) > 0 && err == nil
	case TableRecords:
		_, err := decodeRecord(v)
		return len(k) == len(ID{}) && err == nil
	case TableParts:
		p, err := decodePart(v)
		if len(k) != len(ID{}) || err != nil {
			return false
		}
		for _, pk := range p.keys {
			switch {
			case len(pk.key) == 0:
				return false
			case pk.intent == intentPut && !kv.ValidStored(pk.value):
				return false
			case pk.intent == intentSubPut || pk.intent == intentSubDel:
			case pk.intent != intentPut && pk.intent != intentDel && pk.intent != intentNone:
				return false
			}
		}
		return true
	}
	return false
}
