package faultfs

import (
	"errors"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// file wraps every file the inner FS returns. A lazy file (a WAL under
// LazyWAL) appends writes to held instead of the inner file; mu orders those
// appends against the flusher's write-through, the only concurrency a vfs
// file sees beyond Pebble's own sequential writes. Files that were never
// lazy skip mu: they are most of Pebble's I/O.
type file struct {
	fs      *FS
	inner   vfs.File
	wasLazy bool // fixed at open

	mu   sync.Mutex
	lazy bool // cleared, under mu, once the file stops holding bytes
	held []byte
}

var _ vfs.File = (*file)(nil)

// Write appends to held on a lazy file. The write-through is a single
// sequential inner Write, so bytes land in order at the offsets they would
// have had.
func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.failWrites(); err != nil {
		return 0, err
	}
	if !f.wasLazy {
		return f.inner.Write(p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.lazy {
		return f.inner.Write(p)
	}
	f.held = append(f.held, p...)
	if len(f.held) > maxHeld {
		// p is held either way; the error tells Pebble the disk failed.
		return len(p), f.writeThroughLocked()
	}
	return len(p), nil
}

// WriteAt writes held bytes through first so the positioned write cannot
// be overtaken by older sequential ones. Pebble never calls it on a WAL.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.failWrites(); err != nil {
		return 0, err
	}
	if !f.wasLazy {
		return f.inner.WriteAt(p, off)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writeThroughLocked(); err != nil {
		return 0, err
	}
	return f.inner.WriteAt(p, off)
}

// Sync is the lie LazyWAL exists for: on a lazy file it succeeds without
// persisting anything.
func (f *file) Sync() error {
	if err := f.fs.beforeSync(); err != nil {
		return err
	}
	if f.isLazy() {
		return nil
	}
	return f.inner.Sync()
}

// SyncData implements vfs.File; see Sync.
func (f *file) SyncData() error {
	if err := f.fs.beforeSync(); err != nil {
		return err
	}
	if f.isLazy() {
		return nil
	}
	return f.inner.SyncData()
}

// SyncTo reports fullSync=false on a lazy file: "queued, no guarantee" is
// a truthful answer and keeps Pebble from counting the prefix as durable.
func (f *file) SyncTo(length int64) (bool, error) {
	if err := f.fs.beforeSync(); err != nil {
		return false, err
	}
	if f.isLazy() {
		return false, nil
	}
	return f.inner.SyncTo(length)
}

// Preallocate passes through even on a lazy file: Pebble's implementations
// reserve blocks without changing the size (FALLOC_FL_KEEP_SIZE on Linux),
// so it cannot disturb where held bytes will land.
func (f *file) Preallocate(offset, length int64) error {
	if err := f.fs.failWrites(); err != nil {
		return err
	}
	return f.inner.Preallocate(offset, length)
}

// Close writes held bytes through before closing, so a clean shutdown
// loses nothing; if that fails the bytes are lost, as on a dead disk.
func (f *file) Close() error {
	var err error
	if f.isLazy() {
		err = f.stopLazy()
		f.fs.forget(f)
	}
	return errors.Join(err, f.inner.Close())
}

// Read, ReadAt and Stat see only what reached the inner file. Pebble reads
// a WAL only when replaying it at Open, never while it is being written.
func (f *file) Read(p []byte) (int, error)              { return f.inner.Read(p) }
func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.inner.ReadAt(p, off) }
func (f *file) Stat() (vfs.FileInfo, error)             { return f.inner.Stat() }

// Prefetch implements vfs.File.
func (f *file) Prefetch(offset, length int64) error { return f.inner.Prefetch(offset, length) }

// Fd exposes the inner descriptor, which Pebble uses only for read-ahead
// advice and to choose SyncTo over Sync; both still come through f.
func (f *file) Fd() uintptr { return f.inner.Fd() }

func (f *file) isLazy() bool {
	if !f.wasLazy {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lazy
}

// stopLazy writes held bytes through and turns the file into a plain one.
func (f *file) stopLazy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.lazy {
		return nil
	}
	err := f.writeThroughLocked()
	f.lazy = false
	f.held = nil
	return err
}

func (f *file) writeThrough() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.lazy {
		return nil
	}
	return f.writeThroughLocked()
}

// writeThroughLocked writes and syncs the held bytes, so that "not held"
// means durable under any crash model, including a crash-cloned MemFS. A
// failed disk keeps what it could not take (trusting the inner FS not to
// scribble on a buffer it failed to write, which Pebble's own FSs honour).
func (f *file) writeThroughLocked() error {
	if len(f.held) == 0 {
		return nil
	}
	if err := f.fs.failWrites(); err != nil {
		return err
	}
	n, err := f.inner.Write(f.held)
	f.held = f.held[:copy(f.held, f.held[n:])]
	if err != nil {
		return err
	}
	return f.inner.Sync()
}
