package kv

import (
	"strconv"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// BITFIELD and BITFIELD_RO, Redis 7.0's: every operation is read first
// (any error answers alone, changing nothing), a write pads the string
// with zeros to its highest bit first, and overflows wrap, saturate or
// fail as Redis's checkSignedBitfieldOverflow and
// checkUnsignedBitfieldOverflow decide.
func init() {
	register(command.Bitmap,
		writer("bitfield", -2, 1, 1, 1, evalBitfield(false)),
		reader("bitfield_ro", -2, 1, 1, 1, func(r Reader, args [][]byte, out []byte) ([]byte, error) {
			return bitfieldOps(r, nil, args, out, true)
		}),
	)
}

const (
	errBitfieldType   = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
	errOverflowType   = "ERR Invalid OVERFLOW type specified"
	errBitfieldROOnly = "ERR BITFIELD_RO only supports the GET subcommand"
)

type overflow int

const (
	owWrap overflow = iota
	owSat
	owFail
)

type bfOp struct {
	op     byte // 'g', 's', 'i'
	signed bool
	bits   uint
	offset uint64
	arg    int64
	ow     overflow
}

func evalBitfield(_ bool) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		return bitfieldOps(w, w, args, out, false)
	}
}

func parseBitfieldType(b []byte) (signed bool, bits uint, ok bool) {
	if len(b) < 2 {
		return false, 0, false
	}
	switch b[0] {
	case 'i', 'I':
		signed = true
	case 'u', 'U':
	default:
		return false, 0, false
	}
	n, err := strconv.ParseUint(string(b[1:]), 10, 8)
	if err != nil || n < 1 || signed && n > 64 || !signed && n > 63 {
		return false, 0, false
	}
	return signed, uint(n), true
}

func parseBitfieldOffset(b []byte, bits uint) (uint64, bool) {
	hash := len(b) > 0 && b[0] == '#'
	if hash {
		b = b[1:]
	}
	n, ok := ParseInt(b)
	if !ok {
		return 0, false
	}
	if hash {
		if n > (1<<62)/int64(bits) {
			return 0, false
		}
		n *= int64(bits)
	}
	if n < 0 || n>>3 >= MaxValueBytes {
		return 0, false
	}
	return uint64(n), true
}

func bitfieldOps(r Reader, w Writer, args [][]byte, out []byte, readOnly bool) ([]byte, error) {
	var ops []bfOp
	ow := owWrap
	highest, writes := uint64(0), false
	for i := 2; i < len(args); {
		rest := len(args) - i - 1
		switch {
		case equalFold(args[i], "get") && rest >= 2:
			signed, bits, ok := parseBitfieldType(args[i+1])
			if !ok {
				return appendErr(out, errBitfieldType), nil
			}
			off, ok := parseBitfieldOffset(args[i+2], bits)
			if !ok {
				return appendErr(out, errBitOffset), nil
			}
			ops = append(ops, bfOp{op: 'g', signed: signed, bits: bits, offset: off})
			i += 3
		case (equalFold(args[i], "set") || equalFold(args[i], "incrby")) && rest >= 3:
			if readOnly {
				return appendErr(out, errBitfieldROOnly), nil
			}
			signed, bits, ok := parseBitfieldType(args[i+1])
			if !ok {
				return appendErr(out, errBitfieldType), nil
			}
			off, ok := parseBitfieldOffset(args[i+2], bits)
			if !ok {
				return appendErr(out, errBitOffset), nil
			}
			v, ok := ParseInt(args[i+3])
			if !ok {
				return appendErr(out, ErrNotInteger), nil
			}
			op := byte('s')
			if equalFold(args[i], "incrby") {
				op = 'i'
			}
			ops = append(ops, bfOp{op: op, signed: signed, bits: bits, offset: off, arg: v, ow: ow})
			highest, writes = max(highest, off+uint64(bits)-1), true
			i += 4
		case equalFold(args[i], "overflow") && rest >= 1:
			if readOnly {
				return appendErr(out, errBitfieldROOnly), nil
			}
			switch {
			case equalFold(args[i+1], "wrap"):
				ow = owWrap
			case equalFold(args[i+1], "sat"):
				ow = owSat
			case equalFold(args[i+1], "fail"):
				ow = owFail
			default:
				return appendErr(out, errOverflowType), nil
			}
			i += 2
		default:
			if readOnly && !equalFold(args[i], "get") {
				return appendErr(out, errBitfieldROOnly), nil
			}
			return appendErr(out, ErrSyntax), nil
		}
	}
	it, err := load(r, args[1])
	if err != nil || it.wrong {
		return wrongOr(out, err)
	}
	v := append([]byte(nil), it.v...)
	if writes {
		if need := int(highest/8) + 1; need > len(v) {
			v = append(v, make([]byte, need-len(v))...)
		}
	}
	out = resp.AppendArrayHeader(out, len(ops))
	for _, o := range ops {
		old := getBits(v, o.offset, o.bits)
		if o.op == 'g' {
			if o.signed {
				out = resp.AppendInt(out, signExtend(old, o.bits))
			} else {
				out = resp.AppendInt(out, int64(old))
			}
			continue
		}
		var newv uint64
		var reply int64
		var over bool
		if o.signed {
			oldv := signExtend(old, o.bits)
			if o.op == 'i' {
				n, ov := signedOverflow(oldv, o.arg, o.bits, o.ow)
				over, newv, reply = ov, uint64(n), n
				if !ov {
					newv, reply = uint64(oldv+o.arg), oldv+o.arg
				}
			} else {
				n, ov := signedOverflow(o.arg, 0, o.bits, o.ow)
				over, newv, reply = ov, uint64(o.arg), oldv
				if ov {
					newv = uint64(n)
				}
			}
		} else {
			if o.op == 'i' {
				n, ov := unsignedOverflow(old, o.arg, o.bits, o.ow)
				over, newv, reply = ov, n, int64(n)
				if !ov {
					newv = old + uint64(o.arg)
					reply = int64(newv)
				}
			} else {
				n, ov := unsignedOverflow(uint64(o.arg), 0, o.bits, o.ow)
				over, newv, reply = ov, uint64(o.arg), int64(old)
				if ov {
					newv = n
				}
			}
		}
		if over && o.ow == owFail {
			out = resp.AppendNull(out)
			continue
		}
		out = resp.AppendInt(out, reply)
		setBits(v, o.offset, o.bits, newv)
	}
	if writes {
		if err := w.Put(args[1], encodeString(v, it.at), !it.present); err != nil {
			return out, err
		}
	}
	return out, nil
}

// getBits reads bits bits at bit offset off (most significant first);
// bits past the string read as zeros.
func getBits(v []byte, off uint64, bits uint) uint64 {
	var x uint64
	for i := uint(0); i < bits; i++ {
		p := off + uint64(i)
		bit := uint64(0)
		if byteAt := p >> 3; byteAt < uint64(len(v)) {
			bit = uint64(v[byteAt]>>(7-p&7)) & 1
		}
		x = x<<1 | bit
	}
	return x
}

func setBits(v []byte, off uint64, bits uint, x uint64) {
	for i := uint(0); i < bits; i++ {
		p := off + uint64(i)
		bit := byte(x>>(bits-1-i)) & 1
		mask := byte(1) << (7 - p&7)
		if bit == 1 {
			v[p>>3] |= mask
		} else {
			v[p>>3] &^= mask
		}
	}
}

func signExtend(x uint64, bits uint) int64 {
	if bits == 64 {
		return int64(x)
	}
	if x&(1<<(bits-1)) != 0 {
		x |= ^uint64(0) << bits
	}
	return int64(x)
}

// unsignedOverflow is Redis's checkUnsignedBitfieldOverflow: whether
// value+incr leaves bits bits, and the wrapped or saturated result.
func unsignedOverflow(value uint64, incr int64, bits uint, ow overflow) (uint64, bool) {
	max := uint64(1)<<bits - 1
	maxIncr := int64(max - value)
	minIncr := -int64(value)
	wrap := func() uint64 { return (value + uint64(incr)) &^ (^uint64(0) << bits) }
	switch {
	case value > max || incr > 0 && incr > maxIncr:
		if ow == owWrap {
			return wrap(), true
		}
		return max, true
	case incr < 0 && incr < minIncr:
		if ow == owWrap {
			return wrap(), true
		}
		return 0, true
	}
	return 0, false
}

// signedOverflow is Redis's checkSignedBitfieldOverflow.
func signedOverflow(value, incr int64, bits uint, ow overflow) (int64, bool) {
	max := int64(1<<(bits-1) - 1)
	if bits == 64 {
		max = 1<<63 - 1
	}
	min := -max - 1
	maxIncr, minIncr := max-value, min-value
	wrap := func() int64 {
		c := uint64(value) + uint64(incr)
		if bits < 64 {
			mask := ^uint64(0) << bits
			if c&(1<<(bits-1)) != 0 {
				c |= mask
			} else {
				c &^= mask
			}
		}
		return int64(c)
	}
	switch {
	case value > max || bits != 64 && incr > maxIncr || value >= 0 && incr > 0 && incr > maxIncr:
		if ow == owWrap {
			return wrap(), true
		}
		return max, true
	case value < min || bits != 64 && incr < minIncr || value < 0 && incr < 0 && incr < minIncr:
		if ow == owWrap {
			return wrap(), true
		}
		return min, true
	}
	return 0, false
}
