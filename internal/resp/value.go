package resp

import (
	"bytes"
	"errors"
	"strings"
)

// Value is one parsed RESP2 reply.
//
// Kind is the type byte: '+', '-', ':', '$' or '*'. Str holds the text of a
// status, error or bulk reply, Int an integer reply, Array an array's
// elements. Null marks $-1 and *-1, which RESP2 distinguishes from an empty
// string and an empty array.
type Value struct {
	Kind  byte
	Str   []byte
	Int   int64
	Array []Value
	Null  bool
}

// ErrIncomplete is returned by ParseValue when its input holds only the
// beginning of a reply: read more and try again.
var ErrIncomplete = errors.New("resp: incomplete reply")

// maxDepth bounds array nesting, and with it ParseValue's recursion, so a
// reply made of nothing but "*1\r\n" cannot exhaust the stack.
const maxDepth = 64

// ParseValue parses one complete reply from the start of b and reports how
// many bytes it took. Str slices alias b.
//
// The parser is strict, so that every reply it accepts has exactly one
// encoding: integers and lengths follow Redis's string2ll (no '+', no leading
// zeros), a null is only ever -1, and status lines may not contain CR or LF.
// An array's elements are collected as they are parsed, never preallocated
// beyond what the remaining input could hold.
func ParseValue(b []byte) (v Value, n int, err error) {
	return parseValue(b, 0)
}

func parseValue(b []byte, depth int) (Value, int, error) {
	if len(b) == 0 {
		return Value{}, 0, ErrIncomplete
	}
	kind := b[0]
	switch kind {
	case '+', '-', ':', '$', '*':
	default:
		return Value{}, 0, &ProtocolError{Msg: "Protocol error: unknown reply type '" + string(b[:1]) + "'"}
	}
	line, n, err := replyLine(b)
	if err != nil {
		return Value{}, 0, err
	}
	v := Value{Kind: kind}
	switch kind {
	case '+', '-':
		v.Str = line
		return v, n, nil
	case ':':
		i, ok := parseInt(line)
		if !ok {
			return Value{}, 0, &ProtocolError{Msg: "Protocol error: invalid integer"}
		}
		v.Int = i
		return v, n, nil
	case '$':
		l, ok := parseInt(line)
		if !ok || l < -1 {
			return Value{}, 0, protoErr(msgInvalidBulk)
		}
		if l == -1 {
			v.Null = true
			return v, n, nil
		}
		if l > int64(len(b)-n) || int(l)+2 > len(b)-n {
			return Value{}, 0, ErrIncomplete
		}
		end := n + int(l)
		if b[end] != '\r' || b[end+1] != '\n' {
			return Value{}, 0, protoErr(msgInvalidBulk)
		}
		v.Str = b[n:end:end]
		return v, end + 2, nil
	}
	// '*'
	l, ok := parseInt(line)
	if !ok || l < -1 {
		return Value{}, 0, protoErr(msgInvalidMbulk)
	}
	if l == -1 {
		v.Null = true
		return v, n, nil
	}
	if depth >= maxDepth {
		return Value{}, 0, &ProtocolError{Msg: "Protocol error: reply nested too deeply"}
	}
	// Every element takes at least 3 bytes ("+\r\n"), so a count the rest of
	// b cannot hold means more input is needed, and the count can size the
	// slice without trusting the header.
	if l > int64(len(b)-n)/3 {
		return Value{}, 0, ErrIncomplete
	}
	v.Array = make([]Value, 0, l)
	for range l {
		e, m, err := parseValue(b[n:], depth+1)
		if err != nil {
			return Value{}, 0, err
		}
		v.Array = append(v.Array, e)
		n += m
	}
	return v, n, nil
}

// replyLine returns the text after the type byte up to CRLF, and the length
// of the whole line.
func replyLine(b []byte) ([]byte, int, error) {
	i := bytes.IndexAny(b[1:], "\r\n")
	if i < 0 {
		return nil, 0, ErrIncomplete
	}
	i++
	if b[i] == '\n' {
		return nil, 0, &ProtocolError{Msg: "Protocol error: bare LF in reply"}
	}
	if i+1 == len(b) {
		return nil, 0, ErrIncomplete
	}
	if b[i+1] != '\n' {
		return nil, 0, &ProtocolError{Msg: "Protocol error: CR not followed by LF in reply"}
	}
	return b[1:i:i], i + 2, nil
}

// ErrorReply splits an error reply into its code (the first word, such as
// ERR or WRONGTYPE) and the rest of its text; ok is false for any other
// reply.
func ErrorReply(b []byte) (code, msg string, ok bool) {
	if len(b) == 0 || b[0] != '-' {
		// Decided on one byte: a transaction operation's reply may be a
		// large array, not worth parsing to learn it is no error.
		return "", "", false
	}
	v, _, err := ParseValue(b)
	if err != nil || v.Kind != '-' {
		return "", "", false
	}
	code, msg, _ = strings.Cut(string(v.Str), " ")
	return code, msg, true
}
