package route

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/raftstore"
)

func TestForwardCodecRoundTrip(t *testing.T) {
	reqs := []*raftstore.Request{
		{Origin: 1, Seq: 2, Watermark: 1, Args: [][]byte{[]byte("set"), []byte("k"), []byte("v")}},
		{Origin: 1, Seq: 3, Watermark: 1, Args: [][]byte{[]byte("get"), {}}},
	}
	g, got, err := decodeWrites(encodeWrites(7, reqs))
	if err != nil || g != 7 || !reflect.DeepEqual(got, reqs) {
		t.Fatalf("writes: %d %v %v", g, got, err)
	}
	cmds := [][][]byte{{[]byte("get"), []byte("a")}, {[]byte("mget"), []byte("a"), []byte("b")}}
	g, gotCmds, err := decodeReads(encodeReads(9, cmds))
	if err != nil || g != 9 || !reflect.DeepEqual(gotCmds, cmds) {
		t.Fatalf("reads: %d %v %v", g, gotCmds, err)
	}
	outs := []outcome{{code: codeOK, reply: []byte("+OK\r\n")}, {code: codeNotLeader, hint: 3}, {code: codeMaybeApplied}}
	gotOuts, err := decodeOutcomes(encodeOutcomes(outs), len(outs))
	if err != nil || fmt.Sprint(gotOuts) != fmt.Sprint(outs) {
		t.Fatalf("outcomes: %v %v", gotOuts, err)
	}
	if _, err := decodeOutcomes(encodeOutcomes(outs), 2); err == nil {
		t.Fatal("outcome count mismatch accepted")
	}
}

// FuzzForwardDecode: calls from peers are parsed without panics or
// allocations beyond their size.
func FuzzForwardDecode(f *testing.F) {
	f.Add(encodeWrites(1, []*raftstore.Request{{Origin: 1, Seq: 1, Args: [][]byte{[]byte("set"), []byte("k"), []byte("v")}}}))
	f.Add(encodeReads(2, [][][]byte{{[]byte("get"), []byte("k")}}))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, reqs, err := decodeWrites(b); err == nil {
			for _, r := range reqs {
				if len(r.Args) == 0 {
					t.Fatal("write without arguments decoded")
				}
			}
		}
		_, _, _ = decodeReads(b)
		_, _ = decodeOutcomes(b, 3)
	})
}

// A write refused for a full disk was not applied only if no earlier
// attempt of it may have reached the log: a NOSPACE after a lost answer
// is uncertain, never "nothing was applied".
func TestNoSpaceAfterAMaybeIsUncertain(t *testing.T) {
	if err := noSpaceErr(false, 3, []byte("NOSPACE full")); !failure.NotApplied(err) {
		t.Fatalf("first refusal: %v is not 'not applied'", err)
	}
	var unc *failure.UncertainError
	if err := noSpaceErr(true, 3, []byte("NOSPACE full")); !errors.As(err, &unc) || failure.NotApplied(err) {
		t.Fatalf("refusal after a maybe: %v, want uncertain", err)
	}
}
