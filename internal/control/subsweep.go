package control

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/kintsu/kintsu/internal/kv"
)

// The sweep of orphaned sub-keys. DEL of a large collection, an overwrite
// by SET or an expiry removes only the collection's metadata record; its
// sub-keys (fields, members) stay stored under a version no record names,
// invisible to every command. The leader of each partition, in the same
// round as the expiry sweep, walks up to sweepScan collections from where
// it stopped (a seek per collection, not a step per sub-key) and proposes
// kv.OpSweep for each orphaned one, again while an entry removes
// kv.SweepMax (there are more), within sweepBudget entries per partition
// per round. Each entry removes sub-keys only if their version is still
// orphaned when it applies, so a sweep racing any write is harmless.
const (
	sweepScan   = 1000
	sweepBudget = 16
)

// sweepSome sweeps one stretch of group's collections starting at from
// and returns where the next sweep starts (nil: from the beginning).
func (e *Expiry) sweepSome(ctx context.Context, group uint64, from []byte) ([]byte, error) {
	type orphan struct {
		k   []byte
		ver uint64
		at  []byte // the collection's own position, to come back to it
	}
	var orphans []orphan
	var next []byte
	seen, pos := 0, from
	err := e.cfg.Engine.ScanCollections(group, from, func(k []byte, ver uint64, stored []byte, present bool, after []byte) bool {
		if seen == sweepScan {
			next = pos
			return false
		}
		seen++
		if kv.Orphaned(stored, present, ver) {
			orphans = append(orphans, orphan{k: append([]byte(nil), k...), ver: ver, at: pos})
		}
		pos = append([]byte(nil), after...)
		return true
	})
	if err != nil {
		return from, err
	}
	more := []byte(":" + strconv.Itoa(kv.SweepMax) + "\r\n")
	budget := sweepBudget
	for _, o := range orphans {
		for {
			if budget == 0 {
				return o.at, nil // this one first, next round
			}
			budget--
			wctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
			reply := e.cfg.Write(wctx, group, [][]byte{[]byte(kv.OpSweep), o.k, strconv.AppendUint(nil, o.ver, 10)})
			cancel()
			if len(reply) > 0 && reply[0] == '-' {
				return o.at, fmt.Errorf("sweeping deleted collections: %s", bytes.TrimSpace(reply[1:]))
			}
			if !bytes.Equal(reply, more) {
				break
			}
		}
	}
	return next, nil
}
