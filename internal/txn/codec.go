package txn

import (
	"encoding/binary"
	"errors"
)

// errCorrupt reports an encoded record or argument that cannot be decoded.
// On apply it answers an error reply instead of stopping the node: every
// replica decodes the same bytes the same way.
var errCorrupt = errors.New("txn: malformed encoding")

type enc []byte

func (e enc) uvarint(v uint64) enc { return binary.AppendUvarint(e, v) }
func (e enc) bytes(b []byte) enc   { return append(e.uvarint(uint64(len(b))), b...) }
func (e enc) byte(c byte) enc      { return append(e, c) }

type dec struct {
	b   []byte
	bad bool
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each item costs at
// least one byte), so a corrupt count cannot make us allocate.
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		return 0
	}
	return int(n)
}

func (d *dec) bytes() []byte {
	n := d.count()
	if d.bad {
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) err() error {
	if d.bad {
		return errCorrupt
	}
	return nil
}

func (d *dec) done() error {
	if d.bad || len(d.b) != 0 {
		return errCorrupt
	}
	return nil
}

func encodeArgs(e enc, args [][]byte) enc {
	e = e.uvarint(uint64(len(args)))
	for _, a := range args {
		e = e.bytes(a)
	}
	return e
}

func (d *dec) args() [][]byte {
	n := d.count()
	out := make([][]byte, 0, n)
	for i := 0; i < n && !d.bad; i++ {
		out = append(out, d.bytes())
	}
	return out
}
