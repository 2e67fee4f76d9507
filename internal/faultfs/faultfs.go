package faultfs

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	"github.com/kintsu/kintsu/internal/raftlog"
)

// ErrInjected is returned by every mutating operation while
// Fault.FailWrites is set.
var ErrInjected = errors.New("faultfs: injected disk failure")

// maxHeld bounds the WAL bytes one lazy file keeps in memory; past it the
// bytes are written through at once, so a stalled interval cannot grow the
// heap without limit.
const maxHeld = 64 << 20

// Options configure an FS for its whole life; faults that change at run
// time are in Fault.
type Options struct {
	// LazyWAL > 0 plants the "ack-before-fsync" bug: writes to Pebble WAL
	// files are held in process memory, Sync/SyncData/SyncTo on them report
	// success without persisting, and the held bytes are written through
	// (and synced) every LazyWAL, when more than 64 MiB is held, on the
	// file's Close and on FS.Close. A SIGKILL therefore loses acknowledged
	// writes of up to one interval. Never set it outside the chaos suite.
	LazyWAL time.Duration
}

// Fault is the disk behaviour in force; the zero Fault passes everything
// through.
type Fault struct {
	// SyncDelay makes every Sync, SyncData and SyncTo (files and
	// directories) sleep this long first: a stalled disk. A Set that
	// shortens or clears it releases syncs already sleeping.
	SyncDelay time.Duration
	// FailWrites makes every Write, WriteAt, Sync*, Preallocate, Create,
	// OpenReadWrite, ReuseForWrite, Rename, Link, Remove, RemoveAll and
	// MkdirAll return ErrInjected: a failed disk. Reads, Open, OpenDir,
	// Stat, List, Lock and Close still work.
	FailWrites bool
	// FreeBytes > 0 makes GetDiskUsage report at most this much free
	// space: a disk filling up, as the node's disk guard sees it (writes
	// themselves still succeed).
	FreeBytes uint64
}

// faultState is swapped whole so that the hot path reads the fault with one
// atomic load, and a sleeper learns of a Set by its channel being closed.
type faultState struct {
	fault   Fault
	changed chan struct{}
}

// FS wraps a vfs.FS and injects faults. It is safe for concurrent use.
type FS struct {
	inner   vfs.FS
	lazyWAL time.Duration

	setMu sync.Mutex // serializes Set so each old channel is closed once
	state atomic.Pointer[faultState]

	mu     sync.Mutex
	lazy   map[*file]struct{} // open lazy WAL files, for the flusher
	closed bool               // after Close, new WAL files are not lazy

	// stalled counts syncs sleeping on SyncDelay, so tests can tell a
	// sync is stuck without sleeping themselves.
	stalled atomic.Int32

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ vfs.FS = (*FS)(nil)

// New wraps inner. With o.LazyWAL > 0 it starts a goroutine that Close
// stops.
func New(inner vfs.FS, o Options) *FS {
	fs := &FS{
		inner:   inner,
		lazyWAL: o.LazyWAL,
		lazy:    make(map[*file]struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	fs.state.Store(&faultState{changed: make(chan struct{})})
	if o.LazyWAL > 0 {
		go fs.flushLoop()
	} else {
		close(fs.done)
	}
	return fs
}

// Set replaces the active fault. It takes effect on the next call of every
// open file, and wakes syncs sleeping on the old SyncDelay.
func (fs *FS) Set(f Fault) {
	fs.setMu.Lock()
	defer fs.setMu.Unlock()
	old := fs.state.Swap(&faultState{fault: f, changed: make(chan struct{})})
	close(old.changed)
}

// Fault returns the active fault.
func (fs *FS) Fault() Fault { return fs.state.Load().fault }

// Close stops the LazyWAL goroutine and writes through every held byte;
// WAL files still open keep working, unbuffered. The error is the first
// write-through failure (e.g. FailWrites still set). Close is idempotent.
func (fs *FS) Close() error {
	fs.closeOnce.Do(func() {
		close(fs.stop)
		<-fs.done
		fs.mu.Lock()
		fs.closed = true
		files := fs.lazyFiles()
		clear(fs.lazy)
		fs.mu.Unlock()
		for _, f := range files {
			if err := f.stopLazy(); err != nil && fs.closeErr == nil {
				fs.closeErr = err
			}
		}
	})
	return fs.closeErr
}

func (fs *FS) flushLoop() {
	defer close(fs.done)
	t := time.NewTicker(fs.lazyWAL)
	defer t.Stop()
	for {
		select {
		case <-fs.stop:
			return
		case <-t.C:
		}
		fs.mu.Lock()
		files := fs.lazyFiles()
		fs.mu.Unlock()
		for _, f := range files {
			// A failure keeps the bytes held; the next tick, a Close or
			// the 64 MiB bound tries again.
			_ = f.writeThrough()
		}
	}
}

// lazyFiles needs fs.mu.
func (fs *FS) lazyFiles() []*file {
	out := make([]*file, 0, len(fs.lazy))
	for f := range fs.lazy {
		out = append(out, f)
	}
	return out
}

func (fs *FS) forget(f *file) {
	fs.mu.Lock()
	delete(fs.lazy, f)
	fs.mu.Unlock()
}

// failWrites is the check every mutating call makes first, so a Set reaches
// files opened before it.
func (fs *FS) failWrites() error {
	if fs.state.Load().fault.FailWrites {
		return ErrInjected
	}
	return nil
}

// beforeSync stalls for SyncDelay, counted from the call's start against
// whatever delay is in force, so a Set that clears the delay releases the
// sleeper at once. No lock is held while sleeping.
func (fs *FS) beforeSync() error {
	start := time.Now()
	for {
		st := fs.state.Load()
		wait := st.fault.SyncDelay - time.Since(start)
		if wait <= 0 {
			break
		}
		if !fs.stall(wait, st.changed) {
			break
		}
	}
	return fs.failWrites()
}

// stall sleeps for wait unless changed is closed first, which it reports.
func (fs *FS) stall(wait time.Duration, changed <-chan struct{}) bool {
	fs.stalled.Add(1)
	defer fs.stalled.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-changed:
		return true
	}
}

// wrap wraps a file the inner FS opened; write marks files Pebble may write,
// which become lazy when they are WAL files and LazyWAL is on.
func (fs *FS) wrap(inner vfs.File, name string, write bool) *file {
	f := &file{fs: fs, inner: inner}
	if !write || fs.lazyWAL <= 0 {
		return f
	}
	base := fs.inner.PathBase(name)
	if _, _, ok := wal.ParseLogFilename(base); !ok && !raftlog.IsSegmentName(base) {
		return f
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.closed {
		f.wasLazy, f.lazy = true, true
		fs.lazy[f] = struct{}{}
	}
	return f
}

// Create implements vfs.FS.
func (fs *FS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.failWrites(); err != nil {
		return nil, err
	}
	f, err := fs.inner.Create(name, category)
	if err != nil {
		return nil, err
	}
	return fs.wrap(f, name, true), nil
}

// Link implements vfs.FS.
func (fs *FS) Link(oldname, newname string) error {
	if err := fs.failWrites(); err != nil {
		return err
	}
	return fs.inner.Link(oldname, newname)
}

// Open implements vfs.FS. Options are applied by the inner FS to its own
// file, which is where the descriptor they advise lives.
func (fs *FS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.inner.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	return fs.wrap(f, name, false), nil
}

// OpenReadWrite implements vfs.FS. It fails under FailWrites because it
// creates a missing file.
func (fs *FS) OpenReadWrite(
	name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption,
) (vfs.File, error) {
	if err := fs.failWrites(); err != nil {
		return nil, err
	}
	f, err := fs.inner.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return fs.wrap(f, name, true), nil
}

// OpenDir implements vfs.FS.
func (fs *FS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.inner.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return fs.wrap(f, name, false), nil
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	if err := fs.failWrites(); err != nil {
		return err
	}
	return fs.inner.Remove(name)
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	if err := fs.failWrites(); err != nil {
		return err
	}
	return fs.inner.RemoveAll(name)
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	if err := fs.failWrites(); err != nil {
		return err
	}
	return fs.inner.Rename(oldname, newname)
}

// ReuseForWrite implements vfs.FS. Pebble recycles WAL files through it, so
// its result is lazy like Create's.
func (fs *FS) ReuseForWrite(
	oldname, newname string, category vfs.DiskWriteCategory,
) (vfs.File, error) {
	if err := fs.failWrites(); err != nil {
		return nil, err
	}
	f, err := fs.inner.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return fs.wrap(f, newname, true), nil
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	if err := fs.failWrites(); err != nil {
		return err
	}
	return fs.inner.MkdirAll(dir, perm)
}

// Lock implements vfs.FS. It is never failed: it coordinates processes and
// holds no data.
func (fs *FS) Lock(name string) (io.Closer, error) { return fs.inner.Lock(name) }

// List implements vfs.FS.
func (fs *FS) List(dir string) ([]string, error) { return fs.inner.List(dir) }

// Stat implements vfs.FS. For a lazy WAL file it reports what reached the
// inner FS, without held bytes; see the package comment.
func (fs *FS) Stat(name string) (vfs.FileInfo, error) { return fs.inner.Stat(name) }

// PathBase implements vfs.FS.
func (fs *FS) PathBase(path string) string { return fs.inner.PathBase(path) }

// PathJoin implements vfs.FS.
func (fs *FS) PathJoin(elem ...string) string { return fs.inner.PathJoin(elem...) }

// PathDir implements vfs.FS.
func (fs *FS) PathDir(path string) string { return fs.inner.PathDir(path) }

// GetDiskUsage implements vfs.FS.
func (fs *FS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := fs.inner.GetDiskUsage(path)
	if free := fs.Fault().FreeBytes; err == nil && free > 0 && free < u.AvailBytes {
		u.UsedBytes += u.AvailBytes - free
		u.AvailBytes = free
	}
	return u, err
}

// Unwrap implements vfs.FS.
func (fs *FS) Unwrap() vfs.FS { return fs.inner }
