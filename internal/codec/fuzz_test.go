package codec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecoder runs a program of decoder calls (ops) over arbitrary bytes
// (data), checking the package's invariants after every call, then uses
// the same ops and data as the shape and content of values that must
// survive an encode and decode unchanged.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4 | 3<<3, 5, 7}, []byte(Encoder(nil).Uvarint(300).Uvarint(2).Bytes([]byte("ab")).Byte(1).Raw([]byte("xyz")).Args([][]byte{[]byte("k")})))
	f.Add([]byte{5, 5, 2, 1}, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'a'})
	f.Add([]byte{0, 0, 6, 0}, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{4 | 30<<3, 3 | 9<<3, 0 | 8<<3, 2 | 1<<3}, bytes.Repeat([]byte{0x81}, 64))
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		decodeArbitrary(t, ops, data)
		roundTrip(t, ops, data)
	})
}

func decodeArbitrary(t *testing.T, ops, data []byte) {
	d := NewDecoder(data)
	for _, op := range ops {
		off, before, failed := len(data)-d.Len(), d.Len(), d.Err() != nil
		var out [][]byte // strings the call returned
		switch op % 8 {
		case 0:
			v := d.Uvarint()
			if want, n := binary.Uvarint(data[off:]); !failed && n > 0 && (v != want || d.Err() != nil) {
				t.Fatalf("uvarint %d, %v; encoding/binary reads %d", v, d.Err(), want)
			} else if !failed && n <= 0 && d.Err() == nil {
				t.Fatal("a varint encoding/binary refuses was accepted")
			}
		case 1:
			if n := d.Count(); n > d.Len() || n < 0 {
				t.Fatalf("count %d with %d bytes left", n, d.Len())
			}
		case 2:
			out = append(out, d.Bytes())
		case 3:
			d.Byte()
		case 4:
			out = append(out, d.Raw(int(op>>3)-1))
		case 5:
			a := d.Args()
			if len(a) > before {
				t.Fatalf("%d arguments out of %d bytes", len(a), before)
			}
			if a == nil && d.Err() == nil {
				t.Fatal("nil arguments without an error")
			}
			out = append(out, a...)
		case 6:
			d.Fail()
			if d.Err() == nil {
				t.Fatal("Fail left no error")
			}
		case 7:
			if err := d.Done(); (err == nil) != (!failed && before == 0) {
				t.Fatalf("done %v with %d bytes left", err, before)
			}
		}
		consumed := before - d.Len()
		if failed && (consumed != 0 || d.Err() == nil || out != nil && out[0] != nil) {
			t.Fatalf("op %d after an error: consumed %d, err %v, returned %q", op%8, consumed, d.Err(), out)
		}
		if consumed < 0 {
			t.Fatalf("op %d went back %d bytes", op%8, -consumed)
		}
		for _, s := range out {
			if cap(s) != len(s) {
				t.Fatalf("a string of %d bytes with capacity %d", len(s), cap(s))
			}
			if len(s) > 0 && !aliases(s, data[off:off+consumed]) {
				t.Fatal("a string that does not alias the bytes read")
			}
		}
	}
}

// aliases reports whether s lies within in.
func aliases(s, in []byte) bool {
	for i := 0; i+len(s) <= len(in); i++ {
		if &in[i] == &s[0] {
			return true
		}
	}
	return false
}

// roundTrip encodes values shaped by ops and filled from data, and
// decodes them back.
func roundTrip(t *testing.T, ops, data []byte) {
	src := data
	take := func(n int) []byte {
		n = min(n, len(src))
		s := src[:n]
		src = src[n:]
		return s
	}
	type value struct {
		u    uint64
		b    []byte
		args [][]byte
	}
	vals := make([]value, len(ops))
	var e Encoder
	for i, op := range ops {
		v := &vals[i]
		switch n := int(op >> 3); op % 5 {
		case 0: // a uvarint of up to 8 random bytes, so every magnitude
			var w [8]byte
			copy(w[:], take(n%9))
			v.u = binary.LittleEndian.Uint64(w[:])
			e = e.Uvarint(v.u)
		case 1:
			v.u = uint64(n)
			e = e.Byte(byte(n))
		case 2:
			v.b = take(n)
			e = e.Raw(v.b)
		case 3:
			v.b = take(n * 7) // up to 217 bytes: two-byte lengths too
			e = e.Bytes(v.b)
		case 4:
			for range n % 5 {
				v.args = append(v.args, take(int(op)))
			}
			e = e.Args(v.args)
		}
	}
	d := NewDecoder(e)
	for i, op := range ops {
		v := &vals[i]
		ok := true
		switch op % 5 {
		case 0:
			ok = d.Uvarint() == v.u
		case 1:
			ok = uint64(d.Byte()) == v.u
		case 2:
			ok = bytes.Equal(d.Raw(len(v.b)), v.b)
		case 3:
			ok = bytes.Equal(d.Bytes(), v.b)
		case 4:
			a := d.Args()
			ok = a != nil && len(a) == len(v.args)
			for j := 0; ok && j < len(a); j++ {
				ok = bytes.Equal(a[j], v.args[j])
			}
		}
		if !ok || d.Err() != nil {
			t.Fatalf("value %d (op %d) did not round-trip: %v", i, op%5, d.Err())
		}
	}
	if err := d.Done(); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}
