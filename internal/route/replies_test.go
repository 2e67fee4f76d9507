package route

import (
	"bytes"
	"testing"

	"github.com/kintsu/kintsu/internal/failure"
)

// replyOf returns read functions whose i-th reply has sizes[i] bytes, and
// counts the reads evaluated.
func replyOf(sizes []int, calls *int) func(int) ([]byte, error) {
	return func(i int) ([]byte, error) {
		*calls++
		return bytes.Repeat([]byte{'x'}, sizes[i]), nil
	}
}

func codes(outs []outcome) []byte {
	c := make([]byte, len(outs))
	for i, o := range outs {
		c[i] = o.code
	}
	return c
}

// TestForwardedRepliesFitAFrame: a forwarded batch whose replies would
// exceed the frame is cut before the reply that would not fit (the rest are
// asked for again), and a single reply larger than a frame is refused
// clearly; before, the whole answer was dropped by the transport and the
// caller saw an unreachable leader after its deadline.
func TestForwardedRepliesFitAFrame(t *testing.T) {
	mib := 1 << 20
	var calls int
	lim := readCap{single: 40 * mib, batch: 100 * mib}
	outs, err := capReads(4, lim, replyOf([]int{16 * mib, 16 * mib, 16 * mib, 1}, &calls))
	if err != nil || !bytes.Equal(codes(outs), []byte{codeOK, codeOK, codeNotRun, codeNotRun}) {
		t.Fatalf("batch over one frame: %v %v", codes(outs), err)
	}
	outs, err = capReads(3, lim, replyOf([]int{50 * mib, 1, 1}, &calls))
	if err != nil || !bytes.Equal(codes(outs), []byte{codeTooLarge, codeOK, codeOK}) || outs[0].hint != uint64(50*mib) {
		t.Fatalf("one reply over a frame: %v %v", codes(outs), err)
	}
	// The outcome survives the forwarded codec with its size.
	got, err := decodeOutcomes(encodeOutcomes(outs), 3)
	if err != nil || got[0].code != codeTooLarge || got[0].hint != uint64(50*mib) {
		t.Fatalf("codec: %v %v", got, err)
	}
	if maxForwardReply+1<<20 > 128<<20 {
		t.Fatalf("maxForwardReply %d leaves no room for framing in a 128 MiB frame", maxForwardReply)
	}
}

// TestReadsDrawOnTheReplyBudget: once a connection's reply budget is spent
// the rest of a lane is not read at all (ErrNotRun); the first read of a
// fresh budget always runs, so every round makes progress.
func TestReadsDrawOnTheReplyBudget(t *testing.T) {
	var calls int
	b := failure.NewReplyBudget(10)
	outs, err := capReads(5, readCap{budget: b}, replyOf([]int{4, 4, 4, 4, 4}, &calls))
	if err != nil || !bytes.Equal(codes(outs), []byte{codeOK, codeOK, codeOK, codeNotRun, codeNotRun}) || calls != 3 {
		t.Fatalf("budget 10 over replies of 4: %v calls %d %v", codes(outs), calls, err)
	}
	replies, errs := splitOutcomes(outs)
	if replies[2] == nil || errs[3] != failure.ErrNotRun {
		t.Fatalf("split: %q %v", replies, errs)
	}
	calls = 0
	outs, _ = capReads(2, readCap{budget: failure.NewReplyBudget(1)}, replyOf([]int{100, 1}, &calls))
	if !bytes.Equal(codes(outs), []byte{codeOK, codeNotRun}) || calls != 1 {
		t.Fatalf("a fresh budget smaller than the first reply: %v", codes(outs))
	}
}

// mapReader is a txn.Reader over a map, for cappedReader.
type mapReader struct{ m map[string][]byte }

func (r mapReader) Get(k []byte) ([]byte, bool, error) { v, ok := r.m[string(k)]; return v, ok, nil }
func (mapReader) NowMS() int64                         { return 0 }
func (mapReader) Version([]byte) (uint64, error)       { return 0, nil }
func (mapReader) Applied() (uint64, error)             { return 0, nil }
func (mapReader) NoLocks() bool                        { return true }
func (mapReader) GetSub([]byte, uint64, []byte) ([]byte, bool, error) {
	return nil, false, nil
}
func (mapReader) ScanSub([]byte, uint64, []byte, bool, func(sub, v []byte) bool) error {
	return nil
}
func (mapReader) TxnGet(byte, []byte) ([]byte, bool, error) {
	return nil, false, nil
}

// TestOneReadCannotBuildAHugeReply: a read loading values past the cap
// (MGET of one big key many times) stops at the cap and is refused as
// too large, on the node that serves it, not after building it all.
func TestOneReadCannotBuildAHugeReply(t *testing.T) {
	big := bytes.Repeat([]byte{'v'}, 1000)
	c := &cappedReader{Reader: mapReader{map[string][]byte{"big": big}}, left: 2500}
	for i := range 3 {
		_, _, err := c.Get([]byte("big"))
		if (i < 2) != (err == nil) {
			t.Fatalf("load %d: %v", i, err)
		}
	}
	if c.read != 3000 {
		t.Fatalf("counted %d bytes", c.read)
	}
	outs, err := capReads(2, readCap{}, func(i int) ([]byte, error) {
		if i == 0 {
			return nil, &failure.ReplyTooLargeError{Bytes: 3000, Limit: 2500}
		}
		return []byte("+OK\r\n"), nil
	})
	if err != nil || !bytes.Equal(codes(outs), []byte{codeTooLarge, codeOK}) || outs[0].hint != 3000 {
		t.Fatalf("a read over the cap: %v %v", codes(outs), err)
	}
}

// TestACommandsReadsShareItsCap: the reads of one command (a transaction's
// shares) draw on one cap; past it the rest are refused as too large.
func TestACommandsReadsShareItsCap(t *testing.T) {
	var calls int
	c := failure.NewReplyCap(10)
	outs, err := capReads(4, readCap{cmd: c}, replyOf([]int{4, 4, 4, 4}, &calls))
	if err != nil || !bytes.Equal(codes(outs), []byte{codeOK, codeOK, codeTooLarge, codeTooLarge}) || calls != 3 {
		t.Fatalf("cap 10 over reads of 4: %v calls %d %v", codes(outs), calls, err)
	}
	if got := (readCap{cmd: failure.NewReplyCap(5)}).loadLimit(); got != 5 {
		t.Fatalf("load limit under a cap of 5: %d", got)
	}
}
