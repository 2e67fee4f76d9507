package transport

import (
	"context"
	"sync"
	"time"
)

// Snapshot pacing and bounds. Every snapshot a node sends shares one
// rate (SetSnapshotRate): moving replicas then takes at most that many
// bytes per second of the node's disk reads and network, however many
// move at once, so the foreground keeps its latency while the cluster
// rebalances or repairs. A node receives at most maxIncomingSnapshots at
// once (each staged on disk, raftstore/snapstage.go); one more is refused
// and its sender's raft tries again later.

// DefaultSnapshotRate is the snapshot rate of a node not told otherwise:
// 128 MiB/s, above the 100 MB/s a move should reach on a local disk.
const DefaultSnapshotRate = 128 << 20

// maxIncomingSnapshots bounds the snapshots a node stages at once.
const maxIncomingSnapshots = 4

// byteRate paces bytes to a rate: each caller reserves the time its bytes
// take at the rate after those reserved before it, and waits for the
// start of its slot (the first chunk goes at once; nothing is saved up
// while idle).
type byteRate struct {
	mu   sync.Mutex
	rate float64   // bytes per second; 0: unlimited. Guarded by mu.
	next time.Time // the end of the last slot reserved. Guarded by mu.
}

func (l *byteRate) set(bytesPerSecond int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = float64(max(bytesPerSecond, 0))
	l.next = time.Time{} // slots reserved at the old rate do not hold up the new one
}

// wait blocks until n bytes may be sent, or ctx ends.
func (l *byteRate) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	if l.rate == 0 {
		l.mu.Unlock()
		return nil
	}
	now := time.Now()
	start := l.next
	if start.Before(now) {
		start = now
	}
	l.next = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := start.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetSnapshotRate sets the bytes per second this node's snapshots are
// sent at, all together; 0 means unlimited.
func (t *Transport) SetSnapshotRate(bytesPerSecond int64) { t.snapRate.set(bytesPerSecond) }

// idleTimer cancels a transfer that makes no progress for d: touch
// restarts it, pause stops it (while the transfer waits for its turn at
// the node's rate, which is not a stall).
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func newIdleTimer(d time.Duration, cancel func()) *idleTimer {
	return &idleTimer{d: d, t: time.AfterFunc(d, cancel)}
}

func (i *idleTimer) touch() { i.t.Reset(i.d) }
func (i *idleTimer) pause() { i.t.Stop() }
