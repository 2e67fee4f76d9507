package raftstore

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// The entry payload is in every replica's raft log: entries written by
// any earlier binary must decode to the same requests, and the encoding
// must not drift. These bytes were produced by the encoder as released;
// a change here is a format change, not a test update.
func TestRequestEncodingGolden(t *testing.T) {
	long := strings.Repeat("y", 130) // a length that takes two varint bytes
	reqs := []*Request{
		{Origin: 1<<63 | 1, Seq: 300, Watermark: 299, Args: [][]byte{[]byte("set"), []byte("k"), []byte("v")}},
		{Origin: 1, Seq: 1, Batch: 5, Args: [][]byte{[]byte("x"), {}, []byte(long)}},
	}
	for _, c := range []struct {
		name  string
		reqs  []*Request
		nowMS int64
		hex   string
	}{
		{"empty", nil, 0, "030000"},
		{"two", reqs, 1_700_000_000_123,
			"03" + "fbd095ffbc31" + "02" +
				"81808080808080808001" + "ac02" + "ab02" + "00" + "03" + "03736574" + "016b" + "0176" +
				"01" + "01" + "00" + "05" + "03" + "0178" + "00" + "8201" + strings.Repeat("79", 130)},
		{"negative time is stamped 0", reqs[:1], -5,
			"03" + "00" + "01" + "81808080808080808001" + "ac02" + "ab02" + "00" + "03" + "03736574" + "016b" + "0176"},
	} {
		got := hex.EncodeToString(encodeRequests(c.reqs, c.nowMS))
		if got != c.hex {
			t.Errorf("%s: encoded\n%s\nwant\n%s", c.name, got, c.hex)
			continue
		}
		dec, at, err := decodeRequests(mustHex(t, c.hex))
		if err != nil || at != max(c.nowMS, 0) || len(dec) != len(c.reqs) {
			t.Fatalf("%s: decoded %d requests at %d, %v", c.name, len(dec), at, err)
		}
		for i := range dec {
			if !reflect.DeepEqual(dec[i], *c.reqs[i]) {
				t.Fatalf("%s: request %d decoded as %+v", c.name, i, dec[i])
			}
		}
	}

	// Versions 1 and 2 are no longer written, only read.
	for _, c := range []struct {
		name  string
		hex   string
		batch uint64
	}{
		{"version 2", "02" + "01" + "07" + "03" + "02" + "05" + "02" + "03676574" + "016b", 5},
		{"version 1", "01" + "01" + "07" + "03" + "02" + "02" + "03676574" + "016b", 0},
	} {
		dec, at, err := decodeRequests(mustHex(t, c.hex))
		want := Request{Origin: 7, Seq: 3, Watermark: 2, Batch: c.batch, Args: [][]byte{[]byte("get"), []byte("k")}}
		if err != nil || at != 0 || len(dec) != 1 || !reflect.DeepEqual(dec[0], want) {
			t.Fatalf("%s: %+v at %d, %v", c.name, dec, at, err)
		}
	}
}

// Malformed payloads are refused the same way by every replica.
func TestRequestDecodingRefuses(t *testing.T) {
	for _, h := range []string{
		"",                            // no version
		"04",                          // unknown version
		"03",                          // no time
		"03" + "80808080808080808001", // time beyond 2^62
		"03" + "00",                   // no count
		"03" + "00" + "02" + "01",     // count beyond the input
		"03" + "00" + "01" + "01" + "01" + "01" + "00" + "01" + "05" + "6b", // argument beyond the input
		"03" + "00" + "01" + "01" + "01" + "01" + "00" + "00" + "ff",        // trailing byte
		"03" + "00" + "01" + "01" + "01" + "01" + "00" + "ff",               // truncated varint
	} {
		if r, _, err := decodeRequests(mustHex(t, h)); err != errBadEntry {
			t.Errorf("%q: decoded %+v, %v", h, r, err)
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
