package kv

import (
	"bytes"
	"github.com/kintsu/kintsu/internal/command"
	"strconv"

	"github.com/kintsu/kintsu/internal/resp"
)

func init() {
	register(command.String,
		reader("get", 2, 1, 1, 1, evalGet),
		reader("strlen", 2, 1, 1, 1, evalStrlen),
		reader("mget", -2, 1, -1, 1, evalMget).merging(command.MergeByPosition),
		writer("set", -3, 1, 1, 1, evalSet),
		writer("setnx", 3, 1, 1, 1, evalSetnx),
		writer("getset", 3, 1, 1, 1, evalGetset),
		writer("incr", 2, 1, 1, 1, evalIncrBy(1, false)),
		writer("decr", 2, 1, 1, 1, evalIncrBy(-1, false)),
		writer("incrby", 3, 1, 1, 1, evalIncrBy(1, true)),
		writer("decrby", 3, 1, 1, 1, evalIncrBy(-1, true)),
		writer("append", 3, 1, 1, 1, evalAppend),
		writer("mset", -3, 1, -1, 2, evalMset).merging(command.MergeFirst),
		// All or nothing: across partitions a share that answers 0
		// vetoes the whole command.
		writer("msetnx", -3, 1, -1, 2, evalMsetnx).merging(command.MergeAllOrNothing),
	)
	register(command.Keyspace,
		reader("exists", -2, 1, -1, 1, evalExists).merging(command.MergeSum),
		writer("del", -2, 1, -1, 1, evalDel).merging(command.MergeSum),
		// UNLINK frees memory in the background in Redis; here it is DEL.
		writer("unlink", -2, 1, -1, 1, evalDel).merging(command.MergeSum),
	)
}

func appendErr(out []byte, msg string) []byte { return resp.AppendError(out, msg) }

// item is a key as commands see it: an expired key is absent, but a write
// must still know whether something is stored (to keep the key count
// right, and so DEL removes it).
type item struct {
	v       []byte // string payload; aliases storage owned by the reader
	at      int64  // expiry time (Unix ms), 0 for none
	ok      bool   // the key exists and has not expired
	present bool   // something is stored, expired or not
	wrong   bool   // it holds another type (at is still its expiry)
}

func load(r Reader, key []byte) (item, error) {
	stored, present, err := r.Get(key)
	if err != nil || !present {
		return item{}, err
	}
	if at := expiryOf(stored); at != 0 && at <= r.NowMS() {
		return item{present: true}, nil
	}
	v, at, isStr := decodeString(stored)
	if !isStr {
		return item{at: expiryOf(stored), ok: true, present: true, wrong: true}, nil
	}
	return item{v: v, at: at, ok: true, present: true}, nil
}

func evalGet(r Reader, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(r, args[1])
	switch {
	case err != nil:
		return out, err
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	case !it.ok:
		return resp.AppendNull(out), nil
	}
	return resp.AppendBulk(out, it.v), nil
}

func evalStrlen(r Reader, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(r, args[1])
	switch {
	case err != nil:
		return out, err
	case it.wrong:
		return appendErr(out, ErrWrongType), nil
	}
	return resp.AppendInt(out, int64(len(it.v))), nil
}

func evalExists(r Reader, args [][]byte, out []byte) ([]byte, error) {
	var n int64
	for _, k := range args[1:] {
		it, err := load(r, k)
		if err != nil {
			return out, err
		}
		if it.ok {
			n++
		}
	}
	return resp.AppendInt(out, n), nil
}

func evalMget(r Reader, args [][]byte, out []byte) ([]byte, error) {
	out = resp.AppendArrayHeader(out, len(args)-1)
	for _, k := range args[1:] {
		it, err := load(r, k)
		if err != nil {
			return out, err
		}
		if !it.ok || it.wrong { // MGET answers nil for non-strings, as Redis does
			out = resp.AppendNull(out)
			continue
		}
		out = resp.AppendBulk(out, it.v)
	}
	return out, nil
}

// setOptions is SET's parsed option list. ifeq/ifne (Redis 8.4 and
// Valkey 8.1) make SET a compare-and-set: cmp is the value compared with.
// expiry is EX/PX/EXAT/PXAT's argument, in the unit unit says.
type setOptions struct {
	nx, xx, get bool
	ifeq, ifne  bool
	cmp         []byte
	keepTTL     bool
	unit        expiryUnit // 0: no expiry option
	expiry      []byte
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
		// Redis lets an expiry option repeat (the last one counts) but
		// not meet another.
		case equalFold(a, "keepttl") && o.unit == 0:
			o.keepTTL = true
		case unitOf(a) != 0 && !o.keepTTL && (o.unit == 0 || o.unit == unitOf(a)) && i+1 < len(args):
			o.unit, o.expiry = unitOf(a), args[i+1]
			i++
		default:
			return o, ErrSyntax
		}
	}
	return o, ""
}

func evalSet(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if len(args) == 3 {
		// No option: nothing of the old value matters (a SET replaces a
		// value of any type, and its TTL). A blind write.
		if err := w.PutBlind(args[1], encodeString(args[2], 0)); err != nil {
			return out, err
		}
		return resp.AppendSimple(out, "OK"), nil
	}
	o, msg := parseSetOptions(args)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	var at int64
	if o.unit != 0 {
		var msg string
		if at, msg = expiryTime(w.NowMS(), o.expiry, o.unit, "set"); msg != "" {
			return appendErr(out, msg), nil
		}
	}
	old, err := load(w, args[1])
	if err != nil {
		return out, err
	}
	if (o.get || o.ifeq || o.ifne) && old.wrong {
		return appendErr(out, ErrWrongType), nil
	}
	reply := func(applied bool) []byte {
		switch {
		case o.get && old.ok:
			return resp.AppendBulk(out, old.v)
		case o.get:
			return resp.AppendNull(out)
		case applied:
			return resp.AppendSimple(out, "OK")
		default:
			return resp.AppendNull(out)
		}
	}
	if o.nx && old.ok || o.xx && !old.ok ||
		o.ifeq && (!old.ok || !bytes.Equal(old.v, o.cmp)) ||
		o.ifne && old.ok && bytes.Equal(old.v, o.cmp) {
		return reply(false), nil
	}
	if o.keepTTL && old.ok {
		at = old.at
	}
	// old.v aliases storage owned by the reader; copy before writing.
	if o.get && old.ok {
		old.v = append([]byte(nil), old.v...)
	}
	if err := w.Put(args[1], encodeString(args[2], at), !old.present); err != nil {
		return out, err
	}
	return reply(true), nil
}

func evalSetnx(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	if err != nil {
		return out, err
	}
	if it.ok {
		return resp.AppendInt(out, 0), nil
	}
	if err := w.Put(args[1], encodeString(args[2], 0), !it.present); err != nil {
		return out, err
	}
	return resp.AppendInt(out, 1), nil
}

func evalGetset(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	if err != nil {
		return out, err
	}
	if it.wrong {
		return appendErr(out, ErrWrongType), nil
	}
	if it.ok {
		out = resp.AppendBulk(out, it.v)
	} else {
		out = resp.AppendNull(out)
	}
	if err := w.Put(args[1], encodeString(args[2], 0), !it.present); err != nil {
		return out, err
	}
	return out, nil
}

// evalDel counts the keys that existed; expired ones are removed too, but
// not counted.
func evalDel(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var n int64
	for _, k := range args[1:] {
		stored, present, err := w.Get(k)
		if err != nil {
			return out, err
		}
		if !present {
			continue
		}
		live := !Expired(stored, w.NowMS())
		if err := dropStored(w, k, stored); err != nil {
			return out, err
		}
		if live {
			n++
		}
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
		it, err := load(w, args[1])
		if err != nil {
			return out, err
		}
		if it.wrong {
			return appendErr(out, ErrWrongType), nil
		}
		var cur int64
		if it.ok {
			var ok bool
			if cur, ok = ParseInt(it.v); !ok {
				return appendErr(out, ErrNotInteger), nil
			}
		}
		if delta > 0 && cur > (1<<63-1)-delta || delta < 0 && cur < (-1<<63)-delta {
			return appendErr(out, ErrOverflow), nil
		}
		cur += delta
		// The key keeps its expiry, as in Redis.
		if err := w.Put(args[1], encodeString(strconv.AppendInt(nil, cur, 10), it.at), !it.present); err != nil {
			return out, err
		}
		return resp.AppendInt(out, cur), nil
	}
}

func evalAppend(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	if err != nil {
		return out, err
	}
	if it.wrong {
		return appendErr(out, ErrWrongType), nil
	}
	if len(it.v)+len(args[2]) > MaxValueBytes {
		return appendErr(out, ErrTooLarge), nil
	}
	nv := make([]byte, 0, len(it.v)+len(args[2]))
	nv = append(append(nv, it.v...), args[2]...)
	if err := w.Put(args[1], encodeString(nv, it.at), !it.present); err != nil {
		return out, err
	}
	return resp.AppendInt(out, int64(len(nv))), nil
}

func evalMset(w Writer, args [][]byte, out []byte) ([]byte, error) {
	if err := setPairs(w, args); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// setPairs stores every key-value pair of an MSET-shaped command (without
// expiry, as SET without KEEPTTL), blind as a plain SET.
func setPairs(w Writer, args [][]byte) error {
	for i := 1; i+1 < len(args); i += 2 {
		if err := w.PutBlind(args[i], encodeString(args[i+1], 0)); err != nil {
			return err
		}
	}
	return nil
}

// evalMsetnx sets every pair only if none of the keys exists (of any
// type), answering 1, else changes nothing and answers 0.
func evalMsetnx(w Writer, args [][]byte, out []byte) ([]byte, error) {
	for i := 1; i+1 < len(args); i += 2 {
		it, err := load(w, args[i])
		if err != nil {
			return out, err
		}
		if it.ok {
			return resp.AppendInt(out, 0), nil
		}
	}
	// The keys were read already: store them counted, not blind (a key
	// may repeat, so each is looked at again as it is stored).
	for i := 1; i+1 < len(args); i += 2 {
		_, present, err := w.Get(args[i])
		if err != nil {
			return out, err
		}
		if err := w.Put(args[i], encodeString(args[i+1], 0), !present); err != nil {
			return out, err
		}
	}
	return resp.AppendInt(out, 1), nil
}
