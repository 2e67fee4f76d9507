package rdb

import "errors"

// lzfMaxRatio is the most one byte of LZF input can expand to. The
// longest back reference is three bytes (control, extra length, offset)
// and copies 7+255+2 = 264 bytes; literals never expand. So a declared
// uncompressed length above 88 times the compressed length is a lie, and
// refusing it before allocating keeps a tiny payload from reserving
// gigabytes. A tighter cap would refuse real payloads: Redis's compressor
// emits exactly those maximal references for long runs of one byte.
const lzfMaxRatio = 88

var errLZF = errors.New("invalid LZF data")

// lzfDecompress expands in into exactly len(out) bytes, as liblzf's
// lzf_decompress (src/lzf_d.c) with input checking on, except that
// producing fewer bytes than declared is an error here too.
func lzfDecompress(in, out []byte) error {
	ip, op := 0, 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 1<<5 { // a run of ctrl+1 literal bytes
			n := ctrl + 1
			if op+n > len(out) || ip+n > len(in) {
				return errLZF
			}
			copy(out[op:], in[ip:ip+n])
			op += n
			ip += n
			continue
		}
		// A back reference: length in the top 3 bits (7 means an extra
		// length byte follows), distance-1 in the low 5 bits and the
		// next byte.
		n := ctrl >> 5
		if n == 7 {
			if ip >= len(in) {
				return errLZF
			}
			n += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return errLZF
		}
		ref := op - (ctrl&0x1f)<<8 - int(in[ip]) - 1
		ip++
		n += 2
		if op+n > len(out) || ref < 0 {
			return errLZF
		}
		// The source may overlap the destination (a distance shorter
		// than the length repeats a pattern), so copy forward byte by
		// byte unless the two are disjoint.
		if ref+n <= op {
			copy(out[op:op+n], out[ref:ref+n])
			op += n
		} else {
			for range n {
				out[op] = out[ref]
				op++
				ref++
			}
		}
	}
	if op != len(out) {
		return errLZF
	}
	return nil
}
