package resp

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// appendValue re-encodes a parsed Value with the package's own encoders, so
// that ParseValue can be checked as their exact inverse.
func appendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case '+':
		return AppendSimple(b, string(v.Str))
	case '-':
		return AppendError(b, string(v.Str))
	case ':':
		return AppendInt(b, v.Int)
	case '$':
		if v.Null {
			return AppendNull(b)
		}
		return AppendBulk(b, v.Str)
	case '*':
		if v.Null {
			return AppendNullArray(b)
		}
		b = AppendArrayHeader(b, len(v.Array))
		for _, e := range v.Array {
			b = appendValue(b, e)
		}
		return b
	}
	panic("unknown kind " + string(v.Kind))
}

func nested(depth int, leaf []byte) []byte {
	var b []byte
	for range depth {
		b = AppendArrayHeader(b, 1)
	}
	return append(b, leaf...)
}

func TestParseValueRoundTrip(t *testing.T) {
	mixed := AppendArrayHeader(nil, 6)
	mixed = AppendSimple(mixed, "OK")
	mixed = AppendError(mixed, "ERR x")
	mixed = AppendInt(mixed, -5)
	mixed = AppendBulk(mixed, []byte("a\r\nb"))
	mixed = AppendNull(mixed)
	mixed = AppendArrayHeader(mixed, 2)
	mixed = AppendNullArray(mixed)
	mixed = AppendArrayHeader(mixed, 0)

	tests := []struct {
		name string
		enc  []byte
		want Value
	}{
		{"simple", AppendSimple(nil, "OK"), Value{Kind: '+', Str: []byte("OK")}},
		{"empty simple", AppendSimple(nil, ""), Value{Kind: '+', Str: []byte{}}},
		{"error", AppendError(nil, "WRONGTYPE Operation against a key"), Value{Kind: '-', Str: []byte("WRONGTYPE Operation against a key")}},
		{"int", AppendInt(nil, 42), Value{Kind: ':', Int: 42}},
		{"min int", AppendInt(nil, math.MinInt64), Value{Kind: ':', Int: math.MinInt64}},
		{"max int", AppendInt(nil, math.MaxInt64), Value{Kind: ':', Int: math.MaxInt64}},
		{"bulk", AppendBulk(nil, []byte("hello")), Value{Kind: '$', Str: []byte("hello")}},
		{"binary bulk", AppendBulk(nil, []byte("\r\n\x00$")), Value{Kind: '$', Str: []byte("\r\n\x00$")}},
		{"empty bulk", AppendBulk(nil, nil), Value{Kind: '$', Str: []byte{}}},
		{"bulk string", AppendBulkString(nil, "s"), Value{Kind: '$', Str: []byte("s")}},
		{"null", AppendNull(nil), Value{Kind: '$', Null: true}},
		{"null array", AppendNullArray(nil), Value{Kind: '*', Null: true}},
		{"empty array", AppendArrayHeader(nil, 0), Value{Kind: '*', Array: []Value{}}},
		{"command", AppendCommand(nil, []byte("GET"), []byte("k")), Value{Kind: '*', Array: []Value{
			{Kind: '$', Str: []byte("GET")}, {Kind: '$', Str: []byte("k")},
		}}},
		{"mixed nested", mixed, Value{Kind: '*', Array: []Value{
			{Kind: '+', Str: []byte("OK")},
			{Kind: '-', Str: []byte("ERR x")},
			{Kind: ':', Int: -5},
			{Kind: '$', Str: []byte("a\r\nb")},
			{Kind: '$', Null: true},
			{Kind: '*', Array: []Value{{Kind: '*', Null: true}, {Kind: '*', Array: []Value{}}}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trailer := []byte("+NEXT\r\n")
			v, n, err := ParseValue(append(bytes.Clone(tt.enc), trailer...))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.enc) {
				t.Fatalf("consumed %d bytes, want %d", n, len(tt.enc))
			}
			if !equalValue(v, tt.want) {
				t.Fatalf("got %+v, want %+v", v, tt.want)
			}
			if re := appendValue(nil, v); !bytes.Equal(re, tt.enc) {
				t.Fatalf("re-encoded as %q, want %q", re, tt.enc)
			}
			for i := range len(tt.enc) {
				if _, _, err := ParseValue(tt.enc[:i]); err != ErrIncomplete {
					t.Fatalf("prefix of %d bytes: got %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func equalValue(a, b Value) bool {
	if a.Kind != b.Kind || !bytes.Equal(a.Str, b.Str) || a.Int != b.Int || a.Null != b.Null ||
		len(a.Array) != len(b.Array) || (a.Array == nil) != (b.Array == nil) {
		return false
	}
	for i := range a.Array {
		if !equalValue(a.Array[i], b.Array[i]) {
			return false
		}
	}
	return true
}

func TestParseValueErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"!x\r\n", "Protocol error: unknown reply type '!'"},
		{"\r\n", "Protocol error: unknown reply type '\r'"},
		{"+a\nb\r\n", "Protocol error: bare LF in reply"},
		{"+a\rb\r\n", "Protocol error: CR not followed by LF in reply"},
		{":01\r\n", "Protocol error: invalid integer"},
		{":+1\r\n", "Protocol error: invalid integer"},
		{":\r\n", "Protocol error: invalid integer"},
		{"$-2\r\n", "Protocol error: invalid bulk length"},
		{"$x\r\n", "Protocol error: invalid bulk length"},
		{"$3\r\nabcd\r\n", "Protocol error: invalid bulk length"},
		{"*-2\r\n", "Protocol error: invalid multibulk length"},
		{"*01\r\n:1\r\n", "Protocol error: invalid multibulk length"},
		{"*2\r\n:1\r\n!\r\n", "Protocol error: unknown reply type '!'"},
		{string(nested(maxDepth+1, []byte(":1\r\n"))), "Protocol error: reply nested too deeply"},
	}
	for _, tt := range tests {
		_, _, err := ParseValue([]byte(tt.in))
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Msg != tt.want {
			t.Errorf("ParseValue(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParseValueDepth(t *testing.T) {
	v, _, err := ParseValue(nested(maxDepth, []byte(":1\r\n")))
	if err != nil {
		t.Fatalf("depth %d: %v", maxDepth, err)
	}
	for range maxDepth {
		v = v.Array[0]
	}
	if v.Kind != ':' || v.Int != 1 {
		t.Fatalf("innermost value %+v", v)
	}
}

// A declared array or bulk length must not be trusted: with little input
// the answer is "incomplete", at little cost.
func TestParseValueHugeDeclaredLengths(t *testing.T) {
	for _, in := range []string{"*2147483647\r\n", "*9223372036854775807\r\n:1\r\n", "$9223372036854775807\r\nab"} {
		var err error
		n := allocatedBy(func() { _, _, err = ParseValue([]byte(in)) })
		if err != ErrIncomplete {
			t.Errorf("%q: got %v, want ErrIncomplete", in, err)
		}
		if n > 4096 {
			t.Errorf("%q: allocated %d bytes", in, n)
		}
	}
	// A long run of small elements is parsed fine.
	b := AppendArrayHeader(nil, 10000)
	b = append(b, strings.Repeat("+\r\n", 10000)...)
	if v, n, err := ParseValue(b); err != nil || n != len(b) || len(v.Array) != 10000 {
		t.Fatalf("10000 empty statuses: %d elements, %d bytes, %v", len(v.Array), n, err)
	}
}

// ErrorReply splits an error reply into its code and text, and says no to
// anything else (a large array included) without parsing it.
func TestErrorReply(t *testing.T) {
	if code, msg, ok := ErrorReply([]byte("-ERR storage failure\r\n")); !ok || code != "ERR" || msg != "storage failure" {
		t.Fatalf("error reply: %q %q %v", code, msg, ok)
	}
	for _, b := range []string{"", "+OK\r\n", ":1\r\n", "*2\r\n$1\r\na\r\n$1\r\nb\r\n", "-ERR torn"} {
		if _, _, ok := ErrorReply([]byte(b)); ok {
			t.Errorf("%q taken for an error reply", b)
		}
	}
}
