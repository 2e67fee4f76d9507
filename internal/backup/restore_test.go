package backup

import (
	"errors"
	"testing"
)

func TestCheckRecord(t *testing.T) {
	for _, c := range []struct {
		what  string
		table byte
		k, v  string
		ok    bool
	}{
		{"a string", TableData, "k", "sv", true},
		{"a string with an expiry", TableData, "k", "S\x00\x00\x01\x8b\xcf\xe5\x68\x00v", true},
		{"an unknown value type", TableData, "k", "?", false},
		{"an empty value", TableData, "k", "", false},
		{"a malformed lock", TableLocks, "k", "junk", false},
		{"a malformed record", TableRecords, "0123456789abcdef", "junk", false},
		{"a malformed part", TableParts, "0123456789abcdef", "\x01\x02\x03", false},
		{"a table a backup does not carry", 'z', "k", "v", false},
	} {
		err := CheckRecord(c.table, []byte(c.k), []byte(c.v))
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("%s: %v", c.what, err)
		}
	}
}
