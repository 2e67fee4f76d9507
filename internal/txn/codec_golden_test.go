package txn

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// Transaction records, locks and parts are stored in every replica's
// tables, and prepare and exec bodies in raft log entries: what an
// earlier binary wrote must decode the same. These bytes were produced by
// the encoders as released; a change here is a format change, not a test
// update.

var (
	goldenID  = NewID(1<<63|1, 2)
	goldenRef = Ref{ID: goldenID, Group: 300, Priority: 1_700_000_000_000_000_000}
	// ID, group, priority
	goldenRefHex = "80000000000000010000000000000002" + "ac02" + "8080a8b1e39fe7cb17"
)

func TestRecordEncodingGolden(t *testing.T) {
	for _, c := range []struct {
		rec Record
		hex string
	}{
		{Record{Status: Pending, Heartbeat: 0, Priority: 5, Participants: []uint64{3}}, "50" + "00" + "05" + "00" + "01" + "03"},
		{Record{Status: Committed, Heartbeat: 300, Priority: 1, Participants: []uint64{1, 200}, ReadOnly: true}, "43" + "ac02" + "01" + "01" + "02" + "01" + "c801"},
		{Record{Status: Aborted}, "41" + "00" + "00" + "00" + "00"},
	} {
		if got := hex.EncodeToString(c.rec.encode()); got != c.hex {
			t.Errorf("%+v encoded %s, want %s", c.rec, got, c.hex)
			continue
		}
		if got, err := decodeRecord(mustHex(t, c.hex)); err != nil || !reflect.DeepEqual(got, c.rec) {
			t.Errorf("%s decoded %+v, %v", c.hex, got, err)
		}
	}
}

func TestLockEncodingGolden(t *testing.T) {
	other := Ref{ID: NewID(3, 4), Group: 1, Priority: 9}
	otherHex := "00000000000000030000000000000004" + "01" + "09"
	for _, c := range []struct {
		lock Lock
		hex  string
	}{
		{Lock{Writer: &goldenRef}, "77" + goldenRefHex},
		{Lock{Readers: []Ref{goldenRef, other}}, "72" + "02" + goldenRefHex + otherHex},
	} {
		if got := hex.EncodeToString(c.lock.encode()); got != c.hex {
			t.Errorf("%+v encoded %s, want %s", c.lock, got, c.hex)
			continue
		}
		if got, err := decodeLock(mustHex(t, c.hex)); err != nil || !reflect.DeepEqual(got, c.lock) {
			t.Errorf("%s decoded %+v, %v", c.hex, got, err)
		}
	}
}

func TestPartEncodingGolden(t *testing.T) {
	long := strings.Repeat("v", 128)
	p := part{ref: goldenRef, keys: []partKey{
		{key: []byte("a"), write: true, intent: intentPut, value: []byte(long)},
		{key: []byte("bc"), intent: intentNone, value: []byte{}},
	}}
	want := goldenRefHex + "02" +
		"0161" + "01" + "70" + "8001" + strings.Repeat("76", 128) +
		"026263" + "00" + "6e" + "00"
	if got := hex.EncodeToString(p.encode()); got != want {
		t.Fatalf("part encoded\n%s\nwant\n%s", got, want)
	}
	if got, err := decodePart(mustHex(t, want)); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("part decoded %+v, %v", got, err)
	}
}

func TestPrepareEncodingGolden(t *testing.T) {
	watches := []Watch{{Key: []byte("w"), Version: 300}}
	cmds := [][][]byte{{[]byte("set"), []byte("k"), []byte("v")}, {[]byte("del"), {}}}
	bodyHex := "01" + "0177" + "ac02" + "02" + "03" + "03736574" + "016b" + "0176" + "02" + "0364656c" + "00"
	rec := Record{Status: Pending, Priority: 5, Participants: []uint64{300, 2}}
	recHex := "50" + "00" + "05" + "00" + "02" + "ac02" + "02"
	for _, c := range []struct {
		p   prepare
		hex string
	}{
		{prepare{ref: goldenRef, watches: watches, cmds: cmds}, goldenRefHex + "00" + bodyHex},
		{prepare{ref: goldenRef, create: &rec, cmds: cmds[:1]}, goldenRefHex + "01" + "08" + recHex + "00" + "01" + "03" + "03736574" + "016b" + "0176"},
	} {
		if got := hex.EncodeToString(c.p.encode()); got != c.hex {
			t.Errorf("%+v encoded\n%s\nwant\n%s", c.p, got, c.hex)
			continue
		}
		if got, err := decodePrepare(mustHex(t, c.hex)); err != nil || !reflect.DeepEqual(got, c.p) {
			t.Errorf("%s decoded %+v, %v", c.hex, got, err)
		}
	}

	// The bodies of EXEC1 (in the log) and SNAP (a read) are the same.
	for _, args := range [][][]byte{exec1Args(watches, cmds), snapArgs(watches, cmds)} {
		if got := hex.EncodeToString(args[1]); got != bodyHex {
			t.Fatalf("%s body encoded %s, want %s", args[0], got, bodyHex)
		}
	}
}

func TestLockedReplyGolden(t *testing.T) {
	want := "-KINTSU.LOCKED 01" + goldenRefHex + "\r\n"
	if got := string(LockedReply(nil, []Ref{goldenRef})); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	if got, ok := ParseLocked([]byte(want)); !ok || !reflect.DeepEqual(got, []Ref{goldenRef}) {
		t.Fatalf("parsed %+v, %v", got, ok)
	}
}

// Damaged table entries and bodies are refused, never misread.
func TestDecodingRefuses(t *testing.T) {
	for _, h := range []string{
		"",
		"50",                                    // truncated
		"58" + "00" + "00" + "00" + "00",        // unknown status
		"50" + "00" + "00" + "00" + "05" + "01", // participants beyond the input
		"50" + "00" + "00" + "00" + "00" + "00", // trailing byte
	} {
		if r, err := decodeRecord(mustHex(t, h)); err != errCorrupt {
			t.Errorf("record %q: %+v, %v", h, r, err)
		}
	}
	for _, h := range []string{
		"",
		"78",                       // unknown kind
		"77" + goldenRefHex[:30],   // short ID
		"72" + "03" + goldenRefHex, // readers beyond the input
		"77" + goldenRefHex + "00", // trailing byte
	} {
		if l, err := decodeLock(mustHex(t, h)); err != errCorrupt {
			t.Errorf("lock %q: %+v, %v", h, l, err)
		}
	}
	for _, h := range []string{
		goldenRefHex + "00" + "00" + "01" + "00",          // a command without arguments
		goldenRefHex + "01" + "02" + "5800" + "00" + "00", // a record that does not decode
		goldenRefHex + "00" + "01" + "05" + "77",          // watched key beyond the input
	} {
		if p, err := decodePrepare(mustHex(t, h)); err != errCorrupt {
			t.Errorf("prepare %q: %+v, %v", h, p, err)
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
