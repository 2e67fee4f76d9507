package server

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
)

// Expired keys are absent to every command from their expiry time on, but
// stay stored until a write touches them. The leader of each partition
// sweeps for them so storage does not fill with keys nobody reads again:
// every expireEvery it reads up to expireScan keys from where its last
// sweep stopped and proposes "kintsu.expired" for those that have
// expired, which deletes each only if it has still expired when the entry
// applies (it may have been given a new value and expiry meanwhile).
const (
	expireEvery = time.Second
	expireScan  = 2000
	expireBatch = 100
)

func (n *Node) expireLoop() {
	defer n.bg.Done()
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	cursor := map[uint64][]byte{} // next key to look at, per partition
	for {
		select {
		case <-n.bgStop:
			return
		case <-t.C:
		}
		for _, g := range n.eng.Status() {
			if g.Group == MetaGroup || g.LeaderNode != n.cfg.NodeID {
				delete(cursor, g.Group)
				continue
			}
			next, err := n.expireSome(g.Group, cursor[g.Group])
			if err != nil {
				n.log.Warn("expiry sweep", "group", g.Group, "err", err)
			}
			cursor[g.Group] = next
		}
	}
}

// expireSome sweeps one stretch of group's keys starting at from and
// returns where the next sweep starts (nil: from the beginning).
func (n *Node) expireSome(group uint64, from []byte) ([]byte, error) {
	now := n.clock.Now().UnixMilli()
	var expired [][]byte
	var next []byte
	seen := 0
	err := n.eng.ScanData(group, from, func(k, stored []byte) bool {
		if seen == expireScan {
			next = append([]byte(nil), k...)
			return false
		}
		seen++
		if kv.Expired(stored, now) {
			expired = append(expired, append([]byte(nil), k...))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	for start := 0; start < len(expired); start += expireBatch {
		args := append([][]byte{[]byte("kintsu.expired")}, expired[start:min(start+expireBatch, len(expired))]...)
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
		reply := n.write(ctx, group, args)
		cancel()
		if len(reply) > 0 && reply[0] == '-' {
			// Stop here rather than wait out every batch on a partition
			// that cannot take writes; the next sweep starts over here.
			return from, fmt.Errorf("removing expired keys: %s", bytes.TrimSpace(reply[1:]))
		}
	}
	return next, nil
}
