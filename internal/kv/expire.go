package kv

import (
	"fmt"
	"github.com/kintsu/kintsu/internal/command"
	"math"

	"github.com/kintsu/kintsu/internal/resp"
)

// Key expiry, as Redis has it: a key with an expiry time (Unix ms, stored
// with its value) is absent from the moment the time is reached. Writes
// decide that against their log entry's time, which the proposing leader
// stamped, so every replica agrees; reads against the serving leader's
// clock. An expired key stays stored until a write touches it (DEL, SET,
// ...) or the leader's expiry sweep removes it.
func init() {
	register(command.Keyspace,
		writer("expire", -3, 1, 1, 1, evalExpire(unitSec, "expire")),
		writer("pexpire", -3, 1, 1, 1, evalExpire(unitMS, "pexpire")),
		writer("expireat", -3, 1, 1, 1, evalExpire(unitSecAt, "expireat")),
		writer("pexpireat", -3, 1, 1, 1, evalExpire(unitMSAt, "pexpireat")),
		writer("persist", 2, 1, 1, 1, evalPersist),
		reader("ttl", 2, 1, 1, 1, evalTTL(false, false)),
		reader("pttl", 2, 1, 1, 1, evalTTL(true, false)),
		reader("expiretime", 2, 1, 1, 1, evalTTL(false, true)),
		reader("pexpiretime", 2, 1, 1, 1, evalTTL(true, true)),
	)
	register(command.String,
		writer("setex", 4, 1, 1, 1, evalSetex(unitSec, "setex")),
		writer("psetex", 4, 1, 1, 1, evalSetex(unitMS, "psetex")),
	)
	// Removes a key only if it has expired by the entry's time: the
	// leader's expiry sweep proposes it, so a key given a new life between
	// the sweep's look and the entry is left alone. Internal: no client may
	// send it.
	expired := writer(OpExpired, -2, 1, -1, 1, evalExpired)
	expired.Flags |= command.Internal
	register(command.CatInternal, expired)
}

// OpExpired is the expiry sweep's command (see evalExpired).
const OpExpired = "kintsu.expired"

// expiryUnit says how an expiry argument reads.
type expiryUnit int

const (
	unitNone  expiryUnit = iota
	unitSec              // seconds from now
	unitMS               // milliseconds from now
	unitSecAt            // Unix time in seconds
	unitMSAt             // Unix time in milliseconds
)

// unitOf reads SET's EX, PX, EXAT and PXAT.
func unitOf(a []byte) expiryUnit {
	switch {
	case equalFold(a, "ex"):
		return unitSec
	case equalFold(a, "px"):
		return unitMS
	case equalFold(a, "exat"):
		return unitSecAt
	case equalFold(a, "pxat"):
		return unitMSAt
	}
	return unitNone
}

func invalidExpire(cmd string) string {
	return fmt.Sprintf("ERR invalid expire time in '%s' command", cmd)
}

// absoluteMS turns an expiry argument into Unix ms, or answers Redis's
// error when it overflows.
func absoluteMS(now, n int64, unit expiryUnit, cmd string) (int64, string) {
	if unit == unitSec || unit == unitSecAt {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, invalidExpire(cmd)
		}
		n *= 1000
	}
	if unit == unitSec || unit == unitMS {
		if n > 0 && now > math.MaxInt64-n || n < 0 && now < math.MinInt64-n {
			return 0, invalidExpire(cmd)
		}
		n += now
	}
	return n, ""
}

// expiryTime reads SET's and SETEX's expiry: positive, then absolute.
func expiryTime(now int64, arg []byte, unit expiryUnit, cmd string) (int64, string) {
	n, ok := ParseInt(arg)
	if !ok {
		return 0, ErrNotInteger
	}
	if n <= 0 {
		return 0, invalidExpire(cmd)
	}
	at, msg := absoluteMS(now, n, unit, cmd)
	if msg == "" && at <= 0 {
		return 0, invalidExpire(cmd)
	}
	return at, msg
}

func evalExpire(unit expiryUnit, cmd string) func(Writer, [][]byte, []byte) ([]byte, error) {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		// Options first, then the time, in Redis's order: their errors
		// take precedence.
		var nx, xx, gt, lt bool
		for _, a := range args[3:] {
			switch {
			case equalFold(a, "nx"):
				nx = true
			case equalFold(a, "xx"):
				xx = true
			case equalFold(a, "gt"):
				gt = true
			case equalFold(a, "lt"):
				lt = true
			default:
				return appendErr(out, "ERR Unsupported option "+string(cutNUL(a))), nil
			}
		}
		switch {
		case nx && (xx || gt || lt):
			return appendErr(out, "ERR NX and XX, GT or LT options at the same time are not compatible"), nil
		case gt && lt:
			return appendErr(out, "ERR GT and LT options at the same time are not compatible"), nil
		}
		n, ok := ParseInt(args[2])
		if !ok {
			return appendErr(out, ErrNotInteger), nil
		}
		now := w.NowMS()
		at, msg := absoluteMS(now, n, unit, cmd)
		if msg != "" {
			return appendErr(out, msg), nil
		}
		it, err := load(w, args[1])
		if err != nil || !it.ok {
			return resp.AppendInt(out, 0), err
		}
		// No expiry counts as infinitely far away, as in Redis.
		if nx && it.at != 0 || xx && it.at == 0 || gt && (it.at == 0 || at <= it.at) || lt && it.at != 0 && at >= it.at {
			return resp.AppendInt(out, 0), nil
		}
		if at <= now { // a time in the past deletes the key
			err = delKey(w, args[1])
		} else {
			err = putExpiry(w, args[1], it, at)
		}
		if err != nil {
			return out, err
		}
		return resp.AppendInt(out, 1), nil
	}
}

func evalPersist(w Writer, args [][]byte, out []byte) ([]byte, error) {
	it, err := load(w, args[1])
	if err != nil || !it.ok || it.at == 0 {
		return resp.AppendInt(out, 0), err
	}
	if err := putExpiry(w, args[1], it, 0); err != nil {
		return out, err
	}
	return resp.AppendInt(out, 1), nil
}

// putExpiry gives the live key it (of any type) the expiry time at (0:
// none), keeping its value.
func putExpiry(w Writer, key []byte, it item, at int64) error {
	if !it.wrong {
		return w.Put(key, encodeString(it.v, at), false)
	}
	stored, _, err := w.Get(key)
	if err != nil {
		return err
	}
	return w.Put(key, withExpiry(stored, at), false)
}

func evalSetex(unit expiryUnit, cmd string) func(Writer, [][]byte, []byte) ([]byte, error) {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		at, msg := expiryTime(w.NowMS(), args[2], unit, cmd)
		if msg != "" {
			return appendErr(out, msg), nil
		}
		_, present, err := w.Get(args[1])
		if err != nil {
			return out, err
		}
		if err := w.Put(args[1], encodeString(args[3], at), !present); err != nil {
			return out, err
		}
		return resp.AppendSimple(out, "OK"), nil
	}
}

// evalTTL answers TTL/PTTL (time left) or EXPIRETIME/PEXPIRETIME (the
// time itself): -2 for no key, -1 for no expiry; seconds are rounded to
// the nearest, as in Redis.
func evalTTL(ms, abs bool) func(Reader, [][]byte, []byte) ([]byte, error) {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		it, err := load(r, args[1])
		switch {
		case err != nil:
			return out, err
		case !it.ok:
			return resp.AppendInt(out, -2), nil
		case it.at == 0:
			return resp.AppendInt(out, -1), nil
		}
		t := it.at
		if !abs {
			t = max(it.at-r.NowMS(), 0)
		}
		if !ms {
			t = (t + 500) / 1000
		}
		return resp.AppendInt(out, t), nil
	}
}

// evalExpired removes the given keys that have expired by now and answers
// how many it removed.
func evalExpired(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var n int64
	for _, k := range args[1:] {
		stored, present, err := w.Get(k)
		if err != nil {
			return out, err
		}
		if present && Expired(stored, w.NowMS()) {
			if err := dropStored(w, k, stored); err != nil {
				return out, err
			}
			n++
		}
	}
	return resp.AppendInt(out, n), nil
}
