package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Lists, as Kvrocks keeps them: the elements sit at consecutive positions
// [head, head+n) of a 64-bit space, each a sub-key (the position, 8 bytes
// big endian) under the list's version; the metadata record's extra field
// is head. A new list starts in the middle (listMid), so pushes at either
// end only move head or n. Commands that insert or remove in the middle
// (LINSERT, LREM) rewrite the elements after the change, as Redis moves
// them in memory.
func init() {
	register(command.List,
		writer("lpush", -3, 1, 1, 1, evalPush(true, false)),
		writer("rpush", -3, 1, 1, 1, evalPush(false, false)),
		writer("lpushx", -3, 1, 1, 1, evalPush(true, true)),
		writer("rpushx", -3, 1, 1, 1, evalPush(false, true)),
		writer("lpop", -2, 1, 1, 1, evalPop(true)),
		writer("rpop", -2, 1, 1, 1, evalPop(false)),
		writer("lset", 4, 1, 1, 1, evalLset),
		writer("linsert", 5, 1, 1, 1, evalLinsert),
		writer("lrem", 4, 1, 1, 1, evalLrem),
		writer("ltrim", 4, 1, 1, 1, evalLtrim),
		writer("lmove", 5, 1, 2, 1, evalLmove),
		writer("rpoplpush", 3, 1, 2, 1, evalRpoplpush),
		reader("llen", 2, 1, 1, 1, evalLlen),
		reader("lindex", 3, 1, 1, 1, evalLindex),
		reader("lrange", 4, 1, 1, 1, evalLrange),
		reader("lpos", -3, 1, 1, 1, evalLpos),
	)
}

const listMid = uint64(1) << 63

// list is a live list (or, !ok, an absent one) and its key.
type list struct {
	coll
	key []byte
}

func loadList(r Reader, key []byte) (list, error) {
	c, err := loadColl(r, key, typeList)
	return list{coll: c, key: key}, err
}

func (l *list) head() uint64 {
	if len(l.extra) < 8 {
		return listMid
	}
	return binary.BigEndian.Uint64(l.extra)
}

func (l *list) setHead(h uint64) { l.extra = binary.BigEndian.AppendUint64(nil, h) }

func pos(p uint64) []byte { return binary.BigEndian.AppendUint64(nil, p) }

// create makes l a new empty list, unless it is one.
func (l *list) create(w Writer) error {
	if l.ok {
		return nil
	}
	if err := l.coll.create(w, l.key, typeList); err != nil {
		return err
	}
	l.setHead(listMid)
	return nil
}

// at reads the element at index i (0 <= i < n).
func (l *list) at(r Reader, i uint64) ([]byte, error) {
	v, ok, err := r.GetSub(l.key, l.ver, pos(l.head()+i))
	if err == nil && !ok {
		return nil, errHole
	}
	return v, err
}

// errHole: a collection's metadata record counts an element that is not
// stored. The apply stops (as on any storage fault) rather than answer
// from a broken list.
var errHole = errors.New("a collection element is missing under its metadata record")

// push adds v at the left or right end.
func (l *list) push(w Writer, v []byte, left bool) error {
	h := l.head()
	var p uint64
	if left {
		h--
		p = h
		l.setHead(h)
	} else {
		p = h + l.n
	}
	l.n++
	return w.PutSub(l.key, l.ver, pos(p), v)
}

// pop removes and returns the element at the left or right end (n > 0).
func (l *list) pop(w Writer, left bool) ([]byte, error) {
	h := l.head()
	p := h + l.n - 1
	if left {
		p = h
	}
	v, ok, err := w.GetSub(l.key, l.ver, pos(p))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errHole
	}
	v = append([]byte(nil), v...)
	if err := w.DelSub(l.key, l.ver, pos(p)); err != nil {
		return nil, err
	}
	if left {
		l.setHead(h + 1)
	}
	l.n--
	return v, nil
}

// all reads the elements from index from to to (inclusive), in order.
func (l *list) all(r Reader, from, to uint64) ([][]byte, error) {
	var out [][]byte
	if !l.ok || from > to || from >= l.n {
		return nil, nil
	}
	h := l.head()
	err := r.ScanSub(l.key, l.ver, pos(h+from), false, func(sub, v []byte) bool {
		if len(sub) != 8 || binary.BigEndian.Uint64(sub) > h+to {
			return false
		}
		out = append(out, append([]byte(nil), v...))
		return true
	})
	return out, err
}

// rewrite replaces the elements from index from on with vs.
func (l *list) rewrite(w Writer, from uint64, vs [][]byte) error {
	h := l.head()
	for i := from; i < l.n; i++ {
		if err := w.DelSub(l.key, l.ver, pos(h+i)); err != nil {
			return err
		}
	}
	for i, v := range vs {
		if err := w.PutSub(l.key, l.ver, pos(h+from+uint64(i)), v); err != nil {
			return err
		}
	}
	l.n = from + uint64(len(vs))
	return nil
}

func evalPush(left, onlyExisting bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		l, err := loadList(w, args[1])
		if err != nil || l.wrong {
			return wrongOr(out, err)
		}
		if onlyExisting && !l.ok {
			return resp.AppendInt(out, 0), nil
		}
		if err := l.create(w); err != nil {
			return out, err
		}
		for _, v := range args[2:] {
			if err := l.push(w, v, left); err != nil {
				return out, err
			}
		}
		return resp.AppendInt(out, int64(l.n)), l.save(w, l.key)
	}
}

func evalPop(left bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		if len(args) > 3 {
			// Redis answers arity here, where SPOP answers syntax.
			return appendErr(out, WrongArity(map[bool]string{true: "lpop", false: "rpop"}[left])), nil
		}
		hasCount, count, msg := popCount(args)
		if msg != "" {
			return appendErr(out, msg), nil
		}
		l, err := loadList(w, args[1])
		if err != nil || l.wrong {
			return wrongOr(out, err)
		}
		switch {
		case !l.ok && hasCount:
			return resp.AppendNullArray(out), nil
		case !l.ok:
			return resp.AppendNull(out), nil
		case count == 0:
			return resp.AppendArrayHeader(out, 0), nil
		}
		var vs [][]byte
		for int64(len(vs)) < count && l.n > 0 {
			v, err := l.pop(w, left)
			if err != nil {
				return out, err
			}
			vs = append(vs, v)
		}
		if err := l.save(w, l.key); err != nil {
			return out, err
		}
		if !hasCount {
			return resp.AppendBulk(out, vs[0]), nil
		}
		return appendMembers(out, vs), nil
	}
}

// index resolves a Redis list index (negative from the end) against n.
func index(i int64, n uint64) (uint64, bool) {
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || uint64(i) >= n {
		return 0, false
	}
	return uint64(i), true
}

func evalLlen(r Reader, args [][]byte, out []byte) ([]byte, error) {
	l, err := loadList(r, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	return resp.AppendInt(out, int64(l.n)), nil
}

func evalLindex(r Reader, args [][]byte, out []byte) ([]byte, error) {
	// Redis looks the key up before it reads the index.
	l, err := loadList(r, args[1])
	switch {
	case err != nil || l.wrong:
		return wrongOr(out, err)
	case !l.ok:
		return resp.AppendNull(out), nil
	}
	i, ok := ParseInt(args[2])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	at, ok := index(i, l.n)
	if !ok {
		return resp.AppendNull(out), nil
	}
	v, err := l.at(r, at)
	if err != nil {
		return out, err
	}
	return resp.AppendBulk(out, v), nil
}

// span resolves LRANGE/LTRIM's start and stop against n: the inclusive
// index range, or ok=false when it is empty.
func span(start, stop int64, n uint64) (uint64, uint64, bool) {
	if n > math.MaxInt64 {
		return 0, 0, false
	}
	ln := int64(n)
	if start < 0 {
		start = max(start+ln, 0)
	}
	if stop < 0 {
		stop += ln
	}
	if start > stop || start >= ln {
		return 0, 0, false
	}
	return uint64(start), uint64(min(stop, ln-1)), true
}

func evalLrange(r Reader, args [][]byte, out []byte) ([]byte, error) {
	start, ok1 := ParseInt(args[2])
	stop, ok2 := ParseInt(args[3])
	if !ok1 || !ok2 {
		return appendErr(out, ErrNotInteger), nil
	}
	l, err := loadList(r, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	from, to, ok := span(start, stop, l.n)
	if !l.ok || !ok {
		return resp.AppendArrayHeader(out, 0), nil
	}
	vs, err := l.all(r, from, to)
	if err != nil {
		return out, err
	}
	return appendMembers(out, vs), nil
}

func evalLset(w Writer, args [][]byte, out []byte) ([]byte, error) {
	l, err := loadList(w, args[1])
	switch {
	case err != nil || l.wrong:
		return wrongOr(out, err)
	case !l.ok:
		return appendErr(out, "ERR no such key"), nil
	}
	i, ok := ParseInt(args[2])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	at, ok := index(i, l.n)
	if !ok {
		return appendErr(out, "ERR index out of range"), nil
	}
	if err := w.PutSub(l.key, l.ver, pos(l.head()+at), args[3]); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), l.save(w, l.key)
}

func evalLinsert(w Writer, args [][]byte, out []byte) ([]byte, error) {
	var after bool
	switch {
	case equalFold(args[2], "after"):
		after = true
	case equalFold(args[2], "before"):
	default:
		return appendErr(out, ErrSyntax), nil
	}
	l, err := loadList(w, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	if !l.ok {
		return resp.AppendInt(out, 0), nil
	}
	vs, err := l.all(w, 0, l.n-1)
	if err != nil {
		return out, err
	}
	i := indexOf(vs, args[3])
	if i < 0 {
		return resp.AppendInt(out, -1), nil
	}
	if after {
		i++
	}
	rest := append([][]byte{args[4]}, vs[i:]...)
	if err := l.rewrite(w, uint64(i), rest); err != nil {
		return out, err
	}
	return resp.AppendInt(out, int64(l.n)), l.save(w, l.key)
}

func indexOf(vs [][]byte, v []byte) int {
	for i, x := range vs {
		if bytes.Equal(x, v) {
			return i
		}
	}
	return -1
}

func evalLrem(w Writer, args [][]byte, out []byte) ([]byte, error) {
	count, ok := ParseInt(args[2])
	if !ok {
		return appendErr(out, ErrNotInteger), nil
	}
	l, err := loadList(w, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	if !l.ok {
		return resp.AppendInt(out, 0), nil
	}
	vs, err := l.all(w, 0, l.n-1)
	if err != nil {
		return out, err
	}
	drop := make([]bool, len(vs))
	removed := int64(0)
	limit := count
	if limit < 0 {
		limit = -limit
	}
	for k := range vs {
		i := k
		if count < 0 {
			i = len(vs) - 1 - k
		}
		if bytes.Equal(vs[i], args[3]) && (count == 0 || removed < limit) {
			drop[i] = true
			removed++
		}
	}
	if removed == 0 {
		return resp.AppendInt(out, 0), nil
	}
	first := firstTrue(drop)
	var kept [][]byte
	for i := first; i < len(vs); i++ {
		if !drop[i] {
			kept = append(kept, vs[i])
		}
	}
	if err := l.rewrite(w, uint64(first), kept); err != nil {
		return out, err
	}
	return resp.AppendInt(out, removed), l.save(w, l.key)
}

func firstTrue(b []bool) int {
	for i, x := range b {
		if x {
			return i
		}
	}
	return len(b)
}

func evalLtrim(w Writer, args [][]byte, out []byte) ([]byte, error) {
	start, ok1 := ParseInt(args[2])
	stop, ok2 := ParseInt(args[3])
	if !ok1 || !ok2 {
		return appendErr(out, ErrNotInteger), nil
	}
	l, err := loadList(w, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	if !l.ok {
		return resp.AppendSimple(out, "OK"), nil
	}
	from, to, ok := span(start, stop, l.n)
	if !ok {
		from, to = l.n, l.n // keep nothing
	}
	h := l.head()
	for i := uint64(0); i < l.n; i++ {
		if i < from || i > to || !ok {
			if err := w.DelSub(l.key, l.ver, pos(h+i)); err != nil {
				return out, err
			}
		}
	}
	if ok {
		l.setHead(h + from)
		l.n = to - from + 1
	} else {
		l.n = 0
	}
	return resp.AppendSimple(out, "OK"), l.save(w, l.key)
}

func evalLpos(r Reader, args [][]byte, out []byte) ([]byte, error) {
	rank, count, maxlen, hasCount := int64(1), int64(0), int64(0), false
	// Options in Redis's order: an unknown name is a syntax error when
	// met; a value is read only after its name, COUNT's and MAXLEN's
	// errors in their own words.
	positive := func(a []byte, msg string) (int64, string) {
		n, ok := ParseInt(a)
		if !ok || n < 0 {
			return 0, msg
		}
		return n, ""
	}
	for i := 3; i < len(args); i++ {
		more := i+1 < len(args)
		var msg string
		switch {
		case equalFold(args[i], "rank") && more:
			i++
			n, ok := ParseInt(args[i])
			switch {
			case !ok:
				msg = ErrNotInteger
			case n == math.MinInt64:
				msg = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
			case n == 0:
				msg = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
			}
			rank = n
		case equalFold(args[i], "count") && more:
			i++
			count, msg = positive(args[i], "ERR COUNT can't be negative")
			hasCount = true
		case equalFold(args[i], "maxlen") && more:
			i++
			maxlen, msg = positive(args[i], "ERR MAXLEN can't be negative")
		default:
			msg = ErrSyntax
		}
		if msg != "" {
			return appendErr(out, msg), nil
		}
	}
	l, err := loadList(r, args[1])
	if err != nil || l.wrong {
		return wrongOr(out, err)
	}
	var found []int64
	if l.ok {
		vs, err := l.all(r, 0, l.n-1)
		if err != nil {
			return out, err
		}
		skip := rank - 1
		if rank < 0 {
			skip = -rank - 1
		}
		for k := range vs {
			if maxlen > 0 && int64(k) >= maxlen {
				break
			}
			i := k
			if rank < 0 {
				i = len(vs) - 1 - k
			}
			if !bytes.Equal(vs[i], args[2]) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			found = append(found, int64(i))
			if !hasCount || count != 0 && int64(len(found)) >= count {
				break
			}
		}
	}
	if !hasCount {
		if len(found) == 0 {
			return resp.AppendNull(out), nil
		}
		return resp.AppendInt(out, found[0]), nil
	}
	out = resp.AppendArrayHeader(out, len(found))
	for _, i := range found {
		out = resp.AppendInt(out, i)
	}
	return out, nil
}

// sides reads LMOVE's and BLMOVE's LEFT|RIGHT pair: whether each is
// LEFT, or ok=false.
func sides(a, b []byte) (fromLeft, toLeft, ok bool) {
	isLeft := func(x []byte) (bool, bool) {
		switch {
		case equalFold(x, "left"):
			return true, true
		case equalFold(x, "right"):
			return false, true
		}
		return false, false
	}
	f, ok1 := isLeft(a)
	t, ok2 := isLeft(b)
	return f, t, ok1 && ok2
}

func evalLmove(w Writer, args [][]byte, out []byte) ([]byte, error) {
	from, to, ok := sides(args[3], args[4])
	if !ok {
		return appendErr(out, ErrSyntax), nil
	}
	return lmove(w, args[1], args[2], from, to, out)
}

func evalRpoplpush(w Writer, args [][]byte, out []byte) ([]byte, error) {
	return lmove(w, args[1], args[2], false, true, out)
}

// lmove pops from src's end fromLeft and pushes onto dst's end toLeft,
// answering the element (nil when src is empty), as Redis does: a
// missing source answers nil before dst's type is looked at.
func lmove(w Writer, srcKey, dstKey []byte, fromLeft, toLeft bool, out []byte) ([]byte, error) {
	src, err := loadList(w, srcKey)
	if err != nil || src.wrong {
		return wrongOr(out, err)
	}
	if !src.ok {
		return resp.AppendNull(out), nil
	}
	dst, err := loadList(w, dstKey)
	if err != nil || dst.wrong {
		return wrongOr(out, err)
	}
	v, err := src.pop(w, fromLeft)
	if err != nil {
		return out, err
	}
	if err := src.save(w, srcKey); err != nil {
		return out, err
	}
	if bytes.Equal(srcKey, dstKey) {
		dst = src // the same list, already changed
		if !dst.ok {
			dst = list{key: dstKey}
		}
	}
	if err := dst.create(w); err != nil {
		return out, err
	}
	if err := dst.push(w, v, toLeft); err != nil {
		return out, err
	}
	return resp.AppendBulk(out, v), dst.save(w, dstKey)
}
