package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is the error of every input a Decoder refuses. Users map
// it to their own sentinel, so a refusal reads the same as before.
var ErrMalformed = errors.New("codec: malformed input")

// The variants say which read failed; they are made once, so failing
// allocates nothing.
var (
	errTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	errVarint    = fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
	errLength    = fmt.Errorf("%w: length beyond the input", ErrMalformed)
	errTrailing  = fmt.Errorf("%w: trailing bytes", ErrMalformed)
	errInvalid   = fmt.Errorf("%w: invalid value", ErrMalformed)
)

// Decoder reads what an Encoder wrote, from a byte slice it never copies.
// It is a value: keep it in a local variable and it stays on the stack.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads b.
func NewDecoder(b []byte) Decoder { return Decoder{b: b} }

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = errTruncated
		return 0
	case n < 0:
		d.err = errVarint
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Count reads a number of items that follow, each at least one byte
// long: a count beyond the bytes left is malformed, so a caller may
// allocate for it.
func (d *Decoder) Count() int {
	n := d.Uvarint()
	if n > uint64(len(d.b)) {
		d.err = errLength
		return 0
	}
	return int(n)
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Raw reads the next n bytes, written by Encoder.Raw. The result aliases
// the input.
func (d *Decoder) Raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errTruncated
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// Bytes reads a length-prefixed byte string. The result aliases the
// input.
func (d *Decoder) Bytes() []byte {
	n := d.Count()
	if d.err != nil {
		return nil
	}
	return d.Raw(n)
}

// Args reads an argument list: never nil unless the input is malformed,
// each argument aliasing the input.
func (d *Decoder) Args() [][]byte {
	n := d.Count()
	if d.err != nil {
		return nil
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = d.Bytes()
	}
	if d.err != nil {
		return nil
	}
	return out
}

// Len is the number of bytes not read yet.
func (d *Decoder) Len() int { return len(d.b) }

// Fail marks the input malformed: for a value that decoded but that the
// caller cannot accept, so it is refused like any other malformed input.
func (d *Decoder) Fail() {
	if d.err == nil {
		d.err = errInvalid
	}
}

// Err is the first error met, nil if none.
func (d *Decoder) Err() error { return d.err }

// Done is Err, or an error if bytes are left: the input was exactly one
// encoded value.
func (d *Decoder) Done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errTrailing
	}
	return d.err
}
