package statemachine

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// A split in the partition table, in three steps around the split entry
// in the partition's own log (raftstore/split.go):
//
//  1. CmdPartReserve LEFT AT: the metadata takes a new partition id —
//     never used before and never reused, from a counter that starts at
//     the cluster's initial count — and keeps an intent (left, right,
//     slot, the left's range). One intent per partition at a time; the
//     same reservation asked again returns the same intent, so a split
//     interrupted anywhere is resumed by asking again.
//  2. The split entry in LEFT's log (not here).
//  3. CmdPartSplit LEFT: the records change together — the left's range
//     ends before AT, the right's record (LEFT's replicas) begins there —
//     and the intent goes. Until then the table keeps the left's whole
//     range: routing sends the right half's keys to the left, which
//     refuses them once split (WrongGroup), so a lagging table costs
//     retries, never a misplaced write.
//
// CmdPartUnreserve LEFT drops an intent whose split the partition
// refused (its id stays used).
const (
	CmdPartReserve   = "kintsu.part.reserve"   // left slot [manual] -> "right lo hi"
	CmdPartSplit     = "kintsu.part.split"     // left
	CmdPartUnreserve = "kintsu.part.unreserve" // left
)

// partNextKey holds the next partition id to give out (decimal).
var partNextKey = []byte("partnext")

// splitIntentKey is LEFT's pending split (SplitIntent JSON).
func splitIntentKey(left int) []byte { return fmt.Appendf(nil, SplitIntentPrefix+"%06d", left) }

// SplitIntentPrefix begins the keys of the pending splits
// (api.SplitIntent JSON), which the cluster map reads.
const SplitIntentPrefix = "splitintent/"

// ParseReserveReply reads CmdPartReserve's answer, "right lo hi"; an
// error reply comes back as the error.
func ParseReserveReply(reply []byte) (right int, lo, hi uint16, err error) {
	v, _, perr := resp.ParseValue(reply)
	switch {
	case perr != nil:
		return 0, 0, 0, perr
	case v.Kind == '-':
		return 0, 0, 0, fmt.Errorf("%s", v.Str)
	case v.Kind != '$':
		return 0, 0, 0, fmt.Errorf("unexpected reply %q", reply)
	}
	_, err = fmt.Sscanf(string(v.Str), "%d %d %d", &right, &lo, &hi)
	return right, lo, hi, err
}

func applyPartSplit(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	left, err := strconv.Atoi(string(args[1]))
	if err != nil || left < 0 {
		return resp.AppendError(out, "ERR bad partition id"), nil
	}
	rec, ok, err := partRecord(w, left)
	if err != nil {
		return refuseCorrupt(out, err)
	}
	if !ok {
		return resp.AppendError(out, fmt.Sprintf("ERR no partition %d", left)), nil
	}
	intent, pending, err := splitIntentOf(w, left)
	if err != nil {
		return refuseCorrupt(out, err)
	}
	switch string(args[0]) {
	case CmdPartReserve:
		if len(args) != 3 && (len(args) != 4 || string(args[3]) != "manual") {
			return resp.AppendError(out, "ERR wrong number of arguments"), nil
		}
		manual := len(args) == 4
		at, err := strconv.ParseUint(string(args[2]), 10, 16)
		if err != nil {
			return resp.AppendError(out, "ERR bad slot"), nil
		}
		if _, merging, err := mergeIntentOf(w, left); err != nil {
			return refuseCorrupt(out, err)
		} else if merging {
			return resp.AppendError(out, fmt.Sprintf("ERR partition %d has a merge pending", left)), nil
		}
		if pending {
			if intent.At != uint16(at) {
				return resp.AppendError(out, fmt.Sprintf("ERR partition %d already has a split pending at slot %d", left, intent.At)), nil
			}
			if manual && !intent.Manual {
				intent.Manual = true
				if err := putRecord(w, splitIntentKey(left), intent); err != nil {
					return out, err
				}
			}
			return resp.AppendBulkString(out, fmt.Sprintf("%d %d %d", intent.Right, intent.Lo, intent.Hi)), nil
		}
		if !(rec.SlotStart < uint16(at) && uint16(at) <= rec.SlotEnd) {
			return resp.AppendError(out, fmt.Sprintf("ERR slot %d is not inside partition %d's slots %d-%d past the first", at, left, rec.SlotStart, rec.SlotEnd)), nil
		}
		right, err := nextPartID(w)
		if err != nil {
			return refuseCorrupt(out, err)
		}
		if err := putRecord(w, partNextKey, right+1); err != nil {
			return out, err
		}
		intent = api.SplitIntent{Left: left, Right: right, At: uint16(at), Lo: rec.SlotStart, Hi: rec.SlotEnd, Manual: manual}
		if err := putRecord(w, splitIntentKey(left), intent); err != nil {
			return out, err
		}
		return resp.AppendBulkString(out, fmt.Sprintf("%d %d %d", right, intent.Lo, intent.Hi)), nil
	case CmdPartSplit:
		if !pending {
			return resp.AppendError(out, fmt.Sprintf("ERR no split of partition %d is pending", left)), nil
		}
		if rec.SlotStart != intent.Lo || rec.SlotEnd != intent.Hi {
			return resp.AppendError(out, fmt.Sprintf("ERR partition %d owns slots %d-%d, not %d-%d", left, rec.SlotStart, rec.SlotEnd, intent.Lo, intent.Hi)), nil
		}
		if _, exists, err := partRecord(w, intent.Right); err != nil {
			return refuseCorrupt(out, err)
		} else if exists {
			return resp.AppendError(out, fmt.Sprintf("ERR partition %d exists", intent.Right)), nil
		}
		right := api.PartitionRecord{ID: intent.Right, SlotStart: intent.At, SlotEnd: intent.Hi, Replicas: rec.Replicas, Pinned: intent.Manual || rec.Pinned}
		rec.SlotEnd, rec.Pinned = intent.At-1, intent.Manual || rec.Pinned
		for _, p := range []api.PartitionRecord{rec, right} {
			if err := putRecord(w, PartKey(p.ID), p); err != nil {
				return out, err
			}
		}
		if err := w.Del(splitIntentKey(left)); err != nil {
			return out, err
		}
		return resp.AppendSimple(out, "OK"), nil
	default: // CmdPartUnreserve
		if pending {
			if err := w.Del(splitIntentKey(left)); err != nil {
				return out, err
			}
		}
		return resp.AppendSimple(out, "OK"), nil
	}
}

// putRecord stores v as JSON at k, counting a new key as one.
func putRecord(w kv.Writer, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, exists, err := w.Get(k)
	if err != nil {
		return err
	}
	return w.Put(k, b, !exists)
}

// errCorrupt is a record that cannot be read: the command is refused
// alike on every replica (a storage failure, by contrast, stops the
// replica: another may not meet it).
type errCorrupt string

func (e errCorrupt) Error() string { return string(e) }

// refuseCorrupt answers err: a refusal for a corrupt record, else the
// storage failure.
func refuseCorrupt(out []byte, err error) ([]byte, error) {
	if c, ok := err.(errCorrupt); ok {
		return resp.AppendError(out, "ERR "+string(c)), nil
	}
	return out, err
}

func partRecord(w kv.Reader, id int) (api.PartitionRecord, bool, error) {
	var rec api.PartitionRecord
	ok, err := getRecord(w, PartKey(id), &rec, fmt.Sprintf("partition %d's record is corrupt", id))
	return rec, ok, err
}

func splitIntentOf(w kv.Reader, left int) (api.SplitIntent, bool, error) {
	var in api.SplitIntent
	ok, err := getRecord(w, splitIntentKey(left), &in, fmt.Sprintf("partition %d's split intent is corrupt", left))
	return in, ok, err
}

// getRecord reads the JSON record at k into v; corrupt names it if it
// cannot be read (errCorrupt).
func getRecord(w kv.Reader, k []byte, v any, corrupt string) (bool, error) {
	b, ok, err := w.Get(k)
	if err != nil || !ok {
		return false, err
	}
	if json.Unmarshal(b, v) != nil {
		return false, errCorrupt(corrupt)
	}
	return true, nil
}

// nextPartID is the next partition id: the counter, or the cluster's
// initial count before the first split.
func nextPartID(w kv.Reader) (int, error) {
	b, ok, err := w.Get(partNextKey)
	if err != nil {
		return 0, err
	}
	if ok {
		var n int
		if json.Unmarshal(b, &n) != nil || n < 1 {
			return 0, errCorrupt("the partition id counter is corrupt")
		}
		return n, nil
	}
	b, ok, err = w.Get(ClusterKey)
	if err != nil {
		return 0, err
	}
	var id api.Identity
	if !ok || json.Unmarshal(b, &id) != nil || id.Partitions < 1 {
		return 0, errCorrupt("the cluster's identity is missing or corrupt")
	}
	return id.Partitions, nil
}
