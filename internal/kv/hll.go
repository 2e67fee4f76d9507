package kv

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// HyperLogLog, in Redis's own string format and arithmetic, so PFCOUNT
// answers what Redis answers for the same elements and a value copied
// from Redis (GET, SET) is read: "HYLL", an encoding byte, three unused,
// an 8-byte cached cardinality (little endian, top bit set when stale),
// then 16,384 six-bit registers. Kintsu reads Redis's sparse encoding and
// always writes the dense one (12,304 bytes). The cache is not kept:
// PFCOUNT is a read.
func init() {
	register(command.String,
		writer("pfadd", -2, 1, 1, 1, evalPfadd),
		reader("pfcount", -2, 1, -1, 1, evalPfcount),
		writer("pfmerge", -2, 1, -1, 1, evalPfmerge),
	)
}

const (
	hllP         = 14
	hllQ         = 64 - hllP
	hllRegisters = 1 << hllP
	hllBits      = 6
	hllMax       = 1<<hllBits - 1
	hllHeader    = 16
	hllDenseSize = hllHeader + (hllRegisters*hllBits+7)/8
	hllDense     = 0
	hllSparse    = 1

	errNotHLL     = "WRONGTYPE Key is not a valid HyperLogLog string value."
	errCorruptHLL = "INVALIDOBJ Corrupted HLL object detected"
)

// murmur64A is MurmurHash64A, the hash Redis's HyperLogLog uses.
func murmur64A(key []byte, seed uint64) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	h := seed ^ uint64(len(key))*m
	for len(key) >= 8 {
		k := binary.LittleEndian.Uint64(key)
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
		key = key[8:]
	}
	switch len(key) {
	case 7:
		h ^= uint64(key[6]) << 48
		fallthrough
	case 6:
		h ^= uint64(key[5]) << 40
		fallthrough
	case 5:
		h ^= uint64(key[4]) << 32
		fallthrough
	case 4:
		h ^= uint64(key[3]) << 24
		fallthrough
	case 3:
		h ^= uint64(key[2]) << 16
		fallthrough
	case 2:
		h ^= uint64(key[1]) << 8
		fallthrough
	case 1:
		h ^= uint64(key[0])
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// hllPatLen is the register an element falls in and the length of the
// run of zeros (plus one) its hash then shows, as Redis computes them.
func hllPatLen(ele []byte) (index int, count uint8) {
	h := murmur64A(ele, 0xadc83b19)
	index = int(h & (hllRegisters - 1))
	h >>= hllP
	h |= 1 << hllQ // a sentinel, so the count is at most hllQ+1
	return index, uint8(bits.TrailingZeros64(h) + 1)
}

// hll is a HyperLogLog's registers, one per byte.
type hll [hllRegisters]uint8

// decodeHLL reads a stored string value as a HyperLogLog; ok is false
// when it is not one, corrupt when its encoding is damaged.
func decodeHLL(v []byte) (h *hll, ok, corrupt bool) {
	if len(v) < hllHeader || string(v[:4]) != "HYLL" {
		return nil, false, false
	}
	h = &hll{}
	switch v[4] {
	case hllDense:
		if len(v) != hllDenseSize {
			return nil, false, false
		}
		regs := v[hllHeader:]
		for i := range h {
			b := i * hllBits / 8
			fb := uint(i * hllBits & 7)
			x := uint(regs[b]) >> fb
			if b+1 < len(regs) {
				x |= uint(regs[b+1]) << (8 - fb)
			}
			h[i] = uint8(x & hllMax)
		}
	case hllSparse:
		i := 0
		for p := v[hllHeader:]; len(p) > 0; {
			switch op := p[0]; {
			case op&0xc0 == 0: // ZERO: 1..64 zero registers
				i += int(op&0x3f) + 1
				p = p[1:]
			case op&0xc0 == 0x40: // XZERO: 1..16384 zero registers
				if len(p) < 2 {
					return nil, true, true
				}
				i += (int(op&0x3f)<<8 | int(p[1])) + 1
				p = p[2:]
			default: // VAL: 1..4 registers of one value
				val, run := (op>>2)&0x1f+1, int(op&3)+1
				if i+run > hllRegisters {
					return nil, true, true
				}
				for ; run > 0; run-- {
					h[i] = val
					i++
				}
				p = p[1:]
			}
			if i > hllRegisters {
				return nil, true, true
			}
		}
		if i != hllRegisters {
			return nil, true, true
		}
	default:
		return nil, false, false
	}
	return h, true, false
}

// encode writes h dense, its cached cardinality marked stale.
func (h *hll) encode() []byte {
	v := make([]byte, hllDenseSize)
	copy(v, "HYLL")
	v[4] = hllDense
	v[15] = 1 << 7
	regs := v[hllHeader:]
	for i, r := range h {
		b := i * hllBits / 8
		fb := uint(i * hllBits & 7)
		regs[b] |= r << fb
		if b+1 < len(regs) {
			regs[b+1] |= uint8(uint(r) >> (8 - fb))
		}
	}
	return v
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		zPrime := z
		y *= 0.5
		z -= math.Pow(1-x, 2) * y
		if zPrime == z {
			return z / 3
		}
	}
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		zPrime := z
		z += x * y
		y += y
		if zPrime == z {
			return z
		}
	}
}

// count is Redis's estimate (Ertl's improved estimator).
func (h *hll) count() int64 {
	var histo [64]int
	for _, r := range h {
		histo[r]++
	}
	m := float64(hllRegisters)
	z := m * hllTau((m-float64(histo[hllQ+1]))/m)
	for j := hllQ; j >= 1; j-- {
		z += float64(histo[j])
		z *= 0.5
	}
	z += m * hllSigma(float64(histo[0])/m)
	const alphaInf = 0.721347520444481703680
	return int64(math.Round(alphaInf * m * m / z))
}

// loadHLL reads key as a HyperLogLog: h nil when absent, msg set to
// the error to answer when it holds something else.
func loadHLL(r Reader, key []byte) (h *hll, it item, msg string, err error) {
	it, err = load(r, key)
	switch {
	case err != nil || !it.ok:
		return nil, it, "", err
	case it.wrong:
		return nil, it, ErrWrongType, nil
	}
	h, ok, corrupt := decodeHLL(it.v)
	switch {
	case corrupt:
		return nil, it, errCorruptHLL, nil
	case !ok:
		return nil, it, errNotHLL, nil
	}
	return h, it, "", nil
}

// putHLL stores h at key, keeping the key's expiry, as Redis changes a
// HyperLogLog in place.
func putHLL(w Writer, key []byte, h *hll, it item) error {
	return w.Put(key, encodeString(h.encode(), it.at), !it.present)
}

func evalPfadd(w Writer, args [][]byte, out []byte) ([]byte, error) {
	h, it, msg, err := loadHLL(w, args[1])
	if err != nil || msg != "" {
		return appendErrOr(out, msg, err)
	}
	changed := h == nil
	if h == nil {
		h = &hll{}
	}
	for _, e := range args[2:] {
		i, c := hllPatLen(e)
		if c > h[i] {
			h[i], changed = c, true
		}
	}
	if !changed {
		return resp.AppendInt(out, 0), nil
	}
	return resp.AppendInt(out, 1), putHLL(w, args[1], h, it)
}

// mergeHLLs is the union of the HyperLogLogs at keys (absent ones are
// empty).
func mergeHLLs(r Reader, keys [][]byte) (*hll, string, error) {
	acc := &hll{}
	for _, k := range keys {
		h, _, msg, err := loadHLL(r, k)
		if err != nil || msg != "" {
			return nil, msg, err
		}
		if h != nil {
			acc.merge(h)
		}
	}
	return acc, "", nil
}

func (h *hll) merge(o *hll) {
	for i, r := range o {
		h[i] = max(h[i], r)
	}
}

func evalPfcount(r Reader, args [][]byte, out []byte) ([]byte, error) {
	h, msg, err := mergeHLLs(r, args[1:])
	if err != nil || msg != "" {
		return appendErrOr(out, msg, err)
	}
	return resp.AppendInt(out, h.count()), nil
}

// PFCountValues is PFCOUNT over stored values read elsewhere (the
// front end reads keys of several partitions and counts here): values
// are GET's answers, nil for an absent key.
func PFCountValues(values [][]byte) (int64, string) {
	acc := &hll{}
	for _, v := range values {
		if v == nil {
			continue
		}
		h, ok, corrupt := decodeHLL(v)
		switch {
		case corrupt:
			return 0, errCorruptHLL
		case !ok:
			return 0, errNotHLL
		}
		acc.merge(h)
	}
	return acc.count(), ""
}

func evalPfmerge(w Writer, args [][]byte, out []byte) ([]byte, error) {
	h, msg, err := mergeHLLs(w, args[1:])
	if err != nil || msg != "" {
		return appendErrOr(out, msg, err)
	}
	_, it, _, err := loadHLL(w, args[1])
	if err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), putHLL(w, args[1], h, it)
}

func appendErrOr(out []byte, msg string, err error) ([]byte, error) {
	if err != nil {
		return out, err
	}
	return appendErr(out, msg), nil
}
