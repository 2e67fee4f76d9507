package failure

import (
	"bytes"
	"testing"
)

// The signals' bytes are what earlier versions wrote (a rolling upgrade
// mixes versions; old deduplication records are read back): pinned here.
func TestSignalWireForms(t *testing.T) {
	for _, tc := range []struct {
		s    Signal
		body []byte
		want string
	}{
		{Locked, []byte{0x01, 0xab}, "-KINTSU.LOCKED 01ab\r\n"},
		{Blocked, nil, "-KINTSU.BLOCKED behind a refused command\r\n"},
		{WatchFailed, nil, "-KINTSU.WATCH\r\n"},
		{BadOp, nil, "-KINTSU.BADOP\r\n"},
		{Exists, nil, "-KINTSU.EXISTS\r\n"},
		{Loading, nil, "-LOADING Kintsu is restoring a backup into this partition\r\n"},
	} {
		got := AppendSignal([]byte("x"), tc.s, tc.body)
		if string(got) != "x"+tc.want {
			t.Errorf("signal %d: %q, want %q", tc.s, got, tc.want)
		}
		s, body, ok := SignalOf(got[1:])
		if !ok || s != tc.s || !bytes.Equal(body, tc.body) || !tc.s.Is(got[1:]) {
			t.Errorf("SignalOf(%q) = %d, %x, %v", tc.want, s, body, ok)
		}
	}
	for _, reply := range []string{"", "+OK\r\n", "-ERR x\r\n", "-KINTSU.LOCKED zz\r\n", "-KINTSU.WATCHED\r\n", "$5\r\nhello\r\n", "-LOADING\r\n"} {
		if s, _, ok := SignalOf([]byte(reply)); ok {
			t.Errorf("the reply %q was read as signal %d", reply, s)
		}
	}
}
