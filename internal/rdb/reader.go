package rdb

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// decoder reads one value from the body of a payload (between the type
// byte and the footer). It never indexes past buf: every read checks the
// bytes left first, so a hostile length fails instead of panicking or
// allocating, and every allocation whose size the input chooses is
// charged to budget before it is made.
type decoder struct {
	buf    []byte
	off    int
	budget int64
	arena  []byte // the current chunk small strings are copied into
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s (offset %d)", ErrBadFormat, fmt.Sprintf(format, args...), d.off+1)
}

// charge takes n bytes from the allocation budget.
func (d *decoder) charge(n uint64) error {
	if d.budget < 0 || n > uint64(d.budget) {
		d.budget = -1
		return errBudget
	}
	d.budget -= int64(n)
	return nil
}

func (d *decoder) left() int { return len(d.buf) - d.off }

func (d *decoder) take(n uint64) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, d.errorf("%d bytes wanted, %d left", n, d.left())
	}
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) byte() (byte, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// The first byte of an RDB length says how it is stored (src/rdb.h):
// 00 six bits, 01 fourteen bits (big endian), 0x80 and 0x81 a 32- or
// 64-bit big-endian number after it, and 11 not a length but the
// special string encoding in the low six bits.
const (
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// length reads a length, or with special set, a string encoding.
func (d *decoder) length() (n uint64, special bool, err error) {
	b, err := d.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		lo, err := d.byte()
		return uint64(b&0x3f)<<8 | uint64(lo), false, err
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		p, err := d.take(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case 0x81:
		p, err := d.take(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, d.errorf("unknown length encoding 0x%02x", b)
}

// plainLength reads a length where a string encoding makes no sense.
func (d *decoder) plainLength() (uint64, error) {
	n, special, err := d.length()
	if err == nil && special {
		err = d.errorf("string encoding %d where a length belongs", n)
	}
	return n, err
}

// count reads the number of items of a collection, each of which takes
// at least least bytes of what is left: a count the payload cannot hold
// is refused here, before anything is sized by it.
func (d *decoder) count(least int) (int, error) {
	n, err := d.plainLength()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.left()/least) {
		return 0, d.errorf("%d items cannot fit in %d bytes", n, d.left())
	}
	if n == 0 {
		// Redis deletes a collection with its last element, and RESTORE
		// refuses an empty one rather than make a key that cannot exist.
		return 0, d.errorf("empty collection")
	}
	return int(n), nil
}

// str reads a string as rdbGenericLoadStringObject does: raw bytes after
// a length, an 8, 16 or 32-bit integer, or LZF-compressed. A raw string comes
// back as a view of the payload (owned false); the caller copies what it
// keeps. Integers and decompressed strings are new allocations, charged.
func (d *decoder) str() (b []byte, owned bool, err error) {
	n, special, err := d.length()
	if err != nil {
		return nil, false, err
	}
	if !special {
		if n > MaxStringBytes {
			return nil, false, d.errorf("string of %d bytes is longer than MaxStringBytes", n)
		}
		b, err := d.take(n)
		return b, false, err
	}
	var v int64
	switch n {
	case encInt8:
		p, err := d.take(1)
		if err != nil {
			return nil, false, err
		}
		v = int64(int8(p[0]))
	case encInt16:
		p, err := d.take(2)
		if err != nil {
			return nil, false, err
		}
		v = int64(int16(binary.LittleEndian.Uint16(p)))
	case encInt32:
		p, err := d.take(4)
		if err != nil {
			return nil, false, err
		}
		v = int64(int32(binary.LittleEndian.Uint32(p)))
	case encLZF:
		b, err := d.lzf()
		return b, true, err
	default:
		return nil, false, d.errorf("unknown string encoding %d", n)
	}
	b, err = d.formatInt(v)
	return b, true, err
}

func (d *decoder) lzf() ([]byte, error) {
	clen, err := d.plainLength()
	if err != nil {
		return nil, err
	}
	ulen, err := d.plainLength()
	if err != nil {
		return nil, err
	}
	if clen > uint64(d.left()) {
		return nil, d.errorf("%d compressed bytes wanted, %d left", clen, d.left())
	}
	if ulen > clen*lzfMaxRatio || ulen > MaxStringBytes {
		return nil, d.errorf("LZF length %d cannot come from %d bytes", ulen, clen)
	}
	if err := d.charge(ulen); err != nil {
		return nil, err
	}
	in, _ := d.take(clen)
	out := make([]byte, ulen)
	if err := lzfDecompress(in, out); err != nil {
		return nil, d.errorf("%v", err)
	}
	return out, nil
}

// Copies of small strings share chunks of arenaChunk bytes, so a
// collection of a million short members costs a few allocations rather
// than a million; each copy's capacity ends at its length, so appending
// to one never overwrites its neighbour.
const (
	arenaChunk = 32 << 10
	arenaSmall = 512
)

// keep returns b as the decoded value may hold it: itself if the decoder
// allocated it, or else a charged copy.
func (d *decoder) keep(b []byte, owned bool) ([]byte, error) {
	if owned {
		return b, nil
	}
	return d.copy(b)
}

func (d *decoder) copy(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return []byte{}, nil // empty, not nil: an empty string is a value
	}
	if len(b) > arenaSmall {
		if err := d.charge(uint64(len(b))); err != nil {
			return nil, err
		}
		return append([]byte(nil), b...), nil
	}
	if err := d.room(len(b)); err != nil {
		return nil, err
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)], nil
}

// room makes sure the arena chunk has n more bytes of capacity.
func (d *decoder) room(n int) error {
	if cap(d.arena)-len(d.arena) >= n {
		return nil
	}
	if err := d.charge(arenaChunk); err != nil {
		return err
	}
	d.arena = make([]byte, 0, arenaChunk)
	return nil
}

// formatInt returns v's decimal text, as Redis shows an integer-encoded
// string.
func (d *decoder) formatInt(v int64) ([]byte, error) {
	if err := d.room(20); err != nil {
		return nil, err
	}
	start := len(d.arena)
	d.arena = strconv.AppendInt(d.arena, v, 10)
	return d.arena[start:len(d.arena):len(d.arena)], nil
}
