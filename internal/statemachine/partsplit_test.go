package statemachine

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
)

// The partition table's side of a split: a reservation takes a new id
// (from the initial count, never reused) and is repeatable; the records
// change together at the end; a refused split is unreserved.
func TestPartitionTableSplit(t *testing.T) {
	m := newMemStore()
	put := func(k []byte, v any) {
		b, _ := json.Marshal(v)
		m.data[string(k)] = append(make([]byte, 8), b...)
	}
	put(ClusterKey, api.Identity{Partitions: 2})
	put(PartKey(0), api.PartitionRecord{ID: 0, SlotStart: 0, SlotEnd: 8191, Replicas: []uint64{1, 2, 3}})
	put(PartKey(1), api.PartitionRecord{ID: 1, SlotStart: 8192, SlotEnd: 16383, Replicas: []uint64{2, 3, 1}})
	get := func(id int) api.PartitionRecord {
		t.Helper()
		var p api.PartitionRecord
		b, ok, err := m.Get(PartKey(id))
		if err != nil || !ok || json.Unmarshal(b, &p) != nil {
			t.Fatalf("partition %d: %v %v", id, ok, err)
		}
		return p
	}
	meta := func(cmd string) string { return apply(t, m, MetaGroup, cmd) }

	for cmd, want := range map[string]string{
		CmdPartReserve + " 0 0":     "-ERR slot 0 is not inside",
		CmdPartReserve + " 0 8192":  "-ERR slot 8192 is not inside",
		CmdPartReserve + " 5 100":   "-ERR no partition 5",
		CmdPartSplit + " 0":         "-ERR no split of partition 0 is pending",
		CmdPartReserve + " x 100":   "-ERR bad partition id",
		CmdPartReserve + " 0 70000": "-ERR bad slot",
	} {
		if got := meta(cmd); len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("%s: %q, want %q...", cmd, got, want)
		}
	}
	if got := meta(CmdPartReserve + " 0 4096"); got != "$8\r\n2 0 8191\r\n" {
		t.Fatalf("reserve: %q", got)
	}
	if got := meta(CmdPartReserve + " 0 4096"); got != "$8\r\n2 0 8191\r\n" {
		t.Fatalf("the same reservation again: %q", got)
	}
	if got := meta(CmdPartReserve + " 0 100"); got[:4] != "-ERR" {
		t.Fatalf("another slot while one is pending: %q", got)
	}
	if got := meta(CmdPartSplit + " 0"); got != "+OK\r\n" {
		t.Fatalf("split: %q", got)
	}
	if l, r := get(0), get(2); l.SlotEnd != 4095 || r.SlotStart != 4096 || r.SlotEnd != 8191 || fmt.Sprint(r.Replicas) != "[1 2 3]" {
		t.Fatalf("records after the split: %+v %+v", l, r)
	}
	// A refused split gives its id up for good.
	if got := meta(CmdPartReserve + " 1 9000"); got != "$12\r\n3 8192 16383\r\n" {
		t.Fatalf("reserve on 1: %q", got)
	}
	if got := meta(CmdPartUnreserve + " 1"); got != "+OK\r\n" {
		t.Fatalf("unreserve: %q", got)
	}
	if got := meta(CmdPartReserve + " 1 9000"); got != "$12\r\n4 8192 16383\r\n" {
		t.Fatalf("reserve again after unreserve: %q, want a new id", got)
	}
	// A split asked by hand pins both halves (automatic merges leave
	// them alone); one by the policy does not.
	if get(0).Pinned || get(2).Pinned {
		t.Fatalf("halves of an automatic split are pinned")
	}
	if got := meta(CmdPartReserve + " 1 9000 manual"); got != "$12\r\n4 8192 16383\r\n" {
		t.Fatalf("the same reservation, by hand: %q", got)
	}
	if got := meta(CmdPartSplit + " 1"); got != "+OK\r\n" {
		t.Fatalf("split by hand: %q", got)
	}
	if !get(1).Pinned || !get(4).Pinned {
		t.Fatalf("halves of a split by hand: %+v %+v, want both pinned", get(1), get(4))
	}
}
