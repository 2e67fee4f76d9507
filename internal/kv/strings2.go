package kv

import (
	"math/big"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// More string commands, with Redis 7.0's argument order and errors.
func init() {
	register(command.String,
		writer("getdel", 2, 1, 1, 1, evalGetdel),
		writer("getex", -2, 1, 1, 1, evalGetex),
		writer("setrange", 4, 1, 1, 1, evalSetrange),
		writer("incrbyfloat", 3, 1, 1, 1, evalIncrbyfloat),
		reader("getrange", 4, 1, 1, 1, evalGetrange),
		reader("substr", 4, 1, 1, 1, evalGetrange),
	)
}

func evalGetdel(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	switch {
	case err != nil:
		return out, err
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	case !it.ok:
		return resp.AppendNull(out), nil
	}
	out = resp.AppendBulk(out, it.v)
	return out, w.Del(args[1])
}

func evalGetex(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var persist bool
	var unit expiryUnit
	var expiry []byte
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case equalFold(a, "persist") && unit == 0:
			persist = true
		case unitOf(a) != 0 && !persist && (unit == 0 || unit == unitOf(a)) && i+1 < len(args):
			unit, expiry = unitOf(a), args[i+1]
			i++
		default:
			return appendErr(out, ErrSyntax), nil
		}
	}
	it, err := load(w, args[1])
	switch {
	case err != nil:
		return out, err
	case !it.ok:
		return resp.AppendNull(out), nil
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	}
	v := append([]byte(nil), it.v...)
	switch {
	case unit != 0:
		at, msg := expiryTime(w.NowMS(), expiry, unit, "getex")
		if msg != "" {
			return appendErr(out, msg), nil
		}
		if at <= w.NowMS() { // a time already past deletes the key
			err = w.Del(args[1])
		} else {
			err = w.Put(args[1], encodeString(v, at), false)
		}
	case persist && it.at != 0:
		err = w.Put(args[1], encodeString(v, 0), false)
	}
	return resp.AppendBulk(out, v), err
}

func evalGetrange(r Reader, args [][]byte, out []byte) ([]byte, error) {
	start, ok1 := ParseInt(args[2])
	end, ok2 := ParseInt(args[3])
	if !ok1 || !ok2 {
		return appendErr(out, ErrNotInteger), nil
	}
	it, err := load(r, args[1])
	switch {
	case err != nil:
		return out, err
	case !it.ok:
		return resp.AppendBulk(out, nil), nil
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	}
	n := int64(len(it.v))
	if start < 0 && end < 0 && start > end {
		return resp.AppendBulk(out, nil), nil
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return resp.AppendBulk(out, nil), nil
	}
	return resp.AppendBulk(out, it.v[start:end+1]), nil
}

func evalSetrange(w Writer, args [][]byte, out []byte) ([]byte, error) {
	offset, ok := ParseInt(args[2])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	if offset < 0 {
		return appendErr(out, "ERR offset is out of range"), nil
	}
	val := args[3]
	it, err := load(w, args[1])
	switch {
	case err != nil:
		return out, err
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	case len(val) == 0:
		return resp.AppendInt(out, int64(len(it.v))), nil // nothing to write (0 for no key)
	case offset > MaxValueBytes-int64(len(val)):
		return appendErr(out, ErrTooLarge), nil
	}
	cur := it.v
	if !it.ok {
		cur = nil
	}
	size := max(int64(len(cur)), offset+int64(len(val)))
	nv := make([]byte, size)
	copy(nv, cur)
	copy(nv[offset:], val)
	if err := w.Put(args[1], encodeString(nv, it.at), !it.present); err != nil {
		return out, err
	}
	return resp.AppendInt(out, size), nil
}

func evalIncrbyfloat(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	if err != nil {
		return out, err
	}
	if it.wrong {
		return appendErr(out, ErrWrongType), nil
	}
	cur := new(big.Float).SetPrec(longDoublePrec)
	if it.ok {
		var ok bool
		if cur, ok = parseLongDouble(it.v); !ok {
			return appendErr(out, errNotFloat), nil
		}
	}
	delta, ok := parseLongDouble(args[2])
	if !ok {
		return appendErr(out, errNotFloat), nil
	}
	s, ok := addLongDouble(cur, delta)
	if !ok {
		return appendErr(out, errNaNInf), nil
	}
	// The key keeps its expiry, as in Redis.
	if err := w.Put(args[1], encodeString(s, it.at), !it.present); err != nil {
		return out, err
	}
	return resp.AppendBulk(out, s), nil
}
