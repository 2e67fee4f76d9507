package control

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/statemachine"
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

// ExpiryEngine is what the expiry sweep asks of the replication engine
// (*raftstore.Engine).
type ExpiryEngine interface {
	Status() []raftstore.GroupStatus
	ScanData(group uint64, from []byte, fn func(k, stored []byte) bool) error
	ScanCollections(group uint64, from []byte, fn func(k []byte, ver uint64, stored []byte, present bool, next []byte) bool) error
}

// ExpiryConfig is what the expiry sweep needs from its node.
type ExpiryConfig struct {
	NodeID uint64
	Engine ExpiryEngine
	Write  WriteFunc
	// Now is the node's clock, which decides what has expired here.
	Now func() time.Time
	// RequestTimeout bounds each batch of deletions.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Expired, if set, is told the keys a batch deleted (keyspace
	// events). A batch of which some keys had been written again before
	// it applied reports none: which ones is not known, and events are
	// at most once.
	Expired func(keys [][]byte)
}

// Expiry is the expiry sweep.
type Expiry struct{ cfg ExpiryConfig }

// NewExpiry builds the expiry sweep; Run runs it.
func NewExpiry(cfg ExpiryConfig) *Expiry { return &Expiry{cfg: cfg} }

// Run sweeps the partitions this node leads every expireEvery until ctx
// ends: their expired keys, then their orphaned sub-keys (sweep.go).
func (e *Expiry) Run(ctx context.Context) {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	cursor := map[uint64][]byte{}    // next key to look at, per partition
	subCursor := map[uint64][]byte{} // next collection to look at
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, g := range e.cfg.Engine.Status() {
			if g.Group == statemachine.MetaGroup || g.LeaderNode != e.cfg.NodeID {
				delete(cursor, g.Group)
				delete(subCursor, g.Group)
				continue
			}
			next, err := e.expireSome(ctx, g.Group, cursor[g.Group])
			if err != nil {
				e.cfg.Logger.Warn("expiry sweep", "partition", g.Group, "err", err)
			}
			cursor[g.Group] = next
			next, err = e.sweepSome(ctx, g.Group, subCursor[g.Group])
			if err != nil {
				e.cfg.Logger.Warn("sweep of deleted collections", "partition", g.Group, "err", err)
			}
			subCursor[g.Group] = next
		}
	}
}

// expireSome sweeps one stretch of group's keys starting at from and
// returns where the next sweep starts (nil: from the beginning).
func (e *Expiry) expireSome(ctx context.Context, group uint64, from []byte) ([]byte, error) {
	now := e.cfg.Now().UnixMilli()
	var expired [][]byte
	var next []byte
	seen := 0
	err := e.cfg.Engine.ScanData(group, from, func(k, stored []byte) bool {
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
		wctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
		reply := e.cfg.Write(wctx, group, args)
		cancel()
		if len(reply) > 0 && reply[0] == '-' {
			// Stop here rather than wait out every batch on a partition
			// that cannot take writes; the next sweep starts over here.
			return from, fmt.Errorf("removing expired keys: %s", bytes.TrimSpace(reply[1:]))
		}
		if e.cfg.Expired != nil && string(reply) == fmt.Sprintf(":%d\r\n", len(args)-1) {
			e.cfg.Expired(args[1:])
		}
	}
	return next, nil
}
