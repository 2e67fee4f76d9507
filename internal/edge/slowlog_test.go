package edge

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSlowlogKeepsWhatRedisKeeps: arguments cut as Redis cuts them (32,
// each 128 bytes), the threshold and the length bound honoured, newest
// entries kept.
func TestSlowlogKeepsWhatRedisKeeps(t *testing.T) {
	s := newSlowlog()
	args := [][]byte{[]byte("set"), bytes.Repeat([]byte("k"), 200)}
	for i := 0; i < 40; i++ {
		args = append(args, []byte("v"))
	}
	s.record(args, 5*time.Millisecond, nil) // under 10 ms: not kept
	s.record(args, 20*time.Millisecond, nil)
	if len(s.ring) != 1 {
		t.Fatalf("%d entries, want 1", len(s.ring))
	}
	e := s.ring[0]
	if len(e.args) != 32 || !strings.HasSuffix(string(e.args[1]), "... (72 more bytes)") || string(e.args[31]) != "... (11 more arguments)" {
		t.Fatalf("arguments kept: %d, %q, %q", len(e.args), e.args[1][120:], e.args[31])
	}
	s.setting("slowlog-max-len", "3")
	s.setting("slowlog-log-slower-than", "0")
	for i := 0; i < 5; i++ {
		s.record([][]byte{[]byte("get"), []byte{byte('a' + i)}}, 0, nil)
	}
	if len(s.ring) != 3 || string(s.ring[2].args[1]) != "e" || s.ring[2].id != 5 {
		t.Fatalf("ring %+v", s.ring)
	}
	s.setting("slowlog-log-slower-than", "-1")
	s.record(args, time.Hour, nil)
	if len(s.ring) != 3 {
		t.Fatal("a negative threshold still logs")
	}
}
