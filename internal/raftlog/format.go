package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Frame header layout (little endian):
//
//	[0:4)   payload length
//	[4:8)   synced: bytes of this segment known durable when the record was written
//	[8:12)  crc32c of the payload
//	[12:16) crc32c of the segment's sequence number and bytes [0:12)
//
// The header has its own checksum so that recovery can recognise a record
// header at any offset in O(1) (see scanTail), and it is seeded with the
// segment's sequence number so that a record copied into another segment
// file does not verify.
const headerSize = 16

// MaxRecordSize bounds one record's payload. A larger length on disk is
// corruption (or a torn tail), never an allocation.
const MaxRecordSize = 256 << 20

// maxSegmentBytes keeps every offset in a uint32 (the index stores them so).
const maxSegmentBytes = 1<<32 - 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record kinds, the first payload byte.
const (
	kindBatch      = 'B'
	kindCheckpoint = 'C'
)

// Op kinds inside a batch record.
const (
	opAppend    = 'a'
	opHardState = 'h'
	opCompact   = 'c'
	opReset     = 'r'
	opDrop      = 'd'
)

// ErrCorrupt wraps every error that reports damaged or inconsistent bytes
// on disk that may have been synced: the log refuses to open rather than
// drop them.
var ErrCorrupt = errors.New("raftlog: corrupt log")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func headerCRC(seq uint32, h []byte) uint32 {
	var s [4]byte
	binary.LittleEndian.PutUint32(s[:], seq)
	c := crc32.Update(0, castagnoli, s[:])
	return crc32.Update(c, castagnoli, h[:12])
}

// putHeader fills h (headerSize bytes) for payload p.
func putHeader(h []byte, seq uint32, synced uint32, p []byte) {
	binary.LittleEndian.PutUint32(h[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(h[4:], synced)
	binary.LittleEndian.PutUint32(h[8:], crc32.Checksum(p, castagnoli))
	binary.LittleEndian.PutUint32(h[12:], headerCRC(seq, h))
}

// header is a decoded, header-checksum-verified frame header.
type header struct {
	length, synced, payloadCRC uint32
}

// parseHeader verifies h's own checksum; ok is false for anything that is
// not a header this log wrote into segment seq.
func parseHeader(seq uint32, h []byte) (header, bool) {
	if len(h) < headerSize || binary.LittleEndian.Uint32(h[12:]) != headerCRC(seq, h) {
		return header{}, false
	}
	return header{
		length:     binary.LittleEndian.Uint32(h[0:]),
		synced:     binary.LittleEndian.Uint32(h[4:]),
		payloadCRC: binary.LittleEndian.Uint32(h[8:]),
	}, true
}

// Segment files are named by a 32-bit sequence number in fixed-width hex
// and end in ".log" (which also makes simfs treat them as WAL files: its
// torn tails and FailNextSyncs apply to them).
const segSuffix = ".log"

func segName(seq uint32) string { return fmt.Sprintf("%08x%s", seq, segSuffix) }

// IsSegmentName reports whether name (a base name) is one of the log's
// segment files, for tools that treat them as write-ahead logs.
func IsSegmentName(name string) bool {
	_, ok := parseSegName(name)
	return ok
}

func parseSegName(name string) (uint32, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != 8 || strings.ToLower(hex) != hex {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// decoder reads uvarints and byte strings from a payload; the first error
// sticks and every later read returns zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = corruptf("bad %s at payload offset %d", what, d.off)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail("byte")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.off += n
	return v
}

// count reads a count of items that take at least min bytes each, so that
// a huge count is refused before anything is allocated for it.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64((len(d.b)-d.off)/min) {
		d.fail("count")
		return 0
	}
	return int(n)
}

// bytes returns the offset within the payload and the length of a
// length-prefixed byte string.
func (d *decoder) bytes() (off, n int) {
	l := d.uvarint()
	if d.err == nil && l > uint64(len(d.b)-d.off) {
		d.fail("length")
	}
	if d.err != nil {
		return 0, 0
	}
	off = d.off
	d.off += int(l)
	return off, int(l)
}

func (d *decoder) done() bool { return d.err == nil && d.off == len(d.b) }
