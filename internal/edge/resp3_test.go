package edge

import (
	"bytes"
	"strconv"

	"github.com/kintsu/kintsu/internal/resp"
)

// parse3 reads one reply of RESP2 or RESP3 for the interaction tests:
// RESP3's kinds keep their type byte as the Value's Kind (a map's
// elements flat, keys and values in turn).
func parse3(b []byte) (resp.Value, int, error) {
	if len(b) == 0 {
		return resp.Value{}, 0, resp.ErrIncomplete
	}
	switch b[0] {
	case '*', '%', '~', '>', ',', '_', '=', '#':
	default:
		return resp.ParseValue(b)
	}
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return resp.Value{}, 0, resp.ErrIncomplete
	}
	line, n := b[1:i], i+2
	switch b[0] {
	case ',', '#':
		return resp.Value{Kind: b[0], Str: line}, n, nil
	case '_':
		return resp.Value{Kind: '_', Null: true}, n, nil
	}
	l, err := strconv.Atoi(string(line))
	if err != nil {
		return resp.Value{}, 0, &resp.ProtocolError{Msg: "bad length"}
	}
	if b[0] == '=' {
		if len(b) < n+l+2 {
			return resp.Value{}, 0, resp.ErrIncomplete
		}
		return resp.Value{Kind: '=', Str: b[n : n+l]}, n + l + 2, nil
	}
	if l < 0 {
		return resp.Value{Kind: b[0], Null: true}, n, nil
	}
	if b[0] == '%' {
		l *= 2
	}
	v := resp.Value{Kind: b[0], Array: []resp.Value{}}
	for range l {
		e, m, err := parse3(b[n:])
		if err != nil {
			return resp.Value{}, 0, err
		}
		v.Array = append(v.Array, e)
		n += m
	}
	return v, n, nil
}

// render3 shows RESP3's own kinds; ok is false for RESP2's.
func render3(v resp.Value) (lines []string, ok bool) {
	switch v.Kind {
	case ',':
		return []string{"(double) " + string(v.Str) + "\n"}, true
	case '#':
		return []string{"(boolean) " + string(v.Str) + "\n"}, true
	case '_':
		return []string{"(null)\n"}, true
	case '=':
		return []string{"(verbatim) " + strconv.Quote(string(v.Str)) + "\n"}, true
	case '%', '~', '>':
		name := map[byte]string{'%': "(map)", '~': "(set)", '>': "(push)"}[v.Kind]
		a := v
		a.Kind = '*'
		return append([]string{name + "\n"}, render(a)...), true
	}
	return nil, false
}
