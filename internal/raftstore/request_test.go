package raftstore

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// Entries carry the proposing leader's time; entries written by earlier
// versions (no time, or no batch either) still decode, at time 0.
func TestRequestEncodingVersions(t *testing.T) {
	reqs := []*Request{
		{Origin: 7, Seq: 3, Watermark: 2, Batch: 3, Args: [][]byte{[]byte("set"), []byte("k"), []byte("v")}},
		{Origin: 7, Seq: 4, Watermark: 2, Batch: 3, Args: [][]byte{[]byte("get"), []byte("k")}},
	}
	got, at, err := decodeRequests(encodeRequests(reqs, 1_700_000_000_123))
	if err != nil || at != 1_700_000_000_123 || len(got) != 2 || !reflect.DeepEqual(got[0], *reqs[0]) || !reflect.DeepEqual(got[1], *reqs[1]) {
		t.Fatalf("round trip: %+v at %d, %v", got, at, err)
	}
	// Version 2: no time. Version 1: no time and no batch.
	v2 := []byte{entryVersionV2, 1, 7, 3, 2, 3, 1, 3, 'g', 'e', 't'}
	if got, at, err := decodeRequests(v2); err != nil || at != 0 || len(got) != 1 || got[0].Batch != 3 || string(got[0].Args[0]) != "get" {
		t.Fatalf("version 2: %+v at %d, %v", got, at, err)
	}
	v1 := []byte{entryVersionV1, 1, 7, 3, 2, 1, 3, 'g', 'e', 't'}
	if got, at, err := decodeRequests(v1); err != nil || at != 0 || len(got) != 1 || got[0].Batch != 0 || string(got[0].Args[0]) != "get" {
		t.Fatalf("version 1: %+v at %d, %v", got, at, err)
	}
	// A time beyond any clock is malformed, not a crash.
	bad := binary.AppendUvarint([]byte{entryVersion}, 1<<63)
	bad = append(bad, 0)
	if _, _, err := decodeRequests(bad); err == nil {
		t.Fatal("an absurd time decoded")
	}
}
