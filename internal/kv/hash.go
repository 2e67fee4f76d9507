package kv

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Hashes: a field is a sub-key (hashedSub: its hash, then the field), its
// value the sub-key's value. The metadata record counts the fields.
func init() {
	register(command.Hash,
		writer("hset", -4, 1, 1, 1, evalHset("hset")),
		writer("hmset", -4, 1, 1, 1, evalHset("hmset")),
		writer("hsetnx", 4, 1, 1, 1, evalHsetnx),
		writer("hdel", -3, 1, 1, 1, evalHdel),
		writer("hincrby", 4, 1, 1, 1, evalHincrby),
		writer("hincrbyfloat", 4, 1, 1, 1, evalHincrbyfloat),
		reader("hget", 3, 1, 1, 1, evalHget),
		reader("hmget", -3, 1, 1, 1, evalHmget),
		reader("hexists", 3, 1, 1, 1, evalHexists),
		reader("hlen", 2, 1, 1, 1, evalHlen),
		reader("hstrlen", 3, 1, 1, 1, evalHstrlen),
		reader("hkeys", 2, 1, 1, 1, evalHall(true, false)),
		reader("hvals", 2, 1, 1, 1, evalHall(false, true)),
		reader("hgetall", 2, 1, 1, 1, evalHall(true, true)),
		reader("hrandfield", -2, 1, 1, 1, evalRandMember(typeHash, 0, "withvalues", resp.AppendBulk)),
		reader("hscan", -3, 1, 1, 1, evalHscan),
	)
	register(command.Keyspace,
		reader("type", 2, 1, 1, 1, evalType),
	)
}

const (
	errHashNotInt   = "ERR hash value is not an integer"
	errHashNotFloat = "ERR hash value is not a float"
	errNotFloat     = "ERR value is not a valid float"
	errNaNInf       = "ERR increment would produce NaN or Infinity"
	errOutOfRange   = "ERR value is out of range"
	errInvalidCur   = "ERR invalid cursor"
)

func evalType(r Reader, args [][]byte, out []byte) ([]byte, error) {
	stored, ok, err := r.Get(args[1])
	if err != nil {
		return out, err
	}
	if !ok || Expired(stored, r.NowMS()) {
		return resp.AppendSimple(out, "none"), nil
	}
	return resp.AppendSimple(out, typeName(stored)), nil
}

// hashField reads one field of a live hash.
func hashField(r Reader, key []byte, h coll, field []byte) ([]byte, bool, error) {
	if !h.ok {
		return nil, false, nil
	}
	return r.GetSub(key, h.ver, hashedSub(field))
}

// hput stores field in h (created or not) and counts a new one.
func hput(w Writer, key []byte, h *coll, field, v []byte) (added bool, err error) {
	sub := hashedSub(field)
	_, exists, err := w.GetSub(key, h.ver, sub)
	if err != nil {
		return false, err
	}
	if !exists {
		h.n++
	}
	return !exists, w.PutSub(key, h.ver, sub, v)
}

func evalHset(name string) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		if len(args)%2 == 1 {
			return appendErr(out, WrongArity(name)), nil
		}
		h, err := loadColl(w, args[1], typeHash)
		if err != nil || h.wrong {
			return wrongOr(out, err)
		}
		if err := h.create(w, args[1], typeHash); err != nil {
			return out, err
		}
		var added int64
		for i := 2; i < len(args); i += 2 {
			a, err := hput(w, args[1], &h, args[i], args[i+1])
			if err != nil {
				return out, err
			}
			if a {
				added++
			}
		}
		if err := h.save(w, args[1]); err != nil {
			return out, err
		}
		if name == "hmset" {
			return resp.AppendSimple(out, "OK"), nil
		}
		return resp.AppendInt(out, added), nil
	}
}

// wrongOr answers a storage error as itself, anything else as WRONGTYPE.
func wrongOr(out []byte, err error) ([]byte, error) {
	if err != nil {
		return out, err
	}
	return appendErr(out, ErrWrongType), nil
}

func evalHsetnx(w Writer, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(w, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	if _, exists, err := hashField(w, args[1], h, args[2]); err != nil || exists {
		return resp.AppendInt(out, 0), err
	}
	if err := h.create(w, args[1], typeHash); err != nil {
		return out, err
	}
	if _, err := hput(w, args[1], &h, args[2], args[3]); err != nil {
		return out, err
	}
	return resp.AppendInt(out, 1), h.save(w, args[1])
}

func evalHdel(w Writer, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(w, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	var n int64
	for _, f := range args[2:] {
		if !h.ok || h.n == 0 {
			break
		}
		sub := hashedSub(f)
		_, exists, err := w.GetSub(args[1], h.ver, sub)
		if err != nil {
			return out, err
		}
		if !exists {
			continue
		}
		if err := w.DelSub(args[1], h.ver, sub); err != nil {
			return out, err
		}
		h.n--
		n++
	}
	if n > 0 {
		if err := h.save(w, args[1]); err != nil {
			return out, err
		}
	}
	return resp.AppendInt(out, n), nil
}

func evalHincrby(w Writer, args [][]byte, out []byte) ([]byte, error) {
	delta, ok := ParseInt(args[3])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	h, err := loadColl(w, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	var cur int64
	v, exists, err := hashField(w, args[1], h, args[2])
	if err != nil {
		return out, err
	}
	if exists {
		if cur, ok = ParseInt(v); !ok {
			return appendErr(out, errHashNotInt), nil
		}
	}
	if delta > 0 && cur > math.MaxInt64-delta || delta < 0 && cur < math.MinInt64-delta {
		return appendErr(out, ErrOverflow), nil
	}
	cur += delta
	if err := h.create(w, args[1], typeHash); err != nil {
		return out, err
	}
	if _, err := hput(w, args[1], &h, args[2], strconv.AppendInt(nil, cur, 10)); err != nil {
		return out, err
	}
	return resp.AppendInt(out, cur), h.save(w, args[1])
}

func evalHincrbyfloat(w Writer, args [][]byte, out []byte) ([]byte, error) {
	delta, ok := parseLongDouble(args[3])
	switch {
	case !ok:
		return appendErr(out, errNotFloat), nil
	case delta.IsInf():
		return appendErr(out, "ERR value is NaN or Infinity"), nil
	}
	h, err := loadColl(w, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	cur := new(big.Float).SetPrec(longDoublePrec)
	v, exists, err := hashField(w, args[1], h, args[2])
	if err != nil {
		return out, err
	}
	if exists {
		if cur, ok = parseLongDouble(v); !ok {
			return appendErr(out, errHashNotFloat), nil
		}
	}
	s, ok := addLongDouble(cur, delta)
	if !ok {
		return appendErr(out, errNaNInf), nil
	}
	if err := h.create(w, args[1], typeHash); err != nil {
		return out, err
	}
	if _, err := hput(w, args[1], &h, args[2], s); err != nil {
		return out, err
	}
	return resp.AppendBulk(out, s), h.save(w, args[1])
}

// Redis adds floats (INCRBYFLOAT, HINCRBYFLOAT) in C's long double, the
// x87 80-bit format on the x86-64 servers its users run: a 64-bit
// mantissa and a 15-bit exponent. big.Float at that precision, rounding
// to nearest even as the FPU does, gives the same sums, and printing as
// Redis does ("%.17Lf", trailing zeros cut) the same text.
const (
	longDoublePrec    = 64
	longDoubleMaxExp  = 16384 // |x| < 2^16384
	longDoubleMinExp  = -16445
	longDoubleMaxText = 5000 // MAX_LONG_DOUBLE_CHARS
)

// parseLongDouble reads a float as Redis's string2ld does: no spaces
// around it, no NaN, within long double's range.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) > longDoubleMaxText || isSpace(b[0]) || isSpace(b[len(b)-1]) {
		return nil, false
	}
	switch string(bytes.ToLower(b)) {
	case "inf", "+inf", "infinity", "+infinity":
		return new(big.Float).SetInf(false), true
	case "-inf", "-infinity":
		return new(big.Float).SetInf(true), true
	}
	f, _, err := big.ParseFloat(string(b), 10, longDoublePrec, big.ToNearestEven)
	if err != nil || !inLongDoubleRange(f) {
		return nil, false
	}
	return f, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func inLongDoubleRange(f *big.Float) bool {
	if f.Sign() == 0 {
		return true
	}
	e := f.MantExp(nil)
	return e <= longDoubleMaxExp && e >= longDoubleMinExp
}

// addLongDouble is a+b as Redis prints it, or ok=false when the sum
// overflows long double (Redis: "would produce NaN or Infinity").
func addLongDouble(a, b *big.Float) ([]byte, bool) {
	if a.IsInf() || b.IsInf() {
		return nil, false // Inf, or NaN (big.Float panics on Inf - Inf)
	}
	sum := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(a, b)
	if sum.IsInf() || !inLongDoubleRange(sum) {
		return nil, false
	}
	s := sum.Text('f', 17)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return []byte(s), true
}

func evalHget(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	v, ok, err := hashField(r, args[1], h, args[2])
	if err != nil || !ok {
		return resp.AppendNull(out), err
	}
	return resp.AppendBulk(out, v), nil
}

func evalHmget(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	out = resp.AppendArrayHeader(out, len(args)-2)
	for _, f := range args[2:] {
		v, ok, err := hashField(r, args[1], h, f)
		if err != nil {
			return out, err
		}
		if !ok {
			out = resp.AppendNull(out)
			continue
		}
		out = resp.AppendBulk(out, v)
	}
	return out, nil
}

func evalHexists(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	_, ok, err := hashField(r, args[1], h, args[2])
	return resp.AppendInt(out, b2i(ok)), err
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func evalHlen(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	return resp.AppendInt(out, int64(h.n)), nil
}

func evalHstrlen(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	v, _, err := hashField(r, args[1], h, args[2])
	return resp.AppendInt(out, int64(len(v))), err
}

// evalHall answers HKEYS, HVALS and HGETALL, in field-hash order.
func evalHall(keys, vals bool) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		h, err := loadColl(r, args[1], typeHash)
		if err != nil || h.wrong {
			return wrongOr(out, err)
		}
		if !h.ok {
			return resp.AppendArrayHeader(out, 0), nil
		}
		per := 1
		if keys && vals {
			per = 2
		}
		// The header counts what the scan found, not the metadata
		// record's length (equal, as every write keeps them): a reply
		// must never promise more than it carries.
		var body []byte
		n := 0
		err = r.ScanSub(args[1], h.ver, nil, false, func(sub, v []byte) bool {
			if keys {
				body = resp.AppendBulk(body, fieldOf(sub))
			}
			if vals {
				body = resp.AppendBulk(body, v)
			}
			n += per
			return true
		})
		if err != nil {
			return out, err
		}
		return append(resp.AppendArrayHeader(out, n), body...), nil
	}
}

// seedOf seeds a random choice: a reader that is not applying a log entry
// may offer fresh entropy (Seeder); otherwise the entry's time, so every
// replica chooses alike.
func seedOf(r Reader, key []byte) mix {
	s := uint64(r.NowMS()) ^ fieldHash(key)
	if sr, ok := r.(Seeder); ok {
		s ^= sr.Seed()
	}
	return mix(s)
}

// Seeder is a Reader that is not applying a log entry and may answer
// random choices differently each time (HRANDFIELD, SRANDMEMBER).
type Seeder interface {
	Seed() uint64
}

// randCountMax bounds HRANDFIELD's count, as a reply of that many
// elements is built in memory.
const randCountMax = 1 << 20

type picked struct{ field, v []byte }

// pickAt returns the fields of the family at positions at (in scan
// order), in the order at lists them, repeats included: one pass over the
// collection.
func pickAt(r Reader, key []byte, c coll, family byte, at []uint64) ([]picked, error) {
	want := map[uint64][]int{}
	for i, p := range at {
		want[p] = append(want[p], i)
	}
	res := make([]picked, len(at))
	var pos uint64
	found := 0
	var from []byte
	if family != 0 {
		from = []byte{family}
	}
	err := r.ScanSub(key, c.ver, from, false, func(sub, v []byte) bool {
		if family != 0 {
			if len(sub) == 0 || sub[0] != family {
				return false
			}
			sub = sub[1:]
		}
		if idx, ok := want[pos]; ok {
			p := picked{field: append([]byte(nil), fieldOf(sub)...), v: append([]byte(nil), v...)}
			for _, i := range idx {
				res[i] = p
				found++
			}
		}
		pos++
		return found < len(at)
	})
	return res[:found:found], err
}

// scanArgs is a SCAN-family command's cursor and options.
type scanArgs struct {
	cursor   uint64
	match    []byte
	count    int
	noValues bool
	typ      []byte
}

// parseScan reads CURSOR [MATCH p] [COUNT n] and, where allowed,
// NOVALUES or TYPE t, answering Redis's errors.
func parseScan(args [][]byte, allowNoValues, allowType bool) (scanArgs, string) {
	a := scanArgs{count: 10}
	c, err := strconv.ParseUint(string(args[0]), 10, 64)
	if err != nil {
		return a, errInvalidCur
	}
	a.cursor = c
	for i := 1; i < len(args); i++ {
		more := i+1 < len(args)
		switch {
		case equalFold(args[i], "match") && more:
			a.match = args[i+1]
			i++
		case equalFold(args[i], "count") && more:
			n, ok := ParseInt(args[i+1])
			if !ok {
				return a, ErrNotInteger
			}
			if n < 1 {
				return a, ErrSyntax
			}
			a.count = int(min(n, 1<<20))
			i++
		case allowType && equalFold(args[i], "type") && more:
			a.typ = args[i+1]
			i++
		case allowNoValues && equalFold(args[i], "novalues"):
			a.noValues = true
		default:
			return a, ErrSyntax
		}
	}
	return a, ""
}

func evalHscan(r Reader, args [][]byte, out []byte) ([]byte, error) {
	a, msg := parseScan(args[2:], true, false)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	h, err := loadColl(r, args[1], typeHash)
	if err != nil || h.wrong {
		return wrongOr(out, err)
	}
	return scanHashed(r, args[1], h, a, out)
}

// scanHashed pages through a hash or set in field-hash order (HSCAN,
// SSCAN); see scanFamily.
func scanHashed(r Reader, key []byte, c coll, a scanArgs, out []byte) ([]byte, error) {
	return scanFamily(r, key, c, 0, a, resp.AppendBulk, out)
}

// scanFamily pages through the sub-keys of c that start with family (0:
// all of them), each a field hash and a field, in hash order: the cursor
// is the hash to resume at, plus one (0 starts and ends an iteration). A
// page never ends inside a run of fields with one hash, so resuming at
// the next hash misses nothing. value appends a field's value.
func scanFamily(r Reader, key []byte, c coll, family byte, a scanArgs, value func(out, v []byte) []byte, out []byte) ([]byte, error) {
	var prefix []byte
	if family != 0 {
		prefix = []byte{family}
	}
	var page []byte
	items := 0
	next := uint64(0)
	if c.ok && (a.cursor == 0 || a.cursor-1 <= math.MaxInt64) {
		from := prefix
		if a.cursor > 0 {
			from = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), a.cursor-1)
		}
		seen, last := 0, uint64(0)
		err := r.ScanSub(key, c.ver, from, false, func(sub, v []byte) bool {
			if !bytes.HasPrefix(sub, prefix) {
				return false
			}
			sub = sub[len(prefix):]
			hv := subHash(sub)
			if seen >= a.count && hv != last {
				next = hv + 1 // resume at hv, the first hash not returned
				return false
			}
			seen, last = seen+1, hv
			f := fieldOf(sub)
			if a.match == nil || Match(a.match, f) {
				page = resp.AppendBulk(page, f)
				items++
				if !a.noValues {
					page = value(page, v)
					items++
				}
			}
			return true
		})
		if err != nil {
			return out, err
		}
	}
	out = resp.AppendArrayHeader(out, 2)
	out = resp.AppendBulk(out, strconv.AppendUint(nil, next, 10))
	return append(resp.AppendArrayHeader(out, items), page...), nil
}

// subHash is the hash a hashedSub sub-key starts with.
func subHash(sub []byte) uint64 {
	if len(sub) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(sub)
}
