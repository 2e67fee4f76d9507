package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the Redis type of a value, as TYPE names it.
type Kind uint8

const (
	String Kind = iota
	List
	Set
	ZSet
	Hash
)

func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case List:
		return "list"
	case Set:
		return "set"
	case ZSet:
		return "zset"
	case Hash:
		return "hash"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Value is one key's value, independent of how Redis encoded it.
// Integers stored in integer encodings come back as their decimal text,
// as Redis's commands would show them. Parse returns members, fields
// and pairs in payload order (which is not sorted), and nothing in a
// Value aliases the payload.
type Value struct {
	Kind   Kind
	Str    []byte         // String
	Elems  [][]byte       // List (in order), Set (members)
	Pairs  []Pair         // Hash
	Scores []ScoredMember // ZSet
}

// Pair is one hash field and its value.
type Pair struct {
	Field, Value []byte
}

// ScoredMember is one sorted-set member and its score.
type ScoredMember struct {
	Member []byte
	Score  float64
}

const (
	// Version is the RDB version Dump writes: Redis 7.0's. Redis refuses
	// a payload whose version is newer than its own, so 10 keeps Dump's
	// output loadable by 7.0 as well as by every later release.
	Version = 10
	// MaxVersion is the newest RDB version Parse accepts: Redis 7.2's
	// (RDB 11), whose only new type for these kinds is the set listpack.
	MaxVersion = 11

	// MaxStringBytes bounds one decoded string, as Redis's default
	// proto-max-bulk-len bounds every string a client can write.
	MaxStringBytes = 512 << 20

	// DefaultMaxBytes is the allocation budget of Parse; see ParseLimit.
	DefaultMaxBytes = 512 << 20
)

// The errors Parse returns. RESTORE answers "ERR " followed by the text
// of ErrVersionOrChecksum or of ErrBadFormat, as Redis does: every
// decoding error wraps ErrBadFormat (errors.Is), with the reason and the
// offset after it for logs.
var (
	ErrVersionOrChecksum = errors.New("DUMP payload version or checksum are wrong")
	ErrBadFormat         = errors.New("Bad data format") //nolint:staticcheck // Redis's reply text
	// ErrUnsupportedType is a stream or module value: real Redis types
	// this package does not decode. It wraps ErrBadFormat.
	ErrUnsupportedType = fmt.Errorf("%w: stream and module values are not supported", ErrBadFormat)
	// errBudget is a payload that would need more than the allocation
	// budget. It wraps ErrBadFormat: the client sees a refusal either way.
	errBudget = fmt.Errorf("%w: value too large to decode", ErrBadFormat)
)

// footerLen is the RDB version (2 bytes) and the CRC64 (8 bytes), both
// little endian, that end every DUMP payload.
const footerLen = 10

// Parse decodes a DUMP payload with an allocation budget of
// DefaultMaxBytes. See ParseLimit.
func Parse(payload []byte) (*Value, error) {
	return ParseLimit(payload, DefaultMaxBytes)
}

// ParseLimit decodes a DUMP payload as Redis 7.0's RESTORE would: it
// checks the version (1 to MaxVersion) and the checksum, then decodes
// the value from any encoding a Redis up to 7.2 writes for strings,
// lists, sets, sorted sets and hashes, refusing what RESTORE refuses
// (duplicate members or fields, NaN scores, empty collections, corrupt
// encodings) and more: it always checks encodings in depth, as Redis
// does only with sanitize-dump-payload yes, and it refuses bytes left
// over between the value and the footer.
//
// maxBytes bounds what decoding allocates, whatever the payload claims:
// the strings it copies or decompresses, the slices that hold them and
// the scratch space duplicate checks need (approximately: per-element
// bookkeeping is counted at a fixed cost). A payload that needs more is
// refused with ErrBadFormat before the allocation is made.
func ParseLimit(payload []byte, maxBytes int64) (*Value, error) {
	if len(payload) < footerLen {
		return nil, ErrVersionOrChecksum
	}
	n := len(payload) - footerLen
	ver := binary.LittleEndian.Uint16(payload[n:])
	if ver < 1 || ver > MaxVersion {
		return nil, ErrVersionOrChecksum
	}
	if crc64(0, payload[:n+2]) != binary.LittleEndian.Uint64(payload[n+2:]) {
		return nil, ErrVersionOrChecksum
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no value before the footer", ErrBadFormat)
	}
	d := &decoder{buf: payload[1:n], budget: maxBytes}
	v, err := d.value(payload[0])
	if err != nil {
		return nil, err
	}
	if d.off != len(d.buf) {
		return nil, d.errorf("%d bytes after the value", len(d.buf)-d.off)
	}
	return v, nil
}
