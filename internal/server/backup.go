package server

import (
	"context"
	"time"

	"github.com/kintsu/kintsu/internal/statemachine"
)

// The backup orchestration and its HTTP routes are internal/admin's; what
// stays here is the cleanup the transaction sweeper runs.

// abandonedCut: a cut marker this old belongs to a backup whose
// coordinator never released it (it died); its hold ended with its lease,
// and the marker would only make restarts hold again.
const abandonedCut = time.Minute

// dropAbandonedCuts releases group's old cut markers (on its leader).
func (n *Node) dropAbandonedCuts(group uint64) {
	marks, err := n.eng.Reader(group).CutMarks()
	if err != nil || len(marks) == 0 {
		return
	}
	now := n.clock.Now().UnixMilli()
	for id, at := range marks {
		if now-at < abandonedCut.Milliseconds() {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		n.write(ctx, group, [][]byte{[]byte(statemachine.OpUncut), []byte(id)})
		cancel()
	}
}
