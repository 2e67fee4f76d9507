package memory

import "testing"

// Sizes as Redis's configuration writes them.
func TestParseBytes(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "64mb": 64 << 20, "1GB": 1 << 30, "5k": 5000, "2m": 2e6} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "12tb", "mb", "99999999999gb"} {
		if _, err := ParseBytes(s); err == nil {
			t.Errorf("ParseBytes(%q) accepted", s)
		}
	}
}
