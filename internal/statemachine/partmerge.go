package statemachine

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// A merge in the partition table, in three steps around the entries in
// the partitions' own logs (raftstore/merge.go):
//
//  1. CmdPartMergeIntent LEFT RIGHT: RIGHT's range must begin where
//     LEFT's ends, neither may have a split or another merge pending. The
//     intent (api.MergeIntent) is kept under both ids; while it stands the
//     placement driver places RIGHT's replicas where LEFT's go, so the
//     two become co-located. Asked again, it answers the same intent.
//  2. CmdPartSurvivor LEFT ID: once the replicas are co-located, the
//     proposer names the survivor (the group whose log is ahead). The
//     first choice is kept: asked again with any id it answers the one
//     recorded, so two proposers never freeze both partitions.
//  3. After the freeze and the merge entries: CmdPartMerge LEFT: the
//     survivor's record takes the whole range, the other's record and the
//     intent go, together. Until then the table routes each half to its
//     old partition: the frozen one refuses (WrongGroup), so a lagging
//     table costs retries, never a misplaced write.
//
// CmdPartUnchoose LEFT forgets the survivor: the proposer asks it only
// after an aborted merge has thawed the frozen partition (raftstore's
// abort and thaw entries), so the next attempt chooses afresh. The
// intent itself is never dropped: the driver finishes it. The absorbed
// partition's id is never reused.
const (
	CmdPartMergeIntent = "kintsu.part.mergeintent" // left right -> intent JSON
	CmdPartSurvivor    = "kintsu.part.survivor"    // left id -> intent JSON
	CmdPartMerge       = "kintsu.part.merge"       // left
	CmdPartUnchoose    = "kintsu.part.unchoose"    // left -> intent JSON
)

// MergeIntentPrefix begins the keys of the pending merges (api.MergeIntent
// JSON, under each of the two ids), which the cluster map reads.
const MergeIntentPrefix = "mergeintent/"

func mergeIntentKey(id int) []byte { return fmt.Appendf(nil, MergeIntentPrefix+"%06d", id) }

func mergeIntentOf(w kv.Reader, id int) (api.MergeIntent, bool, error) {
	var in api.MergeIntent
	ok, err := getRecord(w, mergeIntentKey(id), &in, fmt.Sprintf("partition %d's merge intent is corrupt", id))
	return in, ok, err
}

func intentReply(out []byte, in api.MergeIntent) []byte {
	b, _ := json.Marshal(in)
	return resp.AppendBulk(out, b)
}

// ParseIntentReply reads the answer of CmdPartMergeIntent and
// CmdPartSurvivor; an error reply comes back as the error.
func ParseIntentReply(reply []byte) (api.MergeIntent, error) {
	var in api.MergeIntent
	v, _, err := resp.ParseValue(reply)
	switch {
	case err != nil:
		return in, err
	case v.Kind == '-':
		return in, fmt.Errorf("%s", v.Str)
	case v.Kind != '$' || json.Unmarshal(v.Str, &in) != nil:
		return in, fmt.Errorf("unexpected reply %q", reply)
	}
	return in, nil
}

func applyPartMerge(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	left, err := strconv.Atoi(string(args[1]))
	if err != nil || left < 0 {
		return resp.AppendError(out, "ERR bad partition id"), nil
	}
	in, pending, err := mergeIntentOf(w, left)
	if err != nil {
		return refuseCorrupt(out, err)
	}
	if pending && in.Left != left {
		return resp.AppendError(out, fmt.Sprintf("ERR partition %d is merging with partition %d", left, in.Left)), nil
	}
	switch string(args[0]) {
	case CmdPartMergeIntent:
		if len(args) != 3 {
			return resp.AppendError(out, "ERR wrong number of arguments"), nil
		}
		right, err := strconv.Atoi(string(args[2]))
		if err != nil || right < 0 {
			return resp.AppendError(out, "ERR bad partition id"), nil
		}
		if pending {
			if in.Right != right {
				return resp.AppendError(out, fmt.Sprintf("ERR partition %d is merging with partition %d", left, in.Right)), nil
			}
			return intentReply(out, in), nil
		}
		l, lok, err := partRecord(w, left)
		if err != nil {
			return refuseCorrupt(out, err)
		}
		r, rok, err := partRecord(w, right)
		if err != nil {
			return refuseCorrupt(out, err)
		}
		switch {
		case !lok || !rok:
			return resp.AppendError(out, fmt.Sprintf("ERR no partition %d or %d", left, right)), nil
		case int(l.SlotEnd)+1 != int(r.SlotStart):
			return resp.AppendError(out, fmt.Sprintf("ERR partitions %d (slots %d-%d) and %d (slots %d-%d) are not neighbours", left, l.SlotStart, l.SlotEnd, right, r.SlotStart, r.SlotEnd)), nil
		}
		for _, id := range []int{left, right} {
			if _, splitting, err := splitIntentOf(w, id); err != nil {
				return refuseCorrupt(out, err)
			} else if splitting {
				return resp.AppendError(out, fmt.Sprintf("ERR partition %d has a split pending", id)), nil
			}
			if other, merging, err := mergeIntentOf(w, id); err != nil {
				return refuseCorrupt(out, err)
			} else if merging {
				return resp.AppendError(out, fmt.Sprintf("ERR partition %d is merging with partition %d", id, other.Left+other.Right-id)), nil
			}
		}
		in = api.MergeIntent{Left: left, Right: right, Lo: l.SlotStart, Mid: r.SlotStart, Hi: r.SlotEnd}
		return putIntent(w, in, out)
	case CmdPartSurvivor:
		if len(args) != 3 {
			return resp.AppendError(out, "ERR wrong number of arguments"), nil
		}
		id, err := strconv.Atoi(string(args[2]))
		switch {
		case !pending:
			return resp.AppendError(out, fmt.Sprintf("ERR no merge of partition %d is pending", left)), nil
		case in.Chosen:
			return intentReply(out, in), nil
		case err != nil || id != in.Left && id != in.Right:
			return resp.AppendError(out, "ERR the survivor must be one of the two partitions"), nil
		}
		in.Chosen, in.Survivor = true, id
		return putIntent(w, in, out)
	case CmdPartUnchoose:
		if !pending {
			return resp.AppendError(out, fmt.Sprintf("ERR no merge of partition %d is pending", left)), nil
		}
		in.Chosen, in.Survivor = false, 0
		return putIntent(w, in, out)
	default: // CmdPartMerge
		if !pending || !in.Chosen {
			return resp.AppendError(out, fmt.Sprintf("ERR no merge of partition %d with a survivor is pending", left)), nil
		}
		s, ok, err := partRecord(w, in.Survivor)
		if err != nil {
			return refuseCorrupt(out, err)
		}
		if !ok {
			return resp.AppendError(out, fmt.Sprintf("ERR no partition %d", in.Survivor)), nil
		}
		s.SlotStart, s.SlotEnd, s.Pinned = in.Lo, in.Hi, false
		if err := putRecord(w, PartKey(s.ID), s); err != nil {
			return out, err
		}
		for _, k := range [][]byte{PartKey(in.Other()), mergeIntentKey(in.Left), mergeIntentKey(in.Right)} {
			if err := w.Del(k); err != nil {
				return out, err
			}
		}
		return resp.AppendSimple(out, "OK"), nil
	}
}

// putIntent stores in under both its partitions' ids and answers it.
func putIntent(w kv.Writer, in api.MergeIntent, out []byte) ([]byte, error) {
	for _, id := range []int{in.Left, in.Right} {
		if err := putRecord(w, mergeIntentKey(id), in); err != nil {
			return out, err
		}
	}
	return intentReply(out, in), nil
}
