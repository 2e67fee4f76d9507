package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kintsu/kintsu/internal/diskguard"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
)

// diskEvery is how often the free space of the data dir is sampled: a
// statfs is cheap, and at 1 s a writer filling the reserve is seen long
// before it is gone.
const diskEvery = time.Second

// diskFence connects what storage finds (a corrupt file, reported from a
// Pebble goroutine, possibly before the engine exists) to the engine.
type diskFence struct {
	eng     atomic.Pointer[raftstore.Engine]
	corrupt atomic.Pointer[storage.Corruption]
}

// onCorruption fences the node: storage has logged the corruption and
// recorded it in the data dir, so the next start is refused too.
func (f *diskFence) onCorruption(c storage.Corruption) {
	f.corrupt.CompareAndSwap(nil, &c)
	if eng := f.eng.Load(); eng != nil {
		eng.Fence(fmt.Errorf("corrupt data file %s (holds %s): %s; the node stops and will refuse to start until it is rebuilt", c.Path, c.Groups, c.Detail))
	}
}

// attach gives the fence its engine, and fences at once if a corruption
// was found while the engine was being built.
func (f *diskFence) attach(eng *raftstore.Engine) {
	f.eng.Store(eng)
	if c := f.corrupt.Load(); c != nil {
		f.onCorruption(*c)
	}
}

// watchDisk samples the data dir's free space and tells the engine when it
// is below the reserve (the engine refuses writes and moves leaderships
// away; see raftstore/disk.go). It ends with ctx.
func (n *Node) watchDisk(fs vfs.FS) func(context.Context) {
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kintsu", Name: name, Help: help})
		n.metrics.Registry.MustRegister(g)
		return g
	}
	free := gauge("disk_free_bytes", "Free space on the data dir's volume.")
	reserve := gauge("disk_reserve_bytes", "Free space kept back: below it writes are refused (NOSPACE).")
	full := gauge("disk_full", "1 while the data dir's free space is below the reserve and writes are refused.")
	return func(ctx context.Context) {
		diskguard.Watch(ctx, fs, n.cfg.DataDir, n.cfg.DiskReserve, diskEvery, n.log, func(s diskguard.Sample) {
			free.Set(float64(s.Free))
			reserve.Set(float64(s.Reserve))
			full.Set(0)
			if s.Full {
				full.Set(1)
			}
			if s.Full || n.eng.DiskFull() {
				n.eng.SetDiskFull(s.Full, s.Free, s.Reserve)
			}
		})
	}
}
