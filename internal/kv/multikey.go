package kv

import (
	"bytes"
	"math"
	"slices"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// The commands whose keys follow a count (command.Spec.NumKeys):
// ZUNION/ZINTER/ZDIFF and their STORE forms, ZINTERCARD, SINTERCARD,
// LMPOP and ZMPOP; and ZRANGESTORE. Their keys must share a partition
// (CROSSSLOT otherwise, as in Redis Cluster).
func init() {
	register(command.SortedSet,
		numKeys(writer("zunionstore", -4, 1, 1, 1, evalZsetOpStore(zUnion)), 2),
		numKeys(writer("zinterstore", -4, 1, 1, 1, evalZsetOpStore(zInter)), 2),
		numKeys(writer("zdiffstore", -4, 1, 1, 1, evalZsetOpStore(zDiff)), 2),
		numKeys(reader("zunion", -3, 0, 0, 0, evalZsetOp(zUnion)), 1),
		numKeys(reader("zinter", -3, 0, 0, 0, evalZsetOp(zInter)), 1),
		numKeys(reader("zdiff", -3, 0, 0, 0, evalZsetOp(zDiff)), 1),
		numKeys(reader("zintercard", -3, 0, 0, 0, evalZintercard), 1),
		numKeys(writer("zmpop", -4, 0, 0, 0, evalZmpop), 1),
		writer("zrangestore", -5, 1, 2, 1, evalZrangestore),
	)
	register(command.Set, numKeys(reader("sintercard", -3, 0, 0, 0, evalSintercard), 1))
	register(command.List, numKeys(writer("lmpop", -4, 0, 0, 0, evalLmpop), 1))
}

func numKeys(c *Command, at int) *Command {
	c.NumKeys = at
	return c
}

type zsetOp int

const (
	zUnion zsetOp = iota
	zInter
	zDiff
)

const (
	errNumKeysPositive = "ERR numkeys should be greater than 0"
	errNumKeysTooMany  = "ERR Number of keys can't be greater than number of args"
	errLimitNegative   = "ERR LIMIT can't be negative"
	errCountPositive   = "ERR count should be greater than 0"
)

// zinput is one input of a sorted-set operation: a sorted set, or a set
// whose members score 1.
type zinput map[string]float64

// loadZinputs reads the inputs at keys; wrong when one holds another
// type.
func loadZinputs(r Reader, keys [][]byte) (ins []zinput, wrong bool, err error) {
	for _, k := range keys {
		in := zinput{}
		stored, present, err := r.Get(k)
		if err != nil {
			return nil, false, err
		}
		switch {
		case !present || Expired(stored, r.NowMS()):
		case stored[0] == typeZSet:
			z, err := loadZset(r, k)
			if err != nil {
				return nil, false, err
			}
			err = z.walk(r, false, nil, func(m []byte, f float64) bool {
				in[string(m)] = f
				return true
			})
			if err != nil {
				return nil, false, err
			}
		case stored[0] == typeSet:
			s, err := loadColl(r, k, typeSet)
			if err != nil {
				return nil, false, err
			}
			ms, err := members(r, k, s)
			if err != nil {
				return nil, false, err
			}
			for _, m := range ms {
				in[string(m)] = 1
			}
		default:
			return nil, true, nil
		}
		ins = append(ins, in)
	}
	return ins, false, nil
}

// zsetOpArgs are a sorted-set operation's options.
type zsetOpArgs struct {
	keys       [][]byte
	weights    []float64
	aggregate  string // "sum", "min", "max"
	withScores bool
	limit      int64 // ZINTERCARD's, 0 for none
}

// parseZsetOp reads NUMKEYS KEY... [WEIGHTS w...] [AGGREGATE a]
// [WITHSCORES] [LIMIT n] from args[at:], as Redis's
// zunionInterDiffGenericCommand does (the keys' types are checked
// before the options, by the caller).
func parseZsetOp(name string, args [][]byte, at int, op zsetOp, store, card bool) (a zsetOpArgs, msg string) {
	n, ok := ParseInt(args[at])
	switch {
	case !ok:
		return a, ErrNotInteger
	case n < 1:
		return a, "ERR at least 1 input key is needed for '" + name + "' command"
	case n > int64(len(args)-at-1):
		return a, ErrSyntax
	}
	a.keys, a.aggregate = args[at+1:at+1+int(n)], "sum"
	for i := at + 1 + int(n); i < len(args); {
		rest := len(args) - i
		switch {
		case op != zDiff && !card && rest >= int(n)+1 && equalFold(args[i], "weights"):
			i++
			for j := 0; j < int(n); j, i = j+1, i+1 {
				w, ok := parseScore(args[i])
				if !ok {
					return a, "ERR weight value is not a float"
				}
				a.weights = append(a.weights, w)
			}
		case op != zDiff && !card && rest >= 2 && equalFold(args[i], "aggregate"):
			switch {
			case equalFold(args[i+1], "sum"), equalFold(args[i+1], "min"), equalFold(args[i+1], "max"):
				a.aggregate = string(bytes.ToLower(args[i+1]))
			default:
				return a, ErrSyntax
			}
			i += 2
		case !store && !card && equalFold(args[i], "withscores"):
			a.withScores = true
			i++
		case card && rest >= 2 && equalFold(args[i], "limit"):
			// Redis words a LIMIT that is no integer the same way.
			l, ok := ParseInt(args[i+1])
			if !ok || l < 0 {
				return a, errLimitNegative
			}
			a.limit = l
			i += 2
		default:
			return a, ErrSyntax
		}
	}
	return a, ""
}

// zsetOpResult computes op over the inputs, sorted by score, then member.
func zsetOpResult(op zsetOp, ins []zinput, a zsetOpArgs) []zitem {
	// Redis's arithmetic, NaN included: a weighted score that is NaN
	// (0 * inf) counts as 0 where Redis says so (union, the first input
	// of an intersection), and MIN and MAX are C's comparisons, which
	// keep the total when the other is NaN.
	weighted := func(i int, f float64) float64 {
		if a.weights == nil {
			return f
		}
		return f * a.weights[i]
	}
	noNaN := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return v
	}
	agg := func(total, v float64) float64 {
		switch a.aggregate {
		case "min":
			if v < total {
				return v
			}
			return total
		case "max":
			if v > total {
				return v
			}
			return total
		}
		return noNaN(total + v) // inf + -inf
	}
	acc := map[string]float64{}
	switch op {
	case zUnion:
		for i, in := range ins {
			for m, f := range in {
				if g, ok := acc[m]; ok {
					acc[m] = agg(g, noNaN(weighted(i, f)))
				} else {
					acc[m] = noNaN(weighted(i, f))
				}
			}
		}
	case zInter:
		for m, f := range ins[0] {
			v, all := noNaN(weighted(0, f)), true
			for i := 1; i < len(ins) && all; i++ {
				g, ok := ins[i][m]
				if all = ok; ok {
					v = agg(v, weighted(i, g))
				}
			}
			if all {
				acc[m] = v
			}
		}
	case zDiff:
		for m, f := range ins[0] {
			in := false
			for _, other := range ins[1:] {
				if _, in = other[m]; in {
					break
				}
			}
			if !in {
				acc[m] = f
			}
		}
	}
	items := make([]zitem, 0, len(acc))
	for m, f := range acc {
		items = append(items, zitem{m: []byte(m), f: f})
	}
	slices.SortFunc(items, func(x, y zitem) int {
		if x.f != y.f {
			if x.f < y.f {
				return -1
			}
			return 1
		}
		return bytes.Compare(x.m, y.m)
	})
	return items
}

// zsetOpInputs reads a sorted-set operation's arguments (its count at
// args[at]) and inputs, in Redis's order: the count, the keys' types,
// then the options. reply is the error to answer instead.
func zsetOpInputs(r Reader, args [][]byte, at int, op zsetOp, store, card bool) (a zsetOpArgs, ins []zinput, reply []byte, err error) {
	a, msg := parseZsetOp(string(bytes.ToLower(args[0])), args, at, op, store, card)
	if msg != "" && a.keys == nil {
		return a, nil, appendErr(nil, msg), nil
	}
	ins, wrong, err := loadZinputs(r, a.keys)
	switch {
	case err != nil:
		return a, nil, nil, err
	case wrong:
		return a, nil, appendErr(nil, ErrWrongType), nil
	case msg != "":
		return a, nil, appendErr(nil, msg), nil
	}
	return a, ins, nil, nil
}

func evalZsetOp(op zsetOp) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		a, ins, reply, err := zsetOpInputs(r, args, 1, op, false, false)
		if err != nil || reply != nil {
			return append(out, reply...), err
		}
		return appendZitems(out, zsetOpResult(op, ins, a), a.withScores), nil
	}
}

// storeZitems replaces whatever is at key with a sorted set of items (an
// empty one deletes the key).
func storeZitems(w Writer, key []byte, items []zitem) error {
	if err := delKey(w, key); err != nil {
		return err
	}
	z := zset{key: key}
	if len(items) == 0 {
		return nil
	}
	if err := z.create(w, key, typeZSet); err != nil {
		return err
	}
	for _, it := range items {
		if err := z.put(w, it.m, it.f, 0, false); err != nil {
			return err
		}
	}
	return z.save(w, key)
}

func evalZsetOpStore(op zsetOp) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		a, ins, reply, err := zsetOpInputs(w, args, 2, op, true, false)
		if err != nil || reply != nil {
			return append(out, reply...), err
		}
		items := zsetOpResult(op, ins, a)
		if err := storeZitems(w, args[1], items); err != nil {
			return out, err
		}
		return resp.AppendInt(out, int64(len(items))), nil
	}
}

func evalZintercard(r Reader, args [][]byte, out []byte) ([]byte, error) {
	a, ins, reply, err := zsetOpInputs(r, args, 1, zInter, false, true)
	if err != nil || reply != nil {
		return append(out, reply...), err
	}
	n := int64(len(zsetOpResult(zInter, ins, a)))
	if a.limit > 0 {
		n = min(n, a.limit)
	}
	return resp.AppendInt(out, n), nil
}

func evalSintercard(r Reader, args [][]byte, out []byte) ([]byte, error) {
	n, ok := ParseInt(args[1])
	if !ok || n < 1 {
		return appendErr(out, errNumKeysPositive), nil
	}
	if n > int64(len(args)-2) {
		return appendErr(out, errNumKeysTooMany), nil
	}
	limit := int64(0)
	for i := 2 + int(n); i < len(args); i++ {
		if !equalFold(args[i], "limit") || i+1 >= len(args) {
			return appendErr(out, ErrSyntax), nil
		}
		l, ok := ParseInt(args[i+1])
		if !ok || l < 0 {
			return appendErr(out, errLimitNegative), nil
		}
		limit = l
		i++
	}
	res, wrong, err := combine(r, args[2:2+n], setInter)
	if err != nil || wrong {
		return wrongOr(out, err)
	}
	card := int64(len(res))
	if limit > 0 {
		card = min(card, limit)
	}
	return resp.AppendInt(out, card), nil
}

// parseMpop reads LMPOP's and ZMPOP's NUMKEYS KEY... WHERE [COUNT n]
// from args[at:]; which is 0 for LEFT/MIN, 1 for RIGHT/MAX.
func parseMpop(args [][]byte, at int, left, right string) (keys [][]byte, which int, count int64, msg string) {
	n, ok := ParseInt(args[at])
	if !ok || n < 1 {
		return nil, 0, 0, errNumKeysPositive
	}
	if n > int64(len(args)-at-2) {
		return nil, 0, 0, ErrSyntax
	}
	keys = args[at+1 : at+1+int(n)]
	i := at + 1 + int(n)
	switch {
	case equalFold(args[i], left):
	case equalFold(args[i], right):
		which = 1
	default:
		return nil, 0, 0, ErrSyntax
	}
	count = 1
	hasCount := false
	for i++; i < len(args); i += 2 {
		if !equalFold(args[i], "count") || hasCount || i+1 >= len(args) {
			return nil, 0, 0, ErrSyntax
		}
		c, ok := ParseInt(args[i+1])
		if !ok || c < 1 {
			return nil, 0, 0, errCountPositive
		}
		count, hasCount = c, true
	}
	return keys, which, count, ""
}

func evalLmpop(w Writer, args [][]byte, out []byte) ([]byte, error) {
	keys, which, count, msg := parseMpop(args, 1, "left", "right")
	if msg != "" {
		return appendErr(out, msg), nil
	}
	for _, k := range keys {
		l, err := loadList(w, k)
		if err != nil || l.wrong {
			return wrongOr(out, err)
		}
		if !l.ok || l.n == 0 {
			continue
		}
		var vs [][]byte
		for int64(len(vs)) < count && l.n > 0 {
			v, err := l.pop(w, which == 0)
			if err != nil {
				return out, err
			}
			vs = append(vs, v)
		}
		if err := l.save(w, k); err != nil {
			return out, err
		}
		out = resp.AppendArrayHeader(out, 2)
		out = resp.AppendBulk(out, k)
		return appendMembers(out, vs), nil
	}
	return resp.AppendNullArray(out), nil
}

func evalZmpop(w Writer, args [][]byte, out []byte) ([]byte, error) {
	keys, which, count, msg := parseMpop(args, 1, "min", "max")
	if msg != "" {
		return appendErr(out, msg), nil
	}
	for _, k := range keys {
		z, err := loadZset(w, k)
		if err != nil || z.wrong {
			return wrongOr(out, err)
		}
		if !z.ok || z.n == 0 {
			continue
		}
		items, err := z.pop(w, which == 1, count)
		if err != nil {
			return out, err
		}
		out = resp.AppendArrayHeader(out, 2)
		out = resp.AppendBulk(out, k)
		out = resp.AppendArrayHeader(out, len(items))
		for _, it := range items {
			out = appendScore(resp.AppendBulk(resp.AppendArrayHeader(out, 2), it.m), it.f)
		}
		return out, nil
	}
	return resp.AppendNullArray(out), nil
}

// evalZrangestore is ZRANGE's selection stored at the first key.
func evalZrangestore(w Writer, args [][]byte, out []byte) ([]byte, error) {
	res, err := zrangeOf(w, rangeZrange, args[1:], true)
	switch {
	case err != nil:
		return out, err
	case res.wrong:
		return appendErr(out, ErrWrongType), nil
	case res.msg != "":
		return appendErr(out, res.msg), nil
	}
	items := make([]zitem, len(res.items))
	for i, it := range res.items {
		items[i] = zitem{m: bytes.Clone(it.m), f: it.f}
	}
	if err := storeZitems(w, args[1], items); err != nil {
		return out, err
	}
	return resp.AppendInt(out, int64(len(items))), nil
}
