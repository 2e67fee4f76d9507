package resp

import "strconv"

// RESP3 (HELLO 3). The data layer answers every command in RESP2; a
// connection that speaks RESP3 has each reply rewritten here, by the
// shape its command gives it in Redis: nulls become RESP3's null, and
// where Redis answers a map, a set, a double or pairs, the RESP2 array or
// bulk string becomes one. A reply this cannot read (RESP3 already, or
// malformed) is left as it is.

// Shape is how a command's RESP2 reply reads in RESP3.
type Shape uint8

const (
	ShapePlain      Shape = iota // only nulls change
	ShapeMap                     // a flat array of pairs is a map (HGETALL, CONFIG GET)
	ShapeSet                     // an array is a set (SMEMBERS, SINTER)
	ShapeDouble                  // a bulk string is a double (ZSCORE, ZINCRBY)
	ShapeDoubles                 // each element is a double (ZMSCORE)
	ShapePairs                   // a flat array of pairs is an array of pairs (HRANDFIELD WITHVALUES)
	ShapeScorePairs              // as ShapePairs, the second of each a double (ZRANGE WITHSCORES)
	ShapeLastDouble              // the array's last element is a double (ZPOPMIN without count, BZPOPMIN)
	ShapeKeyScores               // [key, [[member, score]...]]: the scores are doubles (ZMPOP)
	ShapeVerbatim                // a bulk string is verbatim text (INFO, CLIENT LIST)
	ShapePush                    // each array is a push (Pub/Sub's messages and confirmations)
)

// Null is RESP3's null.
const Null = "_\r\n"

// AppendMapHeader begins a map of n pairs.
func AppendMapHeader(b []byte, n int) []byte { return appendHeader(b, '%', n) }

// AppendSetHeader begins a set of n elements.
func AppendSetHeader(b []byte, n int) []byte { return appendHeader(b, '~', n) }

// AppendPushHeader begins a push of n elements.
func AppendPushHeader(b []byte, n int) []byte { return appendHeader(b, '>', n) }

func appendHeader(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendDouble appends a double given as Redis's text for it.
func AppendDouble(b []byte, text []byte) []byte {
	b = append(b, ',')
	b = append(b, text...)
	return append(b, '\r', '\n')
}

// AppendVerbatim appends verbatim text.
func AppendVerbatim(b []byte, text []byte) []byte {
	b = append(b, '=')
	b = strconv.AppendInt(b, int64(len(text)+4), 10)
	b = append(b, "\r\ntxt:"...)
	b = append(b, text...)
	return append(b, '\r', '\n')
}

// ToRESP3 rewrites a RESP2 reply (or, for ShapePush, several in a row)
// as RESP3 by its shape.
func ToRESP3(reply []byte, s Shape) []byte {
	if len(reply) == 0 {
		return reply
	}
	switch reply[0] {
	case '+', '-', ':':
		return reply // the same in both
	case '$':
		if s == ShapePlain && reply[1] != '-' {
			return reply // the hot path: a bulk string
		}
	}
	if s == ShapePlain {
		// Only nulls change: copy nothing when there are none, and
		// never build the reply's tree (an MGET's may be huge).
		_, n, changed, err := plainNulls(nil, reply, 0, false)
		if err != nil || n != len(reply) || !changed {
			return reply
		}
		out, _, _, _ := plainNulls(make([]byte, 0, n+8), reply, 0, true)
		return out
	}
	out := make([]byte, 0, len(reply)+8)
	for rest := reply; len(rest) > 0; {
		v, n, err := ParseValue(rest)
		if err != nil {
			return reply
		}
		out = appendShaped(out, v, s)
		rest = rest[n:]
		if s != ShapePush {
			if len(rest) > 0 {
				return reply
			}
			break
		}
	}
	return out
}

func appendShaped(out []byte, v Value, s Shape) []byte {
	if v.Null {
		return append(out, Null...)
	}
	switch s {
	case ShapeDouble:
		if v.Kind == '$' {
			return AppendDouble(out, v.Str)
		}
	case ShapeVerbatim:
		if v.Kind == '$' {
			return AppendVerbatim(out, v.Str)
		}
	}
	if v.Kind != '*' {
		return appendPlain(out, v)
	}
	switch s {
	case ShapeMap:
		if len(v.Array)%2 == 0 {
			out = AppendMapHeader(out, len(v.Array)/2)
			for _, e := range v.Array {
				out = appendPlain(out, e)
			}
			return out
		}
	case ShapeSet:
		out = AppendSetHeader(out, len(v.Array))
		for _, e := range v.Array {
			out = appendPlain(out, e)
		}
		return out
	case ShapePush:
		out = AppendPushHeader(out, len(v.Array))
		for _, e := range v.Array {
			out = appendPlain(out, e)
		}
		return out
	case ShapeDoubles:
		out = AppendArrayHeader(out, len(v.Array))
		for _, e := range v.Array {
			out = appendShaped(out, e, ShapeDouble)
		}
		return out
	case ShapePairs, ShapeScorePairs:
		if len(v.Array)%2 == 0 {
			out = AppendArrayHeader(out, len(v.Array)/2)
			for i := 0; i < len(v.Array); i += 2 {
				out = AppendArrayHeader(out, 2)
				out = appendPlain(out, v.Array[i])
				if s == ShapeScorePairs {
					out = appendShaped(out, v.Array[i+1], ShapeDouble)
				} else {
					out = appendPlain(out, v.Array[i+1])
				}
			}
			return out
		}
	case ShapeLastDouble:
		out = AppendArrayHeader(out, len(v.Array))
		for i, e := range v.Array {
			if i == len(v.Array)-1 {
				out = appendShaped(out, e, ShapeDouble)
			} else {
				out = appendPlain(out, e)
			}
		}
		return out
	case ShapeKeyScores:
		if len(v.Array) == 2 && v.Array[1].Kind == '*' {
			out = AppendArrayHeader(out, 2)
			out = appendPlain(out, v.Array[0])
			out = AppendArrayHeader(out, len(v.Array[1].Array))
			for _, p := range v.Array[1].Array {
				out = appendShaped(out, p, ShapeLastDouble)
			}
			return out
		}
	}
	return appendPlain(out, v)
}

// appendPlain writes v in RESP3 with only its nulls changed.
func appendPlain(out []byte, v Value) []byte {
	switch {
	case v.Null:
		return append(out, Null...)
	case v.Kind == '*':
		out = AppendArrayHeader(out, len(v.Array))
		for _, e := range v.Array {
			out = appendPlain(out, e)
		}
		return out
	case v.Kind == '$':
		return AppendBulk(out, v.Str)
	case v.Kind == ':':
		return AppendInt(out, v.Int)
	case v.Kind == '-':
		out = append(out, '-')
		out = append(out, v.Str...)
		return append(out, '\r', '\n')
	}
	out = append(out, '+')
	out = append(out, v.Str...)
	return append(out, '\r', '\n')
}

// plainNulls walks one RESP2 value at the start of b, counting its bytes
// (n) and noting whether it holds a null; with build, it appends the
// value with its nulls as RESP3's to out. ToRESP3 walks without build
// first: only a reply with nulls is copied.
func plainNulls(out, b []byte, depth int, build bool) ([]byte, int, bool, error) {
	if depth > maxDepth || len(b) < 3 {
		return out, 0, false, ErrIncomplete
	}
	line, n, err := replyLine(b)
	if err != nil {
		return out, 0, false, err
	}
	switch b[0] {
	case '+', '-', ':':
		if build {
			out = append(out, b[:n]...)
		}
		return out, n, false, nil
	case '$':
		l, ok := parseInt(line)
		if !ok || l < -1 {
			return out, 0, false, protoErr(msgInvalidBulk)
		}
		if l == -1 {
			if build {
				out = append(out, Null...)
			}
			return out, n, true, nil
		}
		end := n + int(l) + 2
		if l > int64(len(b)) || end > len(b) {
			return out, 0, false, ErrIncomplete
		}
		if build {
			out = append(out, b[:end]...)
		}
		return out, end, false, nil
	case '*':
		l, ok := parseInt(line)
		if !ok || l < -1 {
			return out, 0, false, protoErr(msgInvalidMbulk)
		}
		if l == -1 {
			if build {
				out = append(out, Null...)
			}
			return out, n, true, nil
		}
		if l > int64(len(b)-n)/3 {
			return out, 0, false, ErrIncomplete
		}
		if build {
			out = append(out, b[:n]...)
		}
		changed := false
		for range l {
			var m int
			var c bool
			var err error
			if out, m, c, err = plainNulls(out, b[n:], depth+1, build); err != nil {
				return out, 0, false, err
			}
			n += m
			changed = changed || c
		}
		return out, n, changed, nil
	}
	return out, 0, false, &ProtocolError{Msg: "Protocol error: unknown reply type"}
}
