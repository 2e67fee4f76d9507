package kv

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Sorted sets: two families of sub-keys under the set's version, as
// Kvrocks keeps them:
//   - 'm' + member's hash (8) + member -> score (float64 bits): lookups,
//     and ZSCAN's cursor (the field-hash order of hashes and sets);
//   - 's' + sortable score (8) + member -> nothing: the order by score,
//     then member, that ranges and ranks walk.
//
// Both change in the same entry, so they always hold the same members.
func init() {
	register(command.SortedSet,
		writer("zadd", -4, 1, 1, 1, evalZadd),
		writer("zincrby", 4, 1, 1, 1, evalZincrby),
		writer("zrem", -3, 1, 1, 1, evalZrem),
		writer("zpopmin", -2, 1, 1, 1, evalZpop(false)),
		writer("zpopmax", -2, 1, 1, 1, evalZpop(true)),
		writer("zremrangebyrank", 4, 1, 1, 1, evalZremrange(byRank)),
		writer("zremrangebyscore", 4, 1, 1, 1, evalZremrange(byScore)),
		writer("zremrangebylex", 4, 1, 1, 1, evalZremrange(byLex)),
		reader("zscore", 3, 1, 1, 1, evalZscore),
		reader("zmscore", -3, 1, 1, 1, evalZmscore),
		reader("zcard", 2, 1, 1, 1, evalZcard),
		reader("zcount", 4, 1, 1, 1, evalZcount(byScore)),
		reader("zlexcount", 4, 1, 1, 1, evalZcount(byLex)),
		// Redis 7.0's: WITHSCORE came with 7.2.
		reader("zrank", 3, 1, 1, 1, evalZrank(false)),
		reader("zrevrank", 3, 1, 1, 1, evalZrank(true)),
		reader("zrange", -4, 1, 1, 1, evalZrange(rangeZrange)),
		reader("zrevrange", -4, 1, 1, 1, evalZrange(rangeZrevrange)),
		reader("zrangebyscore", -4, 1, 1, 1, evalZrange(rangeByScore)),
		reader("zrevrangebyscore", -4, 1, 1, 1, evalZrange(rangeRevByScore)),
		reader("zrangebylex", -4, 1, 1, 1, evalZrange(rangeByLex)),
		reader("zrevrangebylex", -4, 1, 1, 1, evalZrange(rangeRevByLex)),
		reader("zrandmember", -2, 1, 1, 1, evalRandMember(typeZSet, zMember, "withscores", appendStoredScore)),
		reader("zscan", -3, 1, 1, 1, evalZscan),
	)
}

const (
	zMember byte = 'm'
	zScore  byte = 's'

	errNotFloatScore = "ERR value is not a valid float"
	errMinMaxFloat   = "ERR min or max is not a float"
	errMinMaxLex     = "ERR min or max not valid string range item"
	errScoreNaN      = "ERR resulting score is not a number (NaN)"
)

func zmemberSub(m []byte) []byte { return append([]byte{zMember}, hashedSub(m)...) }

// sortable maps a score to 8 bytes that sort as the scores do.
func sortable(f float64) []byte {
	if f == 0 {
		f = 0 // -0 sorts (and is) 0
	}
	b := math.Float64bits(f)
	if b>>63 == 1 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(nil, b)
}

func unsortable(b []byte) float64 {
	u := binary.BigEndian.Uint64(b)
	if u>>63 == 1 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u)
}

func zscoreSub(f float64, m []byte) []byte {
	return append(append([]byte{zScore}, sortable(f)...), m...)
}

// parseScore reads a score as Redis's strtod does: inf allowed, NaN not.
func parseScore(b []byte) (float64, bool) {
	if len(b) == 0 || isSpace(b[0]) || isSpace(b[len(b)-1]) {
		return 0, false
	}
	switch strings.ToLower(string(b)) {
	case "inf", "+inf", "infinity", "+infinity":
		return math.Inf(1), true
	case "-inf", "-infinity":
		return math.Inf(-1), true
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !isRangeErr(err) || math.IsNaN(f) || strings.ContainsAny(string(b), "_xXpP") {
		return 0, false
	}
	return f, true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// appendScore writes a score as Redis 7.0 does ("%.17g"; inf, -inf).
func appendScore(out []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return resp.AppendBulkString(out, "inf")
	case math.IsInf(f, -1):
		return resp.AppendBulkString(out, "-inf")
	}
	return resp.AppendBulk(out, formatG17(f))
}

// formatG17 is C's "%.17g".
func formatG17(f float64) []byte {
	s := strconv.FormatFloat(f, 'g', 17, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if strings.Contains(mant, ".") {
		mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
	}
	if !hasExp {
		return []byte(mant)
	}
	sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
	for len(digits) < 2 {
		digits = "0" + digits
	}
	return []byte(mant + "e" + sign + digits)
}

type zset struct {
	coll
	key []byte
}

func loadZset(r Reader, key []byte) (zset, error) {
	c, err := loadColl(r, key, typeZSet)
	return zset{coll: c, key: key}, err
}

// score looks a member up.
func (z *zset) score(r Reader, m []byte) (float64, bool, error) {
	if !z.ok {
		return 0, false, nil
	}
	v, ok, err := r.GetSub(z.key, z.ver, zmemberSub(m))
	if err != nil || !ok || len(v) != 8 {
		return 0, false, err
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), true, nil
}

// put sets m's score (z created already), replacing its old place in
// the order.
func (z *zset) put(w Writer, m []byte, f float64, old float64, existed bool) error {
	if f == 0 {
		f = 0
	}
	if existed {
		if err := w.DelSub(z.key, z.ver, zscoreSub(old, m)); err != nil {
			return err
		}
	}
	z.widen(f, m)
	if !existed {
		z.n++
	}
	if err := w.PutSub(z.key, z.ver, zmemberSub(m), binary.BigEndian.AppendUint64(nil, math.Float64bits(f))); err != nil {
		return err
	}
	return w.PutSub(z.key, z.ver, zscoreSub(f, m), nil)
}

func (z *zset) del(w Writer, m []byte, f float64) error {
	z.n--
	if err := w.DelSub(z.key, z.ver, zmemberSub(m)); err != nil {
		return err
	}
	return w.DelSub(z.key, z.ver, zscoreSub(f, m))
}

// walk visits members in score order (reverse: descending), starting at
// the score from (nil: at an end; the callback skips what it does not
// want), until fn returns false.
func (z *zset) walk(r Reader, reverse bool, from *float64, fn func(m []byte, f float64) bool) error {
	if !z.ok {
		return nil
	}
	var start []byte
	switch {
	case from != nil && !reverse:
		start = append([]byte{zScore}, sortable(*from)...)
	case from != nil: // the last key of that score: before the next prefix
		start = storagePrefixEnd(append([]byte{zScore}, sortable(*from)...))
	case reverse:
		start = []byte{zScore + 1}
	default:
		start = []byte{zScore}
	}
	// No live member lies outside the bounds: start at the nearer one.
	if b := z.walkStart(reverse); b != nil && (!reverse && bytes.Compare(b, start) > 0 || reverse && bytes.Compare(b, start) < 0) {
		start = b
	}
	return r.ScanSub(z.key, z.ver, start, reverse, func(sub, _ []byte) bool {
		if len(sub) < 9 || sub[0] != zScore {
			return false // the member family, below; nothing sorts above
		}
		return fn(sub[9:], unsortable(sub[1:9]))
	})
}

// storagePrefixEnd is the smallest byte string greater than every one
// starting with p (p is never all 0xff here).
func storagePrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return end
}

func evalZadd(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var nx, xx, gt, lt, ch, incr bool
	i := 2
	for ; i < len(args); i++ {
		switch {
		case equalFold(args[i], "nx"):
			nx = true
		case equalFold(args[i], "xx"):
			xx = true
		case equalFold(args[i], "gt"):
			gt = true
		case equalFold(args[i], "lt"):
			lt = true
		case equalFold(args[i], "ch"):
			ch = true
		case equalFold(args[i], "incr"):
			incr = true
		default:
			goto pairs
		}
	}
pairs:
	rest := args[i:]
	switch {
	case len(rest) == 0 || len(rest)%2 == 1:
		return appendErr(out, ErrSyntax), nil
	case nx && xx:
		return appendErr(out, "ERR XX and NX options at the same time are not compatible"), nil
	case gt && lt || gt && nx || lt && nx:
		return appendErr(out, "ERR GT, LT, and/or NX options at the same time are not compatible"), nil
	case incr && len(rest) > 2:
		return appendErr(out, "ERR INCR option supports a single increment-element pair"), nil
	}
	scores := make([]float64, len(rest)/2)
	for j := range scores {
		f, ok := parseScore(rest[2*j])
		if !ok {
			return appendErr(out, errNotFloatScore), nil
		}
		scores[j] = f
	}
	z, err := loadZset(w, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	if xx && !z.ok { // nothing to update: not even created
		if incr {
			return resp.AppendNull(out), nil
		}
		return resp.AppendInt(out, 0), nil
	}
	if err := z.create(w, z.key, typeZSet); err != nil {
		return out, err
	}
	var added, changed int64
	var last float64
	applied := false
	for j, f := range scores {
		m := rest[2*j+1]
		old, existed, err := z.score(w, m)
		if err != nil {
			return out, err
		}
		if nx && existed || xx && !existed {
			continue
		}
		if incr {
			if existed {
				f += old
			}
			if math.IsNaN(f) {
				return appendErr(out, errScoreNaN), nil
			}
		}
		if existed && (gt && f <= old || lt && f >= old) {
			continue
		}
		last, applied = f, true
		if existed && f == old {
			continue
		}
		if err := z.put(w, m, f, old, existed); err != nil {
			return out, err
		}
		if existed {
			changed++
		} else {
			added++
		}
	}
	if err := z.save(w, z.key); err != nil {
		return out, err
	}
	switch {
	case incr && !applied:
		return resp.AppendNull(out), nil
	case incr:
		return appendScore(out, last), nil
	case ch:
		return resp.AppendInt(out, added+changed), nil
	}
	return resp.AppendInt(out, added), nil
}

func evalZincrby(w Writer, args [][]byte, out []byte) ([]byte, error) {
	return evalZadd(w, [][]byte{[]byte("zadd"), args[1], []byte("incr"), args[2], args[3]}, out)
}

func evalZrem(w Writer, args [][]byte, out []byte) ([]byte, error) {
	z, err := loadZset(w, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	var n int64
	for _, m := range args[2:] {
		f, ok, err := z.score(w, m)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		if err := z.del(w, m, f); err != nil {
			return out, err
		}
		n++
	}
	if n > 0 {
		err = z.save(w, z.key)
	}
	return resp.AppendInt(out, n), err
}

func evalZscore(r Reader, args [][]byte, out []byte) ([]byte, error) {
	z, err := loadZset(r, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	f, ok, err := z.score(r, args[2])
	if err != nil || !ok {
		return resp.AppendNull(out), err
	}
	return appendScore(out, f), nil
}

func evalZmscore(r Reader, args [][]byte, out []byte) ([]byte, error) {
	z, err := loadZset(r, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	out = resp.AppendArrayHeader(out, len(args)-2)
	for _, m := range args[2:] {
		f, ok, err := z.score(r, m)
		if err != nil {
			return out, err
		}
		if !ok {
			out = resp.AppendNull(out)
			continue
		}
		out = appendScore(out, f)
	}
	return out, nil
}

func evalZcard(r Reader, args [][]byte, out []byte) ([]byte, error) {
	z, err := loadZset(r, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	return resp.AppendInt(out, int64(z.n)), nil
}

// rangeKind says how a range's bounds read.
type rangeKind int

const (
	byRank rangeKind = iota
	byScore
	byLex
)

// bound is one end of a score or lex range.
type bound struct {
	f         float64
	lex       []byte
	excl      bool
	inf, ninf bool // lex: "+" and "-"
}

func parseScoreBound(b []byte) (bound, bool) {
	if len(b) > 0 && b[0] == '(' {
		f, ok := parseScore(b[1:])
		return bound{f: f, excl: true}, ok
	}
	f, ok := parseScore(b)
	return bound{f: f}, ok
}

func parseLexBound(b []byte) (bound, bool) {
	switch {
	case len(b) == 1 && b[0] == '+':
		return bound{inf: true}, true
	case len(b) == 1 && b[0] == '-':
		return bound{ninf: true}, true
	case len(b) > 0 && (b[0] == '(' || b[0] == '['):
		return bound{lex: b[1:], excl: b[0] == '('}, true
	}
	return bound{}, false
}

func parseBounds(kind rangeKind, a, b []byte) (lo, hi bound, msg string) {
	var ok1, ok2 bool
	if kind == byScore {
		lo, ok1 = parseScoreBound(a)
		hi, ok2 = parseScoreBound(b)
		if !ok1 || !ok2 {
			return lo, hi, errMinMaxFloat
		}
		return lo, hi, ""
	}
	lo, ok1 = parseLexBound(a)
	hi, ok2 = parseLexBound(b)
	if !ok1 || !ok2 {
		return lo, hi, errMinMaxLex
	}
	return lo, hi, ""
}

type zitem struct {
	m []byte
	f float64
}

// collect walks the members of z between min and max of kind (rank:
// the indexes min.f..max.f, already resolved), ascending or, reverse,
// descending, skipping offset and keeping at most limit (negative: all).
func (z *zset) collect(r Reader, kind rangeKind, min, max bound, reverse bool, offset, limit int64) ([]zitem, error) {
	var out []zitem
	if limit == 0 || offset < 0 {
		return nil, nil
	}
	var from *float64
	if kind == byScore && !reverse && !math.IsInf(min.f, -1) {
		from = &min.f
	}
	if kind == byScore && reverse && !math.IsInf(max.f, 1) {
		from = &max.f
	}
	i := int64(-1)
	err := z.walk(r, reverse, from, func(m []byte, f float64) bool {
		if kind == byRank {
			i++
			if i < int64(min.f) {
				return true
			}
			if i > int64(max.f) {
				return false
			}
		} else {
			aboveMin, belowMax := within(kind, min, max, m, f)
			switch {
			case !reverse && !belowMax, reverse && !aboveMin:
				return false // past the range's far end
			case !aboveMin || !belowMax:
				return true // before its near end
			}
			if i++; i < offset {
				return true
			}
		}
		out = append(out, zitem{m: append([]byte(nil), m...), f: f})
		return limit < 0 || int64(len(out)) < limit
	})
	return out, err
}

// within places (m, f) against a score or lex range's two ends.
func within(kind rangeKind, min, max bound, m []byte, f float64) (aboveMin, belowMax bool) {
	if kind == byScore {
		return f > min.f || !min.excl && f == min.f, f < max.f || !max.excl && f == max.f
	}
	aboveMin = min.ninf || !min.inf && (bytes.Compare(m, min.lex) > 0 || !min.excl && bytes.Equal(m, min.lex))
	belowMax = max.inf || !max.ninf && (bytes.Compare(m, max.lex) < 0 || !max.excl && bytes.Equal(m, max.lex))
	return aboveMin, belowMax
}

func evalZcount(kind rangeKind) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		lo, hi, msg := parseBounds(kind, args[2], args[3])
		if msg != "" {
			return appendErr(out, msg), nil
		}
		z, err := loadZset(r, args[1])
		if err != nil || z.wrong {
			return wrongOr(out, err)
		}
		items, err := z.collect(r, kind, lo, hi, false, 0, -1)
		return resp.AppendInt(out, int64(len(items))), err
	}
}

func evalZrank(rev bool) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		withScore := false
		switch {
		case len(args) == 4 && equalFold(args[3], "withscore"):
			withScore = true
		case len(args) > 3:
			return appendErr(out, ErrSyntax), nil
		}
		z, err := loadZset(r, args[1])
		if err != nil || z.wrong {
			return wrongOr(out, err)
		}
		f, ok, err := z.score(r, args[2])
		if err != nil || !ok {
			if withScore {
				return resp.AppendNullArray(out), err
			}
			return resp.AppendNull(out), err
		}
		rank := int64(0)
		err = z.walk(r, rev, nil, func(m []byte, g float64) bool {
			if g == f && bytes.Equal(m, args[2]) {
				return false
			}
			rank++
			return true
		})
		if err != nil {
			return out, err
		}
		if withScore {
			out = resp.AppendArrayHeader(out, 2)
			return appendScore(resp.AppendInt(out, rank), f), nil
		}
		return resp.AppendInt(out, rank), nil
	}
}

// The ZRANGE family's forms.
type rangeForm int

const (
	rangeZrange rangeForm = iota
	rangeZrevrange
	rangeByScore
	rangeRevByScore
	rangeByLex
	rangeRevByLex
)

func evalZrange(form rangeForm) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		res, err := zrangeOf(r, form, args, false)
		switch {
		case err != nil:
			return out, err
		case res.wrong:
			return appendErr(out, ErrWrongType), nil
		case res.msg != "":
			return appendErr(out, res.msg), nil
		}
		return appendZitems(out, res.items, res.withScores), nil
	}
}

// zrange is what a ZRANGE-family command selects.
type zrange struct {
	items      []zitem
	withScores bool
	msg        string // the error to answer instead
	wrong      bool   // WRONGTYPE
}

// zrangeOf evaluates a ZRANGE-family command (args from the source key
// on: KEY MIN MAX OPTIONS...; store: ZRANGESTORE's, which refuses
// WITHSCORES).
func zrangeOf(r Reader, form rangeForm, args [][]byte, store bool) (zrange, error) {
	kind, rev := byRank, false
	switch form {
	case rangeZrevrange:
		rev = true
	case rangeByScore:
		kind = byScore
	case rangeRevByScore:
		kind, rev = byScore, true
	case rangeByLex:
		kind = byLex
	case rangeRevByLex:
		kind, rev = byLex, true
	}
	// Options as Redis reads them: WITHSCORES and LIMIT anywhere (the
	// last LIMIT counts), REV, BYSCORE and BYLEX once and only in
	// ZRANGE; conflicts are checked after.
	withScores, hasLimit := false, false
	offset, limit := int64(0), int64(-1)
	auto := form == rangeZrange
	dirSet, kindSet := !auto, !auto
	for i := 4; i < len(args); i++ {
		switch {
		case !store && equalFold(args[i], "withscores"):
			withScores = true
		case equalFold(args[i], "limit") && i+2 < len(args):
			o, ok1 := ParseInt(args[i+1])
			l, ok2 := ParseInt(args[i+2])
			if !ok1 || !ok2 {
				return zrange{msg: ErrNotInteger}, nil
			}
			offset, limit, hasLimit = o, l, true
			i += 2
		case !dirSet && equalFold(args[i], "rev"):
			rev, dirSet = true, true
		case !kindSet && equalFold(args[i], "bylex"):
			kind, kindSet = byLex, true
		case !kindSet && equalFold(args[i], "byscore"):
			kind, kindSet = byScore, true
		default:
			return zrange{msg: ErrSyntax}, nil
		}
	}
	// Redis checks LIMIT's count, not its presence: LIMIT x -1 passes.
	if hasLimit && limit != -1 && kind == byRank {
		return zrange{msg: "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"}, nil
	}
	if withScores && kind == byLex {
		return zrange{msg: "ERR syntax error, WITHSCORES not supported in combination with BYLEX"}, nil
	}
	var lo, hi bound
	if kind == byRank {
		a, ok1 := ParseInt(args[2])
		b, ok2 := ParseInt(args[3])
		if !ok1 || !ok2 {
			return zrange{msg: ErrNotInteger}, nil
		}
		z, err := loadZset(r, args[1])
		if err != nil || z.wrong {
			return zrange{wrong: z.wrong}, err
		}
		from, to, ok := span(a, b, z.n)
		if !z.ok || !ok {
			return zrange{withScores: withScores}, nil
		}
		lo, hi = bound{f: float64(from)}, bound{f: float64(to)}
		items, err := z.collect(r, byRank, lo, hi, rev, 0, -1)
		return zrange{items: items, withScores: withScores}, err
	}
	// ZRANGE ... REV and the REV commands take max first.
	lo, hi, msg := parseBounds(kind, args[2], args[3])
	if msg != "" {
		return zrange{msg: msg}, nil
	}
	if rev {
		lo, hi = hi, lo
	}
	z, err := loadZset(r, args[1])
	if err != nil || z.wrong {
		return zrange{wrong: z.wrong}, err
	}
	items, err := z.collect(r, kind, lo, hi, rev, offset, limit)
	return zrange{items: items, withScores: withScores}, err
}

func appendZitems(out []byte, items []zitem, withScores bool) []byte {
	per := 1
	if withScores {
		per = 2
	}
	out = resp.AppendArrayHeader(out, len(items)*per)
	for _, it := range items {
		out = resp.AppendBulk(out, it.m)
		if withScores {
			out = appendScore(out, it.f)
		}
	}
	return out
}

func evalZremrange(kind rangeKind) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		var lo, hi bound
		var a, b int64
		if kind == byRank {
			var ok1, ok2 bool
			a, ok1 = ParseInt(args[2])
			b, ok2 = ParseInt(args[3])
			if !ok1 || !ok2 {
				return appendErr(out, ErrNotInteger), nil
			}
		} else {
			var msg string
			if lo, hi, msg = parseBounds(kind, args[2], args[3]); msg != "" {
				return appendErr(out, msg), nil
			}
		}
		z, err := loadZset(w, args[1])
		if err != nil || z.wrong {
			return wrongOr(out, err)
		}
		if !z.ok {
			return resp.AppendInt(out, 0), nil
		}
		if kind == byRank {
			from, to, ok := span(a, b, z.n)
			if !ok {
				return resp.AppendInt(out, 0), nil
			}
			lo, hi = bound{f: float64(from)}, bound{f: float64(to)}
		}
		items, err := z.collect(w, kind, lo, hi, false, 0, -1)
		if err != nil {
			return out, err
		}
		for _, it := range items {
			if err := z.del(w, it.m, it.f); err != nil {
				return out, err
			}
		}
		if len(items) > 0 {
			err = z.save(w, z.key)
		}
		return resp.AppendInt(out, int64(len(items))), err
	}
}

func evalZpop(max bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		_, count, msg := popCount(args)
		if msg != "" {
			return appendErr(out, msg), nil
		}
		z, err := loadZset(w, args[1])
		if err != nil || z.wrong {
			return wrongOr(out, err)
		}
		items, err := z.pop(w, max, count)
		if err != nil {
			return out, err
		}
		return appendZitems(out, items, true), nil
	}
}

// pop removes up to count members from the low end (max: the high end)
// and moves the set's bound past them; it answers them in pop order.
func (z *zset) pop(w Writer, max bool, count int64) ([]zitem, error) {
	var items []zitem
	if !z.ok || count <= 0 {
		return nil, nil
	}
	err := z.walk(w, max, nil, func(m []byte, f float64) bool {
		items = append(items, zitem{m: bytes.Clone(m), f: f})
		return int64(len(items)) < count
	})
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if err := z.del(w, it.m, it.f); err != nil {
			return nil, err
		}
	}
	if len(items) > 0 {
		last := items[len(items)-1]
		z.popped(last.f, last.m, max)
		if err := z.save(w, z.key); err != nil {
			return nil, err
		}
	}
	return items, nil
}

func evalZscan(r Reader, args [][]byte, out []byte) ([]byte, error) {
	a, msg := parseScan(args[2:], false, false)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	z, err := loadZset(r, args[1])
	if err != nil || z.wrong {
		return wrongOr(out, err)
	}
	return scanFamily(r, args[1], z.coll, zMember, a, func(out []byte, v []byte) []byte {
		if len(v) != 8 {
			return resp.AppendNull(out)
		}
		return appendScore(out, math.Float64frombits(binary.BigEndian.Uint64(v)))
	}, out)
}

// appendStoredScore writes a member sub-key's value (a score's bits) as
// a score.
func appendStoredScore(out, v []byte) []byte {
	if len(v) != 8 {
		return resp.AppendNull(out)
	}
	return appendScore(out, math.Float64frombits(binary.BigEndian.Uint64(v)))
}
