package kv

import (
	"bytes"
	"strconv"

	"github.com/kintsu/kintsu/internal/resp"
)

func init() {
	for _, c := range []*Command{
		{Name: "get", Arity: 2, FirstKey: 1, LastKey: 1, Step: 1, read: evalGet},
		{Name: "strlen", Arity: 2, FirstKey: 1, LastKey: 1, Step: 1, read: evalStrlen},
		{Name: "exists", Arity: -2, FirstKey: 1, LastKey: -1, Step: 1, read: evalExists},
		{Name: "mget", Arity: -2, FirstKey: 1, LastKey: -1, Step: 1, read: evalMget},
		{Name: "set", Arity: -3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalSet},
		{Name: "setnx", Arity: 3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalSetnx},
		{Name: "getset", Arity: 3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalGetset},
		{Name: "del", Arity: -2, Write: true, FirstKey: 1, LastKey: -1, Step: 1, write: evalDel},
		// UNLINK frees memory in the background in Redis; here it is DEL.
		{Name: "unlink", Arity: -2, Write: true, FirstKey: 1, LastKey: -1, Step: 1, write: evalDel},
		{Name: "incr", Arity: 2, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalIncrBy(1, false)},
		{Name: "decr", Arity: 2, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalIncrBy(-1, false)},
		{Name: "incrby", Arity: 3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalIncrBy(1, true)},
		{Name: "decrby", Arity: 3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalIncrBy(-1, true)},
		{Name: "append", Arity: 3, Write: true, FirstKey: 1, LastKey: 1, Step: 1, write: evalAppend},
		{Name: "mset", Arity: -3, Write: true, FirstKey: 1, LastKey: -1, Step: 2, write: evalMset},
		{Name: "msetnx", Arity: -3, Write: true, FirstKey: 1, LastKey: -1, Step: 2, write: evalMsetnx},
	} {
		register(c)
	}
}

func appendErr(out []byte, msg string) []byte { return resp.AppendError(out, msg) }

// getString reads key as a string. wrongType is set when the key holds
// another type.
func getString(r Reader, key []byte) (v []byte, ok, wrongType bool, err error) {
	stored, ok, err := r.Get(key)
	if err != nil || !ok {
		return nil, false, false, err
	}
	v, isStr := decodeString(stored)
	if !isStr {
		return nil, true, true, nil
	}
	return v, true, false, nil
}

func evalGet(r Reader, args [][]byte, out []byte) ([]byte, error) {
	v, ok, wrong, err := getString(r, args[1])
	switch {
	case err != nil:
		return out, err
	case wrong:
		return appendErr(out, ErrWrongType), nil
	case !ok:
		return resp.AppendNull(out), nil
	}
	return resp.AppendBulk(out, v), nil
}

func evalStrlen(r Reader, args [][]byte, out []byte) ([]byte, error) {
	v, _, wrong, err := getString(r, args[1])
	switch {
	case err != nil:
		return out, err
	case wrong:
		return appendErr(out, ErrWrongType), nil
	}
	return resp.AppendInt(out, int64(len(v))), nil
}

func evalExists(r Reader, args [][]byte, out []byte) ([]byte, error) {
	var n int64
	for _, k := range args[1:] {
		_, ok, err := r.Get(k)
		if err != nil {
			return out, err
		}
		if ok {
			n++
		}
	}
	return resp.AppendInt(out, n), nil
}

func evalMget(r Reader, args [][]byte, out []byte) ([]byte, error) {
	out = resp.AppendArrayHeader(out, len(args)-1)
	for _, k := range args[1:] {
		v, ok, wrong, err := getString(r, k)
		if err != nil {
			return out, err
		}
		if !ok || wrong { // MGET answers nil for non-strings, as Redis does
			out = resp.AppendNull(out)
			continue
		}
		out = resp.AppendBulk(out, v)
	}
	return out, nil
}

// setOptions is SET's parsed option list. ifeq/ifne (Redis 8.4 and
// Valkey 8.1) make SET a compare-and-set: cmp is the value compared with.
type setOptions struct {
	nx, xx, get bool
	ifeq, ifne  bool
	cmp         []byte
}

func (o setOptions) conditional() bool { return o.nx || o.xx || o.ifeq || o.ifne }

func parseSetOptions(args [][]byte) (setOptions, string) {
	var o setOptions
	for i := 3; i < len(args); i++ {
		a := args[i]
		switch {
		case equalFold(a, "nx") && (o.nx || !o.conditional()):
			o.nx = true
		case equalFold(a, "xx") && (o.xx || !o.conditional()):
			o.xx = true
		case (equalFold(a, "ifeq") || equalFold(a, "ifne")) && !o.conditional() && i+1 < len(args):
			o.ifeq, o.ifne = equalFold(a, "ifeq"), equalFold(a, "ifne")
			o.cmp = args[i+1]
			i++
		case equalFold(a, "get"):
			o.get = true
		case equalFold(a, "keepttl"):
			return o, ErrNoExpiry
		case equalFold(a, "ex") || equalFold(a, "px") || equalFold(a, "exat") || equalFold(a, "pxat"):
			if i+1 >= len(args) {
				return o, ErrSyntax
			}
			return o, ErrNoExpiry
		default:
			return o, ErrSyntax
		}
	}
	return o, ""
}

func evalSet(w Writer, args [][]byte, out []byte) ([]byte, error) {
	o, msg := parseSetOptions(args)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	old, exists, wrong, err := getString(w, args[1])
	if err != nil {
		return out, err
	}
	if (o.get || o.ifeq || o.ifne) && wrong {
		return appendErr(out, ErrWrongType), nil
	}
	reply := func(applied bool) []byte {
		switch {
		case o.get && exists:
			return resp.AppendBulk(out, old)
		case o.get:
			return resp.AppendNull(out)
		case applied:
			return resp.AppendSimple(out, "OK")
		default:
			return resp.AppendNull(out)
		}
	}
	if o.nx && exists || o.xx && !exists ||
		o.ifeq && (!exists || !bytes.Equal(old, o.cmp)) ||
		o.ifne && exists && bytes.Equal(old, o.cmp) {
		return reply(false), nil
	}
	// old aliases storage owned by the reader; copy before writing.
	if o.get && exists {
		old = append([]byte(nil), old...)
	}
	if err := w.Put(args[1], encodeString(args[2]), !exists); err != nil {
		return out, err
	}
	return reply(true), nil
}

func evalSetnx(w Writer, args [][]byte, out []byte) ([]byte, error) {
	_, exists, err := w.Get(args[1])
	if err != nil {
		return out, err
	}
	if exists {
		return resp.AppendInt(out, 0), nil
	}
	if err := w.Put(args[1], encodeString(args[2]), true); err != nil {
		return out, err
	}
	return resp.AppendInt(out, 1), nil
}

func evalGetset(w Writer, args [][]byte, out []byte) ([]byte, error) {
	old, exists, wrong, err := getString(w, args[1])
	if err != nil {
		return out, err
	}
	if wrong {
		return appendErr(out, ErrWrongType), nil
	}
	if exists {
		out = resp.AppendBulk(out, old)
	} else {
		out = resp.AppendNull(out)
	}
	if err := w.Put(args[1], encodeString(args[2]), !exists); err != nil {
		return out, err
	}
	return out, nil
}

func evalDel(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var n int64
	for _, k := range args[1:] {
		_, ok, err := w.Get(k)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		if err := w.Del(k); err != nil {
			return out, err
		}
		n++
	}
	return resp.AppendInt(out, n), nil
}

func evalIncrBy(sign int64, hasArg bool) func(Writer, [][]byte, []byte) ([]byte, error) {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		delta := sign
		if hasArg {
			d, ok := ParseInt(args[2])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			if sign < 0 {
				if d == -1<<63 {
					return appendErr(out, ErrDecrOverflow), nil
				}
				d = -d
			}
			delta = d
		}
		v, exists, wrong, err := getString(w, args[1])
		if err != nil {
			return out, err
		}
		if wrong {
			return appendErr(out, ErrWrongType), nil
		}
		var cur int64
		if exists {
			var ok bool
			if cur, ok = ParseInt(v); !ok {
				return appendErr(out, ErrNotInteger), nil
			}
		}
		if delta > 0 && cur > (1<<63-1)-delta || delta < 0 && cur < (-1<<63)-delta {
			return appendErr(out, ErrOverflow), nil
		}
		cur += delta
		if err := w.Put(args[1], encodeString(strconv.AppendInt(nil, cur, 10)), !exists); err != nil {
			return out, err
		}
		return resp.AppendInt(out, cur), nil
	}
}

func evalAppend(w Writer, args [][]byte, out []byte) ([]byte, error) {
	v, exists, wrong, err := getString(w, args[1])
	if err != nil {
		return out, err
	}
	if wrong {
		return appendErr(out, ErrWrongType), nil
	}
	if len(v)+len(args[2]) > MaxValueBytes {
		return appendErr(out, ErrTooLarge), nil
	}
	nv := make([]byte, 0, 1+len(v)+len(args[2]))
	nv = append(append(append(nv, typeString), v...), args[2]...)
	if err := w.Put(args[1], nv, !exists); err != nil {
		return out, err
	}
	return resp.AppendInt(out, int64(len(nv)-1)), nil
}

func evalMset(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if err := setPairs(w, args); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// setPairs stores every key-value pair of an MSET-shaped command.
func setPairs(w Writer, args [][]byte) error {
	for i := 1; i+1 < len(args); i += 2 {
		_, exists, err := w.Get(args[i])
		if err != nil {
			return err
		}
		if err := w.Put(args[i], encodeString(args[i+1]), !exists); err != nil {
			return err
		}
	}
	return nil
}

// evalMsetnx sets every pair only if none of the keys exists (of any
// type), answering 1, else changes nothing and answers 0.
func evalMsetnx(w Writer, args [][]byte, out []byte) ([]byte, error) {
	for i := 1; i+1 < len(args); i += 2 {
		_, exists, err := w.Get(args[i])
		if err != nil {
			return out, err
		}
		if exists {
			return resp.AppendInt(out, 0), nil
		}
	}
	if err := setPairs(w, args); err != nil {
		return out, err
	}
	return resp.AppendInt(out, 1), nil
}
