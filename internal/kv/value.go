package kv

import (
	"encoding/binary"
	"strconv"
)

// MaxValueBytes bounds every stored value (matching the RESP reader's
// MaxBulkLen), so APPEND cannot grow a value without limit.
const MaxValueBytes = 16 << 20

// Type tags, the first byte of every stored value. A string with an
// expiry time is tagged typeStringTTL and carries the time (Unix ms, big
// endian) before its payload; values without one keep the plain tag, so
// values stored before expiry existed read unchanged.
const (
	typeString    byte = 's'
	typeStringTTL byte = 'S'
)

// encodeString stores v with expiry time at (Unix ms; 0 for none).
func encodeString(v []byte, at int64) []byte {
	if at == 0 {
		out := make([]byte, 1+len(v))
		out[0] = typeString
		copy(out[1:], v)
		return out
	}
	out := make([]byte, 9+len(v))
	out[0] = typeStringTTL
	binary.BigEndian.PutUint64(out[1:], uint64(at))
	copy(out[9:], v)
	return out
}

// decodeString returns the string payload of a stored value and its
// expiry time (0 for none), or ok=false if it holds another type.
func decodeString(stored []byte) (v []byte, at int64, ok bool) {
	switch {
	case len(stored) >= 1 && stored[0] == typeString:
		return stored[1:], 0, true
	case len(stored) >= 9 && stored[0] == typeStringTTL:
		return stored[9:], int64(binary.BigEndian.Uint64(stored[1:])), true
	}
	return nil, 0, false
}

// expiryOf is a stored value's expiry time, 0 for none. Strings with one
// and collections keep it at the same place.
func expiryOf(stored []byte) int64 {
	if len(stored) >= 9 && (stored[0] == typeStringTTL || isCollection(stored[0])) {
		return int64(binary.BigEndian.Uint64(stored[1:]))
	}
	return 0
}

// ParseInt parses a decimal int64 exactly as Redis's string2ll does: no
// sign other than a leading '-', no leading zeros, no spaces, at most 20
// bytes.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	digits := b
	if b[0] == '-' {
		digits = b[1:]
	}
	if len(digits) == 0 || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// Expired reports whether a stored value has an expiry time at or before
// nowMS (the leader's expiry sweep looks for such keys).
func Expired(stored []byte, nowMS int64) bool {
	at := expiryOf(stored)
	return at != 0 && at <= nowMS
}

// ValidStored reports whether v is a stored value this version reads (a
// restore checks what it is about to load).
func ValidStored(v []byte) bool {
	if m, ok := decodeMeta(v); ok {
		return (m.tag == typeHash || m.tag == typeSet) && len(m.extra) == 0 || m.tag == typeList && len(m.extra) == 8 || m.tag == typeZSet && validZExtra(m.extra)
	}
	_, _, ok := decodeString(v)
	return ok && len(v) <= MaxValueBytes+9
}

// StoredString is v stored as a plain string value, for a state machine
// that keeps a record a client's GET (through the router) can read.
func StoredString(v []byte) []byte { return encodeString(v, 0) }

// LoadString is the payload of a stored string value, if it is one.
func LoadString(stored []byte) ([]byte, bool) {
	v, _, ok := decodeString(stored)
	return v, ok
}
