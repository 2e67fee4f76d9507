package simfs

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrInjectedSync is what a sync failed by FailNextSyncs returns. It wraps
// syscall.EIO, what a real fsync failure reports.
var ErrInjectedSync = fmt.Errorf("simfs: injected fsync failure: %w", syscall.EIO)

// ErrFull is what writes and creations return while SetFull(true). It
// wraps syscall.ENOSPC.
var ErrFull = fmt.Errorf("simfs: disk full: %w", syscall.ENOSPC)

// faults is what the simulator armed. Guarded by FS.mu.
type faults struct {
	failSyncs int                    // the next failSyncs WAL syncs fail
	full      func(path string) bool // non-nil: writes to and creations of these files fail with ErrFull
	lazy      bool                   // WAL syncs succeed without syncing (planted bug)
	draining  bool                   // WAL syncs succeed without syncing, inside Drain
}

// Stats counts what the FS did and injected, for a run summary. A Crash
// carries them over to the clone, so the newest FS of a node holds the
// node's totals.
type Stats struct {
	Syncs     int64 // file syncs that made data durable
	DirSyncs  int64 // directory syncs
	Preimages int64 // bytes saved because a write landed below a synced length

	FailedSyncs int64 // syncs failed by FailNextSyncs
	FullErrors  int64 // writes and creations refused by SetFull
	LazySyncs   int64 // WAL syncs that lied under LazySync
	SyncAlls    int64 // SyncAll calls

	Crashes      int64 // Crash calls
	TornFiles    int64 // files that kept part of their unsynced bytes at a crash
	TornBytes    int64 // unsynced bytes kept by torn tails
	CorruptBytes int64 // kept unsynced bytes corrupted at a crash
}

// FailNextSyncs makes the next n syncs of WAL files fail with
// ErrInjectedSync; the data they would have synced stays unsynced. n <= 0
// disarms it.
func (fs *FS) FailNextSyncs(n int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.faults.failSyncs = max(n, 0)
}

// SetFull makes every write to a WAL file (*.log), and the creation of
// one, fail with ErrFull while full is true. Reads, syncs, renames and
// removals still work, as on a real full disk. Other files (sstables,
// MANIFEST) are written by Pebble's background flushes and compactions,
// at times no simulation replays, and a MANIFEST write that fails is a
// fatal error on Pebble's own goroutine that ends the whole process (seeds
// 8422 and 8620 of the first 10,000-seed run): so the full disk is the
// WAL's only, the writes that happen in step with the engine.
func (fs *FS) SetFull(full bool) {
	if full {
		fs.SetFullOf(isWAL)
	} else {
		fs.SetFullOf(nil)
	}
}

// SetFullOf is SetFull for the WAL files match selects (nil: the disk is
// not full). A simulator whose only WAL writes in step with its engine
// are some of them (the others written by a background goroutine) fills
// the disk for those only.
func (fs *FS) SetFullOf(match func(path string) bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.faults.full = match
}

// Faulty reports whether a fault is in force: the disk is full, or a
// failing sync is still to come.
func (fs *FS) Faulty() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.mu.faults.full != nil || fs.mu.faults.failSyncs > 0
}

// LazySync plants the ack-before-fsync bug: while on, a sync of a WAL file
// reports success and syncs nothing. The simulator calls SyncAll on a
// simulated period to model the disk catching up. Never on outside that.
func (fs *FS) LazySync(on bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.faults.lazy = on
}

// SyncAll syncs every reachable file and directory, in sorted order.
func (fs *FS) SyncAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.stats.SyncAlls++
	seen := map[*node]bool{}
	var walk func(d *node)
	walk = func(d *node) {
		d.sync()
		for _, name := range sortedNames(d.children) {
			c := d.children[name]
			if seen[c] {
				continue
			}
			seen[c] = true
			if c.dir {
				walk(c)
			} else {
				c.sync()
			}
		}
	}
	walk(fs.mu.root)
}

// Drain runs fn with WAL syncs turned into successful no-ops that count as
// nothing. fn is a synced commit, db.LogData(nil, pebble.Sync): it returns
// once Pebble's WAL flusher has written every byte committed before it, so
// afterwards the unsynced tail of the WAL no longer depends on the
// flusher's timing. Call it before a torn-tail Crash, SyncAll or SetFull.
func (fs *FS) Drain(fn func() error) error {
	fs.mu.Lock()
	fs.mu.faults.draining = true
	fs.mu.Unlock()
	defer func() {
		fs.mu.Lock()
		fs.mu.faults.draining = false
		fs.mu.Unlock()
	}()
	return fn()
}

// Stats returns the counters.
func (fs *FS) Stats() Stats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.mu.stats
}

// fullLocked returns ErrFull (and counts it) while the disk is full.
// REQUIRES: fs.mu.
func (fs *FS) fullLocked(op, name string) error {
	if full := fs.mu.faults.full; full == nil || !isWAL(name) || !full(name) {
		return nil
	}
	fs.mu.stats.FullErrors++
	return pathErr(op, name, ErrFull)
}

func (fs *FS) syncHandle(h *handle) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if h.closed {
		return errClosed
	}
	if h.n.dir {
		fs.mu.stats.DirSyncs++
		h.n.sync()
		return nil
	}
	if h.wal() {
		f := &fs.mu.faults
		switch {
		case f.draining:
			return nil
		case f.failSyncs > 0:
			f.failSyncs--
			fs.mu.stats.FailedSyncs++
			return pathErr("sync", h.name, ErrInjectedSync)
		case f.lazy:
			fs.mu.stats.LazySyncs++
			return nil
		}
	}
	fs.mu.stats.Syncs++
	fs.mu.stats.Preimages += int64(preimageBytes(h.n))
	h.n.sync()
	return nil
}

func preimageBytes(n *node) int {
	total := 0
	for _, pre := range n.undo {
		total += len(pre)
	}
	return total
}

// IsInjected reports whether err is a fault this package injected.
func IsInjected(err error) bool {
	return errors.Is(err, ErrInjectedSync) || errors.Is(err, ErrFull)
}
