package codec

import "encoding/binary"

// Encoder appends to a byte slice. Its methods return the extended slice,
// like append, so calls chain and a caller-owned buffer is reused as is.
type Encoder []byte

// Uvarint appends v as an unsigned varint.
func (e Encoder) Uvarint(v uint64) Encoder { return binary.AppendUvarint(e, v) }

// Byte appends one byte.
func (e Encoder) Byte(c byte) Encoder { return append(e, c) }

// Raw appends b with no length: the reader must know it (Decoder.Raw).
func (e Encoder) Raw(b []byte) Encoder { return append(e, b...) }

// Bytes appends b's length, then b.
func (e Encoder) Bytes(b []byte) Encoder { return append(e.Uvarint(uint64(len(b))), b...) }

// Args appends the number of arguments, then each as Bytes.
func (e Encoder) Args(args [][]byte) Encoder {
	e = e.Uvarint(uint64(len(args)))
	for _, a := range args {
		e = e.Bytes(a)
	}
	return e
}
