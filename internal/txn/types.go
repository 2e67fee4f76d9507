package txn

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

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

func (e enc) ref(r Ref) enc {
	return append(e, r.ID[:]...).uvarint(r.Group).uvarint(r.Priority)
}

func (d *dec) ref() Ref {
	var r Ref
	if len(d.b) < len(r.ID) {
		d.bad = true
		return r
	}
	copy(r.ID[:], d.b)
	d.b = d.b[len(r.ID):]
	r.Group = d.uvarint()
	r.Priority = d.uvarint()
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
	e := enc{}.byte(byte(r.Status)).uvarint(r.Heartbeat).uvarint(r.Priority)
	ro := byte(0)
	if r.ReadOnly {
		ro = 1
	}
	e = e.byte(ro).uvarint(uint64(len(r.Participants)))
	for _, g := range r.Participants {
		e = e.uvarint(g)
	}
	return e
}

func decodeRecord(b []byte) (Record, error) {
	d := dec{b: b}
	var r Record
	r.Status = Status(d.byte())
	r.Heartbeat = d.uvarint()
	r.Priority = d.uvarint()
	r.ReadOnly = d.byte() == 1
	n := d.count()
	for i := 0; i < n && !d.bad; i++ {
		r.Participants = append(r.Participants, d.uvarint())
	}
	if r.Status != Pending && r.Status != Committed && r.Status != Aborted {
		d.bad = true
	}
	return r, d.done()
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

func (l *Lock) encode() []byte {
	e := enc{}
	if l.Writer != nil {
		return e.byte('w').ref(*l.Writer)
	}
	e = e.byte('r').uvarint(uint64(len(l.Readers)))
	for _, r := range l.Readers {
		e = e.ref(r)
	}
	return e
}

func decodeLock(b []byte) (Lock, error) {
	d := dec{b: b}
	var l Lock
	switch d.byte() {
	case 'w':
		r := d.ref()
		l.Writer = &r
	case 'r':
		n := d.count()
		for i := 0; i < n && !d.bad; i++ {
			l.Readers = append(l.Readers, d.ref())
		}
	default:
		d.bad = true
	}
	return l, d.done()
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
	e := enc{}.ref(p.ref).uvarint(uint64(len(p.keys)))
	for _, k := range p.keys {
		w := byte(0)
		if k.write {
			w = 1
		}
		e = e.bytes(k.key).byte(w).byte(k.intent).bytes(k.value)
	}
	return e
}

func decodePart(b []byte) (part, error) {
	d := dec{b: b}
	p := part{ref: d.ref()}
	n := d.count()
	for i := 0; i < n && !d.bad; i++ {
		var k partKey
		k.key = d.bytes()
		k.write = d.byte() == 1
		k.intent = d.byte()
		k.value = d.bytes()
		p.keys = append(p.keys, k)
	}
	return p, d.done()
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
			case pk.intent != intentPut && pk.intent != intentDel && pk.intent != intentNone:
				return false
			}
		}
		return true
	}
	return false
}
