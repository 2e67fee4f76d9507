package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// SplitPartition splits partition left at slot at (0: the slot of its
// pending split, else the middle of its range) and returns the new
// partition's id. It runs the three steps of statemachine/partsplit.go:
// reserve the new id in the metadata, propose the split entry in the
// partition's own log (raftstore/split.go), then record both ranges in
// the partition table. Every step may be repeated — the reservation comes
// back, and the same split entry again answers that it happened — so a
// split interrupted anywhere (an error here, a crash of this node, two
// callers at once) is finished by calling it again; the placement driver
// resumes pending splits by itself (splitpolicy.go).
//
// A split the partition refuses (transactions in progress, a backup, a
// replica move) stays reserved and is returned as an error: it is tried
// again later. A reservation is never dropped here: a refused entry and
// a later accepted one of the same split can race, and dropping it could
// leave the split made but never recorded.
//
// A split asked by hand (manual) pins both halves: automatic merges leave
// them alone.
func SplitPartition(ctx context.Context, write WriteFunc, m *Map, left int, at uint16, manual bool) (int, error) {
	if err := NeedLevel(m.Current(), api.LevelResize, "splitting a partition"); err != nil {
		return 0, err
	}
	cur, ok := m.Current().Part(uint64(left))
	if !ok {
		return 0, fmt.Errorf("no partition %d", left)
	}
	if at == 0 {
		if in, ok := m.Current().PendingSplit(left); ok {
			at = in.At
		} else if cur.SlotEnd <= cur.SlotStart {
			return 0, fmt.Errorf("partition %d owns one slot (%d): a slot cannot be split", left, cur.SlotStart)
		} else {
			at = cur.SlotStart + (cur.SlotEnd-cur.SlotStart+1)/2
		}
	}
	reserve := [][]byte{[]byte(statemachine.CmdPartReserve), fmt.Append(nil, left), fmt.Append(nil, at)}
	if manual {
		reserve = append(reserve, []byte("manual"))
	}
	reply := write(ctx, statemachine.MetaGroup, reserve)
	right, lo, hi, err := statemachine.ParseReserveReply(reply)
	if err != nil {
		return 0, fmt.Errorf("reserve a partition id: %w", err)
	}
	reply = write(ctx, uint64(left), raftstore.SplitArgs(uint64(right), at, lo, hi))
	switch text := strings.TrimSpace(string(reply)); {
	case text == "+OK":
	case strings.HasPrefix(text, "-ERR split refused"):
		return 0, fmt.Errorf("partition %d: %s; the split stays reserved and is tried again", left, text[1:])
	default:
		return 0, fmt.Errorf("partition %d did not answer the split (%s); it is finished when tried again", left, strings.TrimPrefix(text, "-"))
	}
	if reply := write(ctx, statemachine.MetaGroup, [][]byte{[]byte(statemachine.CmdPartSplit), fmt.Append(nil, left)}); string(reply) != okReply {
		return 0, fmt.Errorf("partition %d is split, but the partition table was not updated (%s); it is finished when tried again", left, strings.TrimSpace(string(reply)))
	}
	m.Refresh(ctx, time.Now())
	return right, nil
}
