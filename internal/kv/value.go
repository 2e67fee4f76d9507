package kv

import "strconv"

// MaxValueBytes bounds every stored value (matching the RESP reader's
// MaxBulkLen), so APPEND cannot grow a value without limit.
const MaxValueBytes = 16 << 20

// Type tags, the first byte of every stored value.
const (
	typeString byte = 's'
)

func encodeString(v []byte) []byte {
	out := make([]byte, 1+len(v))
	out[0] = typeString
	copy(out[1:], v)
	return out
}

// decodeString returns the string payload of a stored value, or ok=false
// if it holds another type.
func decodeString(stored []byte) ([]byte, bool) {
	if len(stored) == 0 || stored[0] != typeString {
		return nil, false
	}
	return stored[1:], true
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
