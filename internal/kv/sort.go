package kv

import (
	"bytes"
	"errors"
	"slices"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// SORT and SORT_RO as Redis Cluster has them: the elements of a list, set
// or sorted set, numerically (ties by their bytes) or ALPHA, ASC or DESC,
// with LIMIT, and STORE into a list. BY and GET reach other keys by a
// pattern, which a cluster refuses as Redis Cluster does; BY without a
// '*' (nosort) keeps the key's own order.
func init() {
	sort := writer("sort", -2, 1, 1, 1, evalSort)
	sort.KeyAfter = "store"
	register(command.List,
		sort,
		reader("sort_ro", -2, 1, 1, 1, evalSortRO),
	)
}

func evalSort(w Writer, args [][]byte, out []byte) ([]byte, error) {
	return sortCommand(w, w, args, out)
}

func evalSortRO(r Reader, args [][]byte, out []byte) ([]byte, error) {
	return sortCommand(r, nil, args, out)
}

type sortOpts struct {
	desc, alpha, dontSort bool
	offset, count         int64
	store                 []byte
}

func parseSort(args [][]byte, ro bool) (sortOpts, string) {
	o := sortOpts{offset: 0, count: -1}
	for j := 2; j < len(args); j++ {
		left := len(args) - j - 1
		switch {
		case equalFold(args[j], "asc"):
			o.desc = false
		case equalFold(args[j], "desc"):
			o.desc = true
		case equalFold(args[j], "alpha"):
			o.alpha = true
		case equalFold(args[j], "limit") && left >= 2:
			off, ok1 := ParseInt(args[j+1])
			cnt, ok2 := ParseInt(args[j+2])
			if !ok1 || !ok2 {
				return o, ErrNotInteger
			}
			o.offset, o.count = off, cnt
			j += 2
		case equalFold(args[j], "store") && left >= 1 && !ro:
			o.store = args[j+1]
			j++
		case equalFold(args[j], "by") && left >= 1:
			if bytes.IndexByte(args[j+1], '*') >= 0 {
				return o, "ERR BY option of SORT denied in Cluster mode."
			}
			o.dontSort = true
			j++
		case equalFold(args[j], "get") && left >= 1:
			return o, "ERR GET option of SORT denied in Cluster mode."
		default:
			return o, ErrSyntax
		}
	}
	return o, ""
}

// sortCommand evaluates SORT (w set: STORE may write) and SORT_RO.
func sortCommand(r Reader, w Writer, args [][]byte, out []byte) ([]byte, error) {
	o, msg := parseSort(args, w == nil)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	stored, ok, err := r.Get(args[1])
	if err != nil {
		return out, err
	}
	typ := "none"
	if ok && !Expired(stored, r.NowMS()) {
		typ = typeName(stored)
	}
	var read [][]byte
	switch typ {
	case "none":
	case "list":
		read = [][]byte{[]byte("lrange"), args[1], []byte("0"), []byte("-1")}
	case "set":
		read = [][]byte{[]byte("smembers"), args[1]}
		if o.dontSort && o.store != nil {
			// A set's order is no order: stored results are sorted
			// by their bytes, as Redis does, so replicas and clients agree.
			o.dontSort, o.alpha = false, true
		}
	case "zset":
		read = [][]byte{[]byte("zrange"), args[1], []byte("0"), []byte("-1")}
	default:
		return appendErr(out, ErrWrongType), nil
	}
	var elems [][]byte
	if read != nil {
		reply, err := readWith(r, read)
		if err != nil {
			return out, err
		}
		v, _, perr := resp.ParseValue(reply)
		if perr != nil || v.Kind != '*' {
			return out, errors.New("sort: unreadable collection")
		}
		for _, e := range v.Array {
			elems = append(elems, e.Str)
		}
	}
	if !o.dontSort {
		if msg := sortElems(elems, o.alpha); msg != "" {
			return appendErr(out, msg), nil
		}
		if o.desc {
			slices.Reverse(elems)
		}
	} else if o.desc && typ != "set" {
		slices.Reverse(elems)
	}
	start, end := sortLimit(int64(len(elems)), o.offset, o.count)
	elems = elems[start:end]
	if o.store == nil {
		out = resp.AppendArrayHeader(out, len(elems))
		for _, e := range elems {
			out = resp.AppendBulk(out, e)
		}
		return out, nil
	}
	if err := delKey(w, o.store); err != nil {
		return out, err
	}
	if len(elems) > 0 {
		push := append([][]byte{[]byte("rpush"), o.store}, elems...)
		if _, err := Exec(w, command.Lookup(push[0]), push, nil); err != nil {
			return out, err
		}
	}
	return resp.AppendInt(out, int64(len(elems))), nil
}

// sortElems sorts numerically (ties by bytes) or, alpha, by bytes.
func sortElems(elems [][]byte, alpha bool) string {
	if alpha {
		slices.SortStableFunc(elems, bytes.Compare)
		return ""
	}
	scores := make(map[string]float64, len(elems))
	for _, e := range elems {
		f, ok := parseScore(e)
		if !ok {
			return "ERR One or more scores can't be converted into double"
		}
		scores[string(e)] = f
	}
	slices.SortStableFunc(elems, func(a, b []byte) int {
		fa, fb := scores[string(a)], scores[string(b)]
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return bytes.Compare(a, b)
	})
	return ""
}

// sortLimit is Redis's LIMIT: a negative offset is 0, a negative count
// is all.
func sortLimit(n, offset, count int64) (int64, int64) {
	if offset < 0 {
		offset = 0
	}
	if count < 0 {
		count = n
	}
	start := min(offset, n)
	end := min(start+count, n)
	if count > n-start {
		end = n
	}
	return start, end
}
