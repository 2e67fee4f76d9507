package route

import (
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// Forwarded calls cross nodes of different builds during a rolling
// upgrade, so their bytes are pinned: produced by the encoders as
// released, and a change here is a protocol change, not a test update.
func TestForwardEncodingGolden(t *testing.T) {
	long := strings.Repeat("z", 200)
	reqs := []*raftstore.Request{
		{Origin: 1<<63 | 1, Seq: 300, Watermark: 299, Batch: 7, Args: [][]byte{[]byte("set"), []byte("k"), []byte(long)}},
		{Origin: 1, Seq: 2, Args: [][]byte{[]byte("get"), {}}},
	}
	wantWrites := "8a01" + "02" +
		"81808080808080808001" + "ac02" + "ab02" + "07" + "03" + "03736574" + "016b" + "c801" + strings.Repeat("7a", 200) +
		"01" + "02" + "00" + "00" + "02" + "03676574" + "00"
	if got := hex.EncodeToString(encodeWrites(138, reqs)); got != wantWrites {
		t.Fatalf("writes encoded\n%s\nwant\n%s", got, wantWrites)
	}
	g, gotReqs, err := decodeWrites(mustHex(t, wantWrites))
	if err != nil || g != 138 || !reflect.DeepEqual(gotReqs, reqs) {
		t.Fatalf("writes decoded: %d %+v %v", g, gotReqs, err)
	}

	cmds := [][][]byte{{[]byte("get"), []byte("a")}, {[]byte("mget"), {}, []byte("b")}}
	wantReads := "09" + "02" + "02" + "03676574" + "0161" + "03" + "046d676574" + "00" + "0162"
	if got := hex.EncodeToString(encodeReads(9, cmds)); got != wantReads {
		t.Fatalf("reads encoded\n%s\nwant\n%s", got, wantReads)
	}
	g, gotCmds, err := decodeReads(mustHex(t, wantReads))
	if err != nil || g != 9 || !reflect.DeepEqual(gotCmds, cmds) {
		t.Fatalf("reads decoded: %d %q %v", g, gotCmds, err)
	}

	outs := []outcome{
		{code: codeOK, reply: []byte("+OK\r\n")},
		{code: codeNotLeader, hint: 300},
		{code: codeNotLeader},
		{code: codeMaybeApplied},
		{code: codeBusy},
		{code: codeNoGroup},
		{code: codeStopped},
		{code: codeReadFailed, reply: []byte("boom")},
		{code: codeNotRun},
		{code: codeTooLarge, hint: 300},
		{code: codeNoSpace, reply: []byte("full")},
		{code: codeStorageFailed, reply: []byte("io")},
	}
	// Every code is its own byte: two features once both took 7.
	wantOuts := "0c" + "06" + "00" + "2b4f4b0d0a" + "03" + "01" + "ac02" + "02" + "01" + "00" +
		"01" + "02" + "01" + "03" + "01" + "04" + "01" + "05" + "05" + "06" + "626f6f6d" +
		"01" + "07" + "03" + "08" + "ac02" + "05" + "09" + "66756c6c" + "03" + "0a" + "696f"
	if got := hex.EncodeToString(encodeOutcomes(outs)); got != wantOuts {
		t.Fatalf("outcomes encoded\n%s\nwant\n%s", got, wantOuts)
	}
	gotOuts, err := decodeOutcomes(mustHex(t, wantOuts), len(outs))
	if err != nil || fmt.Sprint(gotOuts) != fmt.Sprint(outs) {
		t.Fatalf("outcomes decoded: %v %v", gotOuts, err)
	}
}

// Calls a peer could not have meant are refused, never half-served.
func TestForwardDecodingRefuses(t *testing.T) {
	for _, h := range []string{
		"",
		"01",               // no count
		"01" + "00",        // no commands
		"01" + "05" + "00", // count beyond the input
		"01" + "01" + "01" + "01" + "00" + "00" + "00",                      // a command without arguments
		"01" + "01" + "01" + "01" + "00" + "00" + "01" + "05" + "6b",        // argument beyond the input
		"01" + "01" + "01" + "01" + "00" + "00" + "01" + "01" + "6b" + "00", // trailing byte
		"01" + "01" + "ff", // truncated varint
	} {
		if _, r, err := decodeWrites(mustHex(t, h)); err != errMalformed {
			t.Errorf("writes %q: decoded %+v, %v", h, r, err)
		}
	}
	for _, h := range []string{
		"",
		"01" + "00",                             // no commands
		"01" + "01" + "00",                      // a command without arguments
		"01" + "01" + "01" + "05" + "6b",        // argument beyond the input
		"01" + "01" + "01" + "01" + "6b" + "00", // trailing byte
	} {
		if _, c, err := decodeReads(mustHex(t, h)); err != errMalformed {
			t.Errorf("reads %q: decoded %q, %v", h, c, err)
		}
	}
	for _, h := range []string{
		"",
		"02" + "01" + "03",        // count is not what was asked
		"01" + "00",               // an empty outcome
		"01" + "05" + "00",        // outcome beyond the input
		"01" + "02" + "01" + "ff", // truncated leader hint
	} {
		if o, err := decodeOutcomes(mustHex(t, h), 1); err != errMalformed {
			t.Errorf("outcomes %q: decoded %v, %v", h, o, err)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
