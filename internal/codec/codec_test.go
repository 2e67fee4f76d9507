package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// The primitives' bytes are the formats of every user of this package.
func TestEncodingGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		e    Encoder
		hex  string
	}{
		{"uvarint 0", Encoder(nil).Uvarint(0), "00"},
		{"uvarint 127", Encoder(nil).Uvarint(127), "7f"},
		{"uvarint 128", Encoder(nil).Uvarint(128), "8001"},
		{"uvarint 300", Encoder(nil).Uvarint(300), "ac02"},
		{"uvarint max", Encoder(nil).Uvarint(math.MaxUint64), "ffffffffffffffffff01"},
		{"byte", Encoder(nil).Byte(0xfe), "fe"},
		{"raw", Encoder(nil).Raw([]byte{1, 2, 3}), "010203"},
		{"raw empty", Encoder(nil).Raw(nil), ""},
		{"bytes empty", Encoder(nil).Bytes(nil), "00"},
		{"bytes", Encoder(nil).Bytes([]byte("ab")), "026162"},
		{"bytes 128", Encoder(nil).Bytes(bytes.Repeat([]byte{'x'}, 128)), "8001" + strings.Repeat("78", 128)},
		{"args none", Encoder(nil).Args(nil), "00"},
		{"args", Encoder(nil).Args([][]byte{[]byte("set"), {}, []byte("v")}), "03" + "03736574" + "00" + "0176"},
		{"chained onto a prefix", Encoder([]byte{9}).Byte(1).Uvarint(2).Bytes([]byte("c")), "0901020163"},
	} {
		if got := hex.EncodeToString(c.e); got != c.hex {
			t.Errorf("%s: %s, want %s", c.name, got, c.hex)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	args := [][]byte{[]byte("get"), {}, bytes.Repeat([]byte{'k'}, 300)}
	b := Encoder(nil).Uvarint(math.MaxUint64).Byte(7).Raw([]byte("raw")).Bytes([]byte("str")).Args(args).Uvarint(1).Bytes(nil)
	d := NewDecoder(b)
	if v := d.Uvarint(); v != math.MaxUint64 {
		t.Fatalf("uvarint %d", v)
	}
	if c := d.Byte(); c != 7 {
		t.Fatalf("byte %d", c)
	}
	if r := d.Raw(3); string(r) != "raw" {
		t.Fatalf("raw %q", r)
	}
	if s := d.Bytes(); string(s) != "str" {
		t.Fatalf("bytes %q", s)
	}
	if a := d.Args(); !reflect.DeepEqual(a, args) {
		t.Fatalf("args %q", a)
	}
	if n := d.Count(); n != 1 {
		t.Fatalf("count %d", n)
	}
	if s := d.Bytes(); s == nil || len(s) != 0 {
		t.Fatalf("empty bytes %#v: want empty, not nil", s)
	}
	if err := d.Done(); err != nil || d.Len() != 0 {
		t.Fatalf("done: %v, %d left", err, d.Len())
	}
}

func TestDecoderRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		hex  string
		read func(d *Decoder)
	}{
		{"uvarint of nothing", "", func(d *Decoder) { d.Uvarint() }},
		{"truncated uvarint", "8080", func(d *Decoder) { d.Uvarint() }},
		{"uvarint beyond 64 bits", "ffffffffffffffffff02", func(d *Decoder) { d.Uvarint() }},
		{"uvarint of 11 bytes", "8080808080808080808000", func(d *Decoder) { d.Uvarint() }},
		{"count beyond the input", "0300", func(d *Decoder) { d.Count() }},
		{"bytes beyond the input", "03616263"[:6], func(d *Decoder) { d.Bytes() }},
		{"huge length", "ffffffff0f61", func(d *Decoder) { d.Bytes() }},
		{"byte of nothing", "", func(d *Decoder) { d.Byte() }},
		{"raw beyond the input", "0102", func(d *Decoder) { d.Raw(3) }},
		{"raw of a negative length", "0102", func(d *Decoder) { d.Raw(-1) }},
		{"args count beyond the input", "050100", func(d *Decoder) { d.Args() }},
		{"args with a short argument", "02" + "0161" + "05", func(d *Decoder) { d.Args() }},
		{"trailing bytes", "0100", func(d *Decoder) { d.Uvarint() }},
		{"refused by the caller", "01", func(d *Decoder) { d.Uvarint(); d.Fail() }},
	} {
		b, _ := hex.DecodeString(c.hex)
		d := NewDecoder(b)
		c.read(&d)
		if err := d.Done(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// After the first error nothing more is read, so what follows a bad
// field can never be taken for a value.
func TestErrorsAreSticky(t *testing.T) {
	b := Encoder(nil).Uvarint(1).Bytes([]byte("abc")).Byte(5).Args([][]byte{[]byte("x")})
	d := NewDecoder(b)
	d.Raw(100) // fails, leaving all of b unread
	left := d.Len()
	if left != len(b) {
		t.Fatalf("a failed read consumed %d bytes", len(b)-left)
	}
	if v, s, c, a, r, n := d.Uvarint(), d.Bytes(), d.Byte(), d.Args(), d.Raw(1), d.Count(); v != 0 || s != nil || c != 0 || a != nil || r != nil || n != 0 {
		t.Fatalf("reads after an error returned %d %q %d %q %q %d", v, s, c, a, r, n)
	}
	if d.Len() != left || d.Err() == nil || d.Done() != d.Err() {
		t.Fatalf("after an error: %d left, err %v", d.Len(), d.Err())
	}
	d.Fail()
	if !errors.Is(d.Err(), ErrMalformed) || d.Err().Error() != "codec: malformed input: truncated" {
		t.Fatalf("the first error is kept: %v", d.Err())
	}
}

// A decoded string aliases the input without exposing what follows it.
func TestBytesAreCapped(t *testing.T) {
	b := Encoder(nil).Bytes([]byte("ab")).Bytes([]byte("cd"))
	d := NewDecoder(b)
	s := d.Bytes()
	if cap(s) != len(s) {
		t.Fatalf("capacity %d for %d bytes", cap(s), len(s))
	}
	_ = append(s, 'X')
	if r := d.Raw(1); string(r) != "\x02" || cap(r) != 1 {
		t.Fatalf("raw %q, cap %d", r, cap(r))
	}
	if got := d.Raw(2); string(got) != "cd" {
		t.Fatalf("appending to one string changed the next: %q", got)
	}
	s[0] = 'A'
	if b[1] != 'A' {
		t.Fatal("strings do not alias the input")
	}
}

// encoding/binary accepts redundant continuation bytes, and so did every
// decoder before this one: a replica that refused them would diverge.
func TestRedundantVarintBytesAccepted(t *testing.T) {
	d := NewDecoder([]byte{0x80, 0x80, 0x00, 0x81, 0x00})
	if a, b := d.Uvarint(), d.Uvarint(); a != 0 || b != 1 || d.Done() != nil {
		t.Fatalf("%d %d %v", a, b, d.Err())
	}
}

func TestAllocations(t *testing.T) {
	args := [][]byte{[]byte("set"), []byte("k"), []byte("v")}
	b := Encoder(nil).Uvarint(300).Byte(1).Raw([]byte("0123")).Bytes([]byte("key")).Args(args)
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		_ = Encoder(buf).Uvarint(300).Byte(1).Raw([]byte("0123")).Bytes([]byte("key")).Args(args)
	}); n != 0 {
		t.Errorf("encoding into a large enough buffer: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		d := NewDecoder(b)
		_, _, _, _ = d.Uvarint(), d.Byte(), d.Raw(4), d.Bytes()
		_ = d.Count()
		for d.Len() > 0 && d.Err() == nil {
			_ = d.Bytes()
		}
		if d.Done() != nil {
			panic("malformed")
		}
	}); n != 0 {
		t.Errorf("decoding: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		d := NewDecoder(b[11:])
		if sink = d.Args(); len(sink) != len(args) {
			panic("malformed")
		}
	}); n != 1 {
		t.Errorf("args: %v allocations, want 1 (the slice)", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		d := NewDecoder([]byte{0x80})
		d.Uvarint()
		d.Fail()
		_ = d.Done()
	}); n != 0 {
		t.Errorf("failing: %v allocations", n)
	}
}

var sink [][]byte
