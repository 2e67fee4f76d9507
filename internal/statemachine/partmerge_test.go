package statemachine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
)

// The partition table's side of a merge: an intent only between
// neighbours with nothing else pending, repeatable; the first survivor
// named is kept; the records change together at the end, and the
// absorbed id is gone.
func TestPartitionTableMerge(t *testing.T) {
	m := newMemStore()
	put := func(k []byte, v any) {
		b, _ := json.Marshal(v)
		m.data[string(k)] = append(make([]byte, 8), b...)
	}
	put(ClusterKey, api.Identity{Partitions: 3})
	put(PartKey(0), api.PartitionRecord{ID: 0, SlotStart: 0, SlotEnd: 99, Replicas: []uint64{1, 2, 3}})
	put(PartKey(1), api.PartitionRecord{ID: 1, SlotStart: 100, SlotEnd: 199, Replicas: []uint64{1, 2, 3}})
	put(PartKey(2), api.PartitionRecord{ID: 2, SlotStart: 200, SlotEnd: 16383, Replicas: []uint64{2, 3, 1}})
	meta := func(cmd string) string { return apply(t, m, MetaGroup, cmd) }
	intent := func(cmd string) api.MergeIntent {
		t.Helper()
		in, err := ParseIntentReply([]byte(meta(cmd)))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return in
	}
	for cmd, want := range map[string]string{
		CmdPartMergeIntent + " 0 2": "-ERR partitions 0 (slots 0-99) and 2 (slots 200-16383) are not neighbours",
		CmdPartMergeIntent + " 1 0": "-ERR partitions 1",
		CmdPartMergeIntent + " 0 9": "-ERR no partition",
		CmdPartSurvivor + " 0 0":    "-ERR no merge of partition 0 is pending",
		CmdPartMerge + " 0":         "-ERR no merge of partition 0 with a survivor",
	} {
		if got := meta(cmd); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q...", cmd, got, want)
		}
	}
	if got := meta(CmdPartReserve + " 0 50"); !strings.HasPrefix(got, "$") {
		t.Fatalf("reserve a split of 0: %q", got)
	}
	if got := meta(CmdPartMergeIntent + " 0 1"); !strings.Contains(got, "has a split pending") {
		t.Fatalf("merge while a split is pending: %q", got)
	}
	meta(CmdPartUnreserve + " 0")
	in := intent(CmdPartMergeIntent + " 0 1")
	if in != (api.MergeIntent{Left: 0, Right: 1, Lo: 0, Mid: 100, Hi: 199}) {
		t.Fatalf("intent: %+v", in)
	}
	if again := intent(CmdPartMergeIntent + " 0 1"); again != in {
		t.Fatalf("the same intent again: %+v", again)
	}
	for cmd, want := range map[string]string{
		CmdPartMergeIntent + " 1 2": "-ERR partition 1 is merging with partition 0",
		CmdPartReserve + " 1 150":   "-ERR partition 1",
		CmdPartReserve + " 0 50":    "-ERR partition 0 has a merge pending",
		CmdPartSurvivor + " 0 2":    "-ERR the survivor must be one of the two",
	} {
		if got := meta(cmd); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q...", cmd, got, want)
		}
	}
	if got := intent(CmdPartSurvivor + " 0 1"); !got.Chosen || got.Survivor != 1 {
		t.Fatalf("survivor: %+v", got)
	}
	if got := intent(CmdPartSurvivor + " 0 0"); got.Survivor != 1 {
		t.Fatalf("a second choice changed the survivor: %+v", got)
	}
	// An aborted merge forgets its survivor; the next attempt chooses.
	if got := intent(CmdPartUnchoose + " 0"); got.Chosen {
		t.Fatalf("unchoose: %+v", got)
	}
	if got := intent(CmdPartSurvivor + " 0 1"); !got.Chosen || got.Survivor != 1 {
		t.Fatalf("survivor after unchoose: %+v", got)
	}
	if got := meta(CmdPartMerge + " 0"); got != "+OK\r\n" {
		t.Fatalf("merge: %q", got)
	}
	if _, ok, _ := partRecord(m, 0); ok {
		t.Fatalf("the absorbed partition's record is still there")
	}
	if p, ok, _ := partRecord(m, 1); !ok || p.SlotStart != 0 || p.SlotEnd != 199 {
		t.Fatalf("survivor's record: %+v %v", p, ok)
	}
	for _, id := range []int{0, 1} {
		if _, ok, _ := mergeIntentOf(m, id); ok {
			t.Fatalf("intent of %d left behind", id)
		}
	}
	if got := meta(CmdPartMerge + " 0"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("the merge again: %q", got)
	}
}
