package kv

import (
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// LCS, Redis 7.0's: the dynamic-programming table of the two strings,
// walked back from the end, with its ranges emitted as Redis emits them.
// The table is bounded as Redis bounds it by proto-max-bulk-len (here
// MaxValueBytes): one command never holds more.
func init() {
	register(command.String, reader("lcs", -3, 1, 2, 1, evalLcs))
}

func evalLcs(r Reader, args [][]byte, out []byte) ([]byte, error) {
	var strs [2][]byte
	for i, k := range args[1:3] {
		it, err := load(r, k)
		if err != nil {
			return out, err
		}
		if it.wrong {
			return appendErr(out, "ERR The specified keys must contain string values"), nil
		}
		strs[i] = it.v
	}
	a, b := strs[0], strs[1]
	getLen, getIdx, withMatchLen := false, false, false
	minMatchLen := int64(0)
	for j := 3; j < len(args); j++ {
		switch more := len(args) - 1 - j; {
		case equalFold(args[j], "idx"):
			getIdx = true
		case equalFold(args[j], "len"):
			getLen = true
		case equalFold(args[j], "withmatchlen"):
			withMatchLen = true
		case equalFold(args[j], "minmatchlen") && more > 0:
			n, ok := ParseInt(args[j+1])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			minMatchLen = max(n, 0)
			j++
		default:
			return appendErr(out, ErrSyntax), nil
		}
	}
	if getLen && getIdx {
		return appendErr(out, "ERR If you want both the length and indexes, please just use IDX."), nil
	}
	alen, blen := len(a), len(b)
	if cells := (alen + 1) * (blen + 1); cells*4 > MaxValueBytes {
		return appendErr(out, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"), nil
	}
	w := blen + 1
	lcs := make([]uint32, (alen+1)*w)
	at := func(i, j int) uint32 { return lcs[j+i*w] }
	for i := 1; i <= alen; i++ {
		for j := 1; j <= blen; j++ {
			if a[i-1] == b[j-1] {
				lcs[j+i*w] = at(i-1, j-1) + 1
			} else {
				lcs[j+i*w] = max(at(i-1, j), at(i, j-1))
			}
		}
	}
	n := int(at(alen, blen))
	if getLen {
		return resp.AppendInt(out, int64(n)), nil
	}
	result := make([]byte, n)
	idx := n
	var ranges []byte
	count := 0
	aStart, aEnd, bStart, bEnd := alen, 0, 0, 0 // aStart == alen: no range yet
	for i, j := alen, blen; i > 0 && j > 0; {
		emit := false
		if a[i-1] == b[j-1] {
			result[idx-1] = a[i-1]
			if aStart == alen {
				aStart, aEnd, bStart, bEnd = i-1, i-1, j-1, j-1
			} else if aStart == i && bStart == j {
				aStart--
				bStart--
			} else {
				emit = true
			}
			if aStart == 0 || bStart == 0 {
				emit = true
			}
			idx, i, j = idx-1, i-1, j-1
		} else {
			if at(i-1, j) > at(i, j-1) {
				i--
			} else {
				j--
			}
			if aStart != alen {
				emit = true
			}
		}
		if emit {
			matchLen := int64(aEnd - aStart + 1)
			if getIdx && (minMatchLen == 0 || matchLen >= minMatchLen) {
				per := 2
				if withMatchLen {
					per = 3
				}
				ranges = resp.AppendArrayHeader(ranges, per)
				ranges = resp.AppendInt(resp.AppendInt(resp.AppendArrayHeader(ranges, 2), int64(aStart)), int64(aEnd))
				ranges = resp.AppendInt(resp.AppendInt(resp.AppendArrayHeader(ranges, 2), int64(bStart)), int64(bEnd))
				if withMatchLen {
					ranges = resp.AppendInt(ranges, matchLen)
				}
				count++
			}
			aStart = alen
		}
	}
	if !getIdx {
		return resp.AppendBulk(out, result), nil
	}
	out = resp.AppendArrayHeader(out, 4)
	out = resp.AppendBulkString(out, "matches")
	out = append(resp.AppendArrayHeader(out, count), ranges...)
	out = resp.AppendBulkString(out, "len")
	return resp.AppendInt(out, int64(n)), nil
}
