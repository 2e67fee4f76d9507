package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure the node's database.
type Options struct {
	Dir string
	// FS is the file system; nil means the real one. Tests pass vfs.NewMem()
	// or an error-injecting FS.
	FS vfs.FS
	// CacheBytes sizes Pebble's block cache; 0 means 64 MiB (it fills only
	// as data is read).
	CacheBytes int64
	// Logger receives Pebble's errors and events (events.go); nil means
	// slog.Default().
	Logger *slog.Logger
	// OnCorruption is called, from a Pebble goroutine, after a corruption
	// was logged and recorded in the data dir (corrupt.go); the node
	// fences itself there. It must not block.
	OnCorruption func(Corruption)
	// Isolate, when set, is asked first, from the same goroutine: true
	// means the node takes only the replicas the file holds out of service
	// (quarantine.go), so nothing is recorded in CorruptFile and
	// OnCorruption is not called. It must not block.
	Isolate func(Corruption) bool
	// MemTableSize is Pebble's memtable size; 0 means 8 MiB. A simulator
	// that keeps flushes at points it chooses (an explicit Flush) keeps it
	// above what a run writes.
	MemTableSize uint64
}

// Open opens (creating if needed) the node's Pebble database.
func Open(o Options) (*pebble.DB, error) {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := checkCorrupt(fs, o.Dir); err != nil {
		return nil, err
	}
	cacheBytes := o.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = 64 << 20
	}
	logger := newPebbleLogger(o.Logger, o.Dir)
	var recorded atomic.Bool
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:    fs,
		Cache: cache,
		// A small memtable keeps the skiplist that every apply seeks
		// (the old value of each key written) and inserts into within
		// the CPU caches: 8 MiB measured about 10% more writes per
		// CPU-second than 64 MiB, counting the extra flushes, with reads
		// unchanged (docs/benchmarks.md, 2026-12-06). Raft entries now
		// reach sstables before truncation deletes them, which costs less
		// than the cache misses of a large skiplist did.
		MemTableSize:       cmp.Or(o.MemTableSize, 8<<20),
		FormatMajorVersion: walFormat, // wal.go
		Logger:             logger,
		EventListener: eventListener(logger, func(c Corruption) {
			if o.Isolate != nil && !recorded.Load() && Isolatable(c) && o.Isolate(c) {
				return
			}
			// The first corruption is the one recorded; the node is
			// fencing itself, and the same file is often reported again.
			if recorded.CompareAndSwap(false, true) {
				if err := RecordCorruption(fs, o.Dir, c); err != nil {
					logger.l.Error("could not record the corruption in the data dir", "err", err)
				}
			}
			if o.OnCorruption != nil {
				o.OnCorruption(c)
			}
		}),
	}
	// Bloom filters on every level: most point reads on the write path
	// look for keys that do not exist yet (SET of a new key), and without a
	// filter each such miss reads index and data blocks of every sstable.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pebble.TableFilter
	}
	checkWALTail(fs, o.Dir, logger.l)
	db, err := pebble.Open(o.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open storage at %s: %w", o.Dir, walError(o.Dir, err))
	}
	// Replicas quarantined before a crash are finished before anything
	// can load them (quarantine.go).
	if err := FinishQuarantine(context.Background(), db, fs, o.Dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open storage at %s: finishing a quarantine: %w", o.Dir, err)
	}
	return db, nil
}

// Get returns a copy of the value at key, or nil and false if absent.
func Get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}
