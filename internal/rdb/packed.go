package rdb

import "encoding/binary"

// Redis stores small collections, and the nodes of lists, as blobs of
// one of four compact encodings, written into the payload as one string
// each. The walkers below check a blob as Redis's deep integrity checks
// do (lpValidateIntegrity, ziplistValidateIntegrity,
// intsetValidateIntegrity, zipmapValidateIntegrity): every header is
// bounds-checked before it is read, every entry must end inside the
// blob, the blob's own byte count and element count must agree with
// what was walked. They hand each entry to fn and allocate nothing.

// packed is one entry of a listpack, ziplist or intset: a string (a
// view into the blob) or an integer.
type packed struct {
	s     []byte
	n     int64
	isInt bool
}

// signExtend treats the low bits of u as a two's complement number.
func signExtend(u uint64, bits uint) int64 {
	return int64(u<<(64-bits)) >> (64 - bits)
}

// Listpack (src/listpack.c): a 4-byte total size, a 2-byte element count
// (65535 when unknown), entries, and 0xFF. An entry is an encoding byte
// (holding a small integer or a string length, or announcing a longer
// length or an integer after it), the data, and the length of the
// encoding plus data written backwards in 1 to 5 bytes.
const lpCountUnknown = 65535

func (d *decoder) listpack(lp []byte, fn func(packed) error) error {
	if len(lp) < 7 || uint64(binary.LittleEndian.Uint32(lp)) != uint64(len(lp)) || lp[len(lp)-1] != 0xff {
		return d.errorf("listpack header or terminator is corrupt")
	}
	end := len(lp) - 1 // the terminator; no entry may reach it
	want := int(binary.LittleEndian.Uint16(lp[4:]))
	count, p := 0, 6
	for lp[p] != 0xff {
		b := lp[p]
		var hdr, size uint64 // encoding bytes, data bytes
		var e packed
		switch {
		case b&0x80 == 0: // 0xxxxxxx: a 7-bit unsigned integer
			hdr, e = 1, packed{n: int64(b & 0x7f), isInt: true}
		case b&0xc0 == 0x80: // 10xxxxxx: a string of up to 63 bytes
			hdr, size = 1, uint64(b&0x3f)
		case b&0xe0 == 0xc0: // 110xxxxx: a 13-bit integer
			hdr, size, e.isInt = 1, 1, true
		case b&0xf0 == 0xe0: // 1110xxxx: a string of up to 4095 bytes
			hdr = 2
		case b == 0xf0: // a string with a 32-bit length
			hdr = 5
		case b >= 0xf1 && b <= 0xf4: // a 16, 24, 32 or 64-bit integer
			hdr, size, e.isInt = 1, [...]uint64{2, 3, 4, 8}[b-0xf1], true
		default:
			return d.errorf("listpack encoding 0x%02x is invalid", b)
		}
		if uint64(p)+hdr > uint64(end) {
			return d.errorf("listpack entry header overruns the listpack")
		}
		switch hdr {
		case 2:
			size = uint64(b&0x0f)<<8 | uint64(lp[p+1])
		case 5:
			size = uint64(binary.LittleEndian.Uint32(lp[p+1:]))
		}
		entry := hdr + size
		back := lpBacklenSize(entry)
		if uint64(p)+entry+back > uint64(end) {
			return d.errorf("listpack entry overruns the listpack")
		}
		data := lp[p+int(hdr) : p+int(entry)]
		if lpBacklen(lp, p+int(entry+back)-1) != entry {
			return d.errorf("listpack entry length does not match its back length")
		}
		if e.isInt && size > 0 {
			var u uint64
			for i := len(data) - 1; i >= 0; i-- {
				u = u<<8 | uint64(data[i])
			}
			if size == 1 { // the 13-bit form keeps its top bits in b
				u = uint64(b&0x1f)<<8 | u
				e.n = signExtend(u, 13)
			} else {
				e.n = signExtend(u, uint(size*8))
			}
		} else if !e.isInt {
			e.s = data
		}
		if err := fn(e); err != nil {
			return err
		}
		p += int(entry + back)
		count++
	}
	if p != end {
		return d.errorf("listpack terminator before its end")
	}
	if want != lpCountUnknown && want != count {
		return d.errorf("listpack says %d entries, holds %d", want, count)
	}
	return nil
}

func lpBacklenSize(n uint64) uint64 {
	switch {
	case n <= 127:
		return 1
	case n < 16383:
		return 2
	case n < 2097151:
		return 3
	case n < 268435455:
		return 4
	}
	return 5
}

// lpBacklen reads the back length whose last byte is at q: 7 bits a
// byte, read backwards while the high bit says more follow.
func lpBacklen(lp []byte, q int) uint64 {
	var v uint64
	for shift := uint(0); q >= 0; shift += 7 {
		v |= uint64(lp[q]&127) << shift
		if lp[q]&128 == 0 {
			return v
		}
		if shift >= 28 {
			break
		}
		q--
	}
	return 1<<64 - 1
}

// Ziplist (src/ziplist.c), Redis's small encoding before 7.0: a 4-byte
// total size, the 4-byte offset of the last entry, a 2-byte count (65535
// when unknown), entries, and 0xFF. An entry is the previous entry's
// length (1 byte, or 0xFE and 4 bytes), an encoding (a string length in
// 1, 2 or 5 bytes, or an integer type), and the data.
const zlHeader = 10

func (d *decoder) ziplist(zl []byte, fn func(packed) error) error {
	if len(zl) < zlHeader+1 || uint64(binary.LittleEndian.Uint32(zl)) != uint64(len(zl)) || zl[len(zl)-1] != 0xff {
		return d.errorf("ziplist header or terminator is corrupt")
	}
	end := len(zl) - 1
	tail := uint64(binary.LittleEndian.Uint32(zl[4:]))
	if tail > uint64(end) {
		return d.errorf("ziplist tail offset is out of range")
	}
	want := int(binary.LittleEndian.Uint16(zl[8:]))
	count, p, prev, prevLen := 0, zlHeader, -1, uint64(0)
	for zl[p] != 0xff {
		pre := 1
		if zl[p] >= 0xfe {
			pre = 5
		}
		if p+pre > end {
			return d.errorf("ziplist entry header overruns the ziplist")
		}
		enc := zl[p+pre]
		var lensize, size uint64
		var e packed
		switch {
		case enc < 0xc0: // a string; the top two bits give its length's size
			lensize = [...]uint64{1, 2, 5}[enc>>6]
		case enc == 0xfe:
			lensize, size, e.isInt = 1, 1, true
		case enc == 0xc0:
			lensize, size, e.isInt = 1, 2, true
		case enc == 0xf0:
			lensize, size, e.isInt = 1, 3, true
		case enc == 0xd0:
			lensize, size, e.isInt = 1, 4, true
		case enc == 0xe0:
			lensize, size, e.isInt = 1, 8, true
		case enc >= 0xf1 && enc <= 0xfd: // 0 to 12 in the encoding itself
			lensize, e = 1, packed{n: int64(enc&0x0f) - 1, isInt: true}
		default:
			return d.errorf("ziplist encoding 0x%02x is invalid", enc)
		}
		q := p + pre // the encoding
		if uint64(q)+lensize > uint64(end) {
			return d.errorf("ziplist entry header overruns the ziplist")
		}
		switch {
		case enc < 0x40:
			size = uint64(enc & 0x3f)
		case enc < 0x80:
			size = uint64(enc&0x3f)<<8 | uint64(zl[q+1]) // big endian
		case enc < 0xc0:
			size = uint64(binary.BigEndian.Uint32(zl[q+1:]))
		}
		var prevRaw uint64
		if pre == 1 {
			prevRaw = uint64(zl[p])
		} else {
			prevRaw = uint64(binary.LittleEndian.Uint32(zl[p+1:]))
		}
		if prevRaw != prevLen {
			return d.errorf("ziplist previous-entry length is wrong")
		}
		entry := uint64(pre) + lensize + size
		if uint64(p)+entry > uint64(end) {
			return d.errorf("ziplist entry overruns the ziplist")
		}
		data := zl[q+int(lensize) : p+int(entry)]
		if e.isInt && size > 0 {
			var u uint64
			for i := len(data) - 1; i >= 0; i-- {
				u = u<<8 | uint64(data[i])
			}
			e.n = signExtend(u, uint(size*8))
		} else if !e.isInt {
			e.s = data
		}
		if err := fn(e); err != nil {
			return err
		}
		prev, prevLen = p, entry
		p += int(entry)
		count++
	}
	if p != end {
		return d.errorf("ziplist terminator before its end")
	}
	if prev >= 0 && uint64(prev) != tail {
		return d.errorf("ziplist tail offset does not point at the last entry")
	}
	if want != 65535 && want != count {
		return d.errorf("ziplist says %d entries, holds %d", want, count)
	}
	return nil
}

// Intset (src/intset.c): the integer width (2, 4 or 8 bytes), a count,
// then the integers in increasing order, all little endian.
func (d *decoder) intset(is []byte, fn func(packed) error) error {
	if len(is) < 8 {
		return d.errorf("intset header is truncated")
	}
	width := uint64(binary.LittleEndian.Uint32(is))
	n := uint64(binary.LittleEndian.Uint32(is[4:]))
	if width != 2 && width != 4 && width != 8 {
		return d.errorf("intset width %d is invalid", width)
	}
	if 8+n*width != uint64(len(is)) {
		return d.errorf("intset size does not match its count")
	}
	if n == 0 {
		return d.errorf("empty collection")
	}
	var prev int64
	for i := uint64(0); i < n; i++ {
		p := is[8+i*width:]
		var v int64
		switch width {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(p)))
		default:
			v = int64(binary.LittleEndian.Uint64(p))
		}
		// Sorted without repeats: this is also the duplicate check.
		if i > 0 && v <= prev {
			return d.errorf("intset is not strictly increasing")
		}
		prev = v
		if err := fn(packed{n: v, isInt: true}); err != nil {
			return err
		}
	}
	return nil
}

// Zipmap (src/zipmap.c), the hash encoding of Redis 2.4 and older: a
// 1-byte count (254 when unknown), then for each pair the field's
// length, the field, the value's length, a byte counting free bytes
// after the value, the value and the free bytes; then 0xFF. A length is
// 1 byte, or 0xFE and 4 little-endian bytes.
func (d *decoder) zipmap(zm []byte, fn func(field, value []byte) error) error {
	if len(zm) < 2 || zm[len(zm)-1] != 0xff {
		return d.errorf("zipmap terminator is missing")
	}
	end := len(zm) - 1
	p, count := 1, 0
	// length reads a length at p, refusing the long form for a length
	// that fits the short one, which zipmapNext would read differently.
	length := func() (uint64, error) {
		if zm[p] < 254 {
			p++
			return uint64(zm[p-1]), nil
		}
		if p+5 > end {
			return 0, d.errorf("zipmap length overruns the zipmap")
		}
		n := uint64(binary.LittleEndian.Uint32(zm[p+1:]))
		if n < 254 {
			return 0, d.errorf("zipmap length is not canonical")
		}
		p += 5
		return n, nil
	}
	for zm[p] != 0xff {
		n, err := length()
		if err != nil {
			return err
		}
		if uint64(p)+n > uint64(end) {
			return d.errorf("zipmap field overruns the zipmap")
		}
		field := zm[p : p+int(n)]
		p += int(n)
		if n, err = length(); err != nil {
			return err
		}
		if p >= end {
			return d.errorf("zipmap value overruns the zipmap")
		}
		free := uint64(zm[p])
		p++
		if uint64(p)+n+free > uint64(end) {
			return d.errorf("zipmap value overruns the zipmap")
		}
		value := zm[p : p+int(n)]
		p += int(n + free)
		if err := fn(field, value); err != nil {
			return err
		}
		count++
	}
	if p != end {
		return d.errorf("zipmap terminator before its end")
	}
	if count == 0 {
		return d.errorf("empty collection")
	}
	if zm[0] != 254 && int(zm[0]) != count {
		return d.errorf("zipmap says %d pairs, holds %d", zm[0], count)
	}
	return nil
}
