package kv

import (
	"errors"
	"math"
	"strconv"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/rdb"
	"github.com/kintsu/kintsu/internal/resp"
)

// DUMP and RESTORE, in Redis 7.0's payload format (package rdb), so keys
// move between Redis and Kintsu both ways. DUMP reads the whole value
// through the type's own read (GET, LRANGE, SMEMBERS, ZRANGE, HGETALL);
// RESTORE decodes the payload in the apply (deterministic: every replica
// decodes the same bytes) and builds the key with the type's own writes,
// all in the one entry, so it is atomic. The payload is bounded as every
// argument is, and decoding allocates at most what that justifies.
func init() {
	register(command.Keyspace,
		reader("dump", 2, 1, 1, 1, evalDump),
		writer("restore", -4, 1, 1, 1, evalRestore),
	)
}

// maxRestoreBytes bounds what a RESTORE may decode.
const maxRestoreBytes = MaxValueBytes * 4

// Restorable reports whether RESTORE would take payload (its format and
// its size): a transaction that moves a value by DUMP and RESTORE checks
// it first, since a RESTORE refused in one partition of a transaction
// does not stop the others.
func Restorable(payload []byte) bool {
	_, err := rdb.ParseLimit(payload, maxRestoreBytes)
	return err == nil
}

func evalDump(r Reader, args [][]byte, out []byte) ([]byte, error) {
	v, ok, err := dumpValue(r, args[1])
	if err != nil || !ok {
		return resp.AppendNull(out), err
	}
	return resp.AppendBulk(out, rdb.Dump(v)), nil
}

// dumpValue reads key's whole value; ok is false when it does not exist.
func dumpValue(r Reader, key []byte) (*rdb.Value, bool, error) {
	stored, ok, err := r.Get(key)
	if err != nil || !ok || Expired(stored, r.NowMS()) {
		return nil, false, err
	}
	var v *rdb.Value
	switch typeName(stored) {
	case "string":
		reply, err := readWith(r, [][]byte{[]byte("get"), key})
		if err != nil {
			return nil, false, err
		}
		s, _, perr := resp.ParseValue(reply)
		if perr != nil || s.Kind != '$' {
			return nil, false, errors.New("dump: unreadable string")
		}
		v = &rdb.Value{Kind: rdb.String, Str: s.Str}
	default:
		name, args := "", []string(nil)
		kind := rdb.List
		switch typeName(stored) {
		case "list":
			name, args = "lrange", []string{"0", "-1"}
		case "set":
			name, kind = "smembers", rdb.Set
		case "zset":
			name, args, kind = "zrange", []string{"0", "-1", "withscores"}, rdb.ZSet
		case "hash":
			name, kind = "hgetall", rdb.Hash
		default:
			return nil, false, errors.New("dump: unknown type")
		}
		a := [][]byte{[]byte(name), key}
		for _, s := range args {
			a = append(a, []byte(s))
		}
		reply, err := readWith(r, a)
		if err != nil {
			return nil, false, err
		}
		arr, _, perr := resp.ParseValue(reply)
		if perr != nil || arr.Kind != '*' {
			return nil, false, errors.New("dump: unreadable collection")
		}
		v = &rdb.Value{Kind: kind}
		switch kind {
		case rdb.List, rdb.Set:
			for _, e := range arr.Array {
				v.Elems = append(v.Elems, e.Str)
			}
		case rdb.ZSet:
			for i := 0; i+1 < len(arr.Array); i += 2 {
				score, ok := parseScore(arr.Array[i+1].Str)
				if !ok {
					return nil, false, errors.New("dump: unreadable score")
				}
				v.Scores = append(v.Scores, rdb.ScoredMember{Member: arr.Array[i].Str, Score: score})
			}
		case rdb.Hash:
			for i := 0; i+1 < len(arr.Array); i += 2 {
				v.Pairs = append(v.Pairs, rdb.Pair{Field: arr.Array[i].Str, Value: arr.Array[i+1].Str})
			}
		}
	}
	return v, true, nil
}

// readWith runs a read command against r.
func readWith(r Reader, args [][]byte) ([]byte, error) {
	return Of(command.Lookup(args[0])).Read(r, args, nil)
}

// evalRestore is RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s]
// [FREQ f], with Redis's checks in Redis's order.
func evalRestore(w Writer, args [][]byte, out []byte) ([]byte, error) {
	replace, absTTL := false, false
	idle, freq := false, false
	for j := 4; j < len(args); j++ {
		more := len(args) - j - 1
		switch {
		case equalFold(args[j], "replace"):
			replace = true
		case equalFold(args[j], "absttl"):
			absTTL = true
		case equalFold(args[j], "idletime") && more >= 1 && !freq:
			n, ok := ParseInt(args[j+1])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			if n < 0 {
				return appendErr(out, "ERR Invalid IDLETIME value, must be >= 0"), nil
			}
			idle = true
			j++
		case equalFold(args[j], "freq") && more >= 1 && !idle:
			n, ok := ParseInt(args[j+1])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			if n < 0 || n > 255 {
				return appendErr(out, "ERR Invalid FREQ value, must be >= 0 and <= 255"), nil
			}
			freq = true
			j++
		default:
			return appendErr(out, ErrSyntax), nil
		}
	}
	key := args[1]
	it, err := load(w, key)
	if err != nil {
		return out, err
	}
	if !replace && it.ok {
		return appendErr(out, "BUSYKEY Target key name already exists."), nil
	}
	ttl, ok := ParseInt(args[2])
	switch {
	case !ok:
		return appendErr(out, ErrNotInteger), nil
	case ttl < 0:
		return appendErr(out, "ERR Invalid TTL value, must be >= 0"), nil
	}
	v, err := rdb.ParseLimit(args[3], maxRestoreBytes)
	switch {
	case errors.Is(err, rdb.ErrVersionOrChecksum):
		return appendErr(out, "ERR DUMP payload version or checksum are wrong"), nil
	case err != nil:
		return appendErr(out, "ERR Bad data format"), nil
	}
	if replace && it.ok {
		if err := delKey(w, key); err != nil {
			return out, err
		}
	}
	if ttl > 0 && !absTTL {
		ttl += w.NowMS()
	}
	if ttl > 0 && ttl <= w.NowMS() {
		return resp.AppendSimple(out, "OK"), nil // already expired: nothing is created
	}
	if err := restoreValue(w, key, v); err != nil {
		return out, err
	}
	if ttl > 0 {
		reply, err := Exec(w, command.Lookup([]byte("pexpireat")), [][]byte{[]byte("pexpireat"), key, strconv.AppendInt(nil, ttl, 10)}, nil)
		if err != nil {
			return out, err
		}
		if len(reply) > 0 && reply[0] == '-' {
			return append(out, reply...), nil
		}
	}
	return resp.AppendSimple(out, "OK"), nil
}

// restoreBatch bounds the arguments of one of the writes that build a
// restored collection.
const restoreBatch = 1024

// restoreValue builds key (absent) from v with the type's own writes.
func restoreValue(w Writer, key []byte, v *rdb.Value) error {
	run := func(name string, rest [][]byte) error {
		args := append([][]byte{[]byte(name), key}, rest...)
		reply, err := Exec(w, command.Lookup(args[0]), args, nil)
		if err != nil {
			return err
		}
		if len(reply) > 0 && reply[0] == '-' {
			return errors.New("restore: " + string(reply[1:]))
		}
		return nil
	}
	var name string
	var flat [][]byte
	switch v.Kind {
	case rdb.String:
		return run("set", [][]byte{v.Str})
	case rdb.List:
		name, flat = "rpush", v.Elems
	case rdb.Set:
		name, flat = "sadd", v.Elems
	case rdb.ZSet:
		name = "zadd"
		for _, m := range v.Scores {
			score := strconv.AppendFloat(nil, m.Score, 'g', 17, 64)
			if math.IsInf(m.Score, 0) {
				score = []byte(map[bool]string{true: "+inf", false: "-inf"}[m.Score > 0])
			}
			flat = append(flat, score, m.Member)
		}
	case rdb.Hash:
		name = "hset"
		for _, p := range v.Pairs {
			flat = append(flat, p.Field, p.Value)
		}
	}
	step := restoreBatch
	if name == "zadd" || name == "hset" {
		step *= 2 // pairs
	}
	for i := 0; i < len(flat); i += step {
		if err := run(name, flat[i:min(i+step, len(flat))]); err != nil {
			return err
		}
	}
	return nil
}
