package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// SplitPartition splits partition left at slot at (0: the middle of its
// range) and returns the new partition's id. It runs the three steps of
// statemachine/partsplit.go: reserve the new id in the metadata, propose
// the split entry in the partition's own log (raftstore/split.go), then
// record both ranges in the partition table. Every step may be repeated,
// so a split interrupted anywhere (an error here, a crash of this node)
// is finished by calling it again with the same slot: the reservation
// comes back, and a partition already split at that slot counts as
// split.
//
// A refusal by the partition (transactions in progress, a backup, a
// replica move) drops the reservation and is returned: the caller tries
// again later.
func SplitPartition(ctx context.Context, write WriteFunc, m *Map, left int, at uint16) (int, error) {
	cur, ok := m.Current().Part(uint64(left))
	if !ok {
		return 0, fmt.Errorf("no partition %d", left)
	}
	if at == 0 {
		if cur.SlotEnd <= cur.SlotStart {
			return 0, fmt.Errorf("partition %d owns one slot (%d): a slot cannot be split", left, cur.SlotStart)
		}
		at = cur.SlotStart + (cur.SlotEnd-cur.SlotStart+1)/2
	}
	reply := write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartReserve), fmt.Append(nil, left), fmt.Append(nil, at)})
	right, lo, hi, err := statemachine.ParseReserveReply(reply)
	if err != nil {
		return 0, fmt.Errorf("reserve a partition id: %w", err)
	}
	reply = write(ctx, uint64(left), raftstore.SplitArgs(uint64(right), at, lo, hi))
	switch text := strings.TrimSpace(string(reply)); {
	case text == "+OK":
	case strings.HasPrefix(text, fmt.Sprintf("-ERR split refused: the partition owns slots %d-%d,", lo, at-1)):
		// Split at this slot by an earlier attempt.
	case strings.HasPrefix(text, "-ERR split refused"):
		unreserve := write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartUnreserve), fmt.Append(nil, left)})
		if string(unreserve) != okReply {
			return 0, fmt.Errorf("partition %d: %s (and dropping the reservation failed: %s)", left, text[1:], strings.TrimSpace(string(unreserve)))
		}
		return 0, fmt.Errorf("partition %d: %s", left, text[1:])
	default:
		return 0, fmt.Errorf("partition %d did not answer the split (%s); run it again to finish it", left, strings.TrimPrefix(text, "-"))
	}
	if reply := write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartSplit), fmt.Append(nil, left)}); string(reply) != okReply {
		return 0, fmt.Errorf("partition %d is split, but the partition table was not updated (%s); run it again to finish it", left, strings.TrimSpace(string(reply)))
	}
	m.Refresh(ctx, time.Now())
	return right, nil
}
