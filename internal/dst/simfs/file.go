package simfs

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// handle is an open file or directory. Its fields are guarded by FS.mu
// (Pebble may read a file from several goroutines through one handle).
type handle struct {
	fs          *FS
	n           *node
	name        string // base name as opened: decides whether it is a WAL
	pos         int
	read, write bool
	closed      bool
}

var _ vfs.File = (*handle)(nil)

var (
	errClosed   = errors.New("simfs: file already closed")
	errNoRead   = errors.New("simfs: file not opened for reading")
	errNoWrite  = errors.New("simfs: file not opened for writing")
	errIsDir    = errors.New("simfs: is a directory")
	errNegative = errors.New("simfs: negative offset")
)

// wal reports whether the file is a WAL: Pebble v2 names them NNNNNN.log
// (and NNNNNN-III.log for failover segments).
func (h *handle) wal() bool { return strings.HasSuffix(h.name, ".log") }

// checkLocked validates a data operation. REQUIRES: fs.mu.
func (h *handle) checkLocked(write bool) error {
	switch {
	case h.closed:
		return errClosed
	case h.n.dir:
		return errIsDir
	case write && !h.write:
		return errNoWrite
	case !write && !h.read:
		return errNoRead
	}
	return nil
}

func (h *handle) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return errClosed
	}
	h.closed = true
	return nil
}

func (h *handle) Read(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.checkLocked(false); err != nil {
		return 0, err
	}
	if h.pos >= len(h.n.data) {
		return 0, io.EOF
	}
	k := copy(p, h.n.data[h.pos:])
	h.pos += k
	return k, nil
}

func (h *handle) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.checkLocked(false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errNegative
	}
	if off >= int64(len(h.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, h.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (h *handle) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.checkLocked(true); err != nil {
		return 0, err
	}
	if err := h.fs.fullLocked("write", h.name); err != nil {
		return 0, err
	}
	h.n.write(h.pos, p)
	h.pos += len(p)
	return len(p), nil
}

func (h *handle) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.checkLocked(true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errNegative
	}
	if err := h.fs.fullLocked("write", h.name); err != nil {
		return 0, err
	}
	h.n.write(int(off), p)
	return len(p), nil
}

// Preallocate reserves nothing: a full disk fails the write itself.
func (h *handle) Preallocate(offset, length int64) error { return nil }

func (h *handle) Prefetch(offset, length int64) error { return nil }

func (h *handle) Stat() (vfs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	return info(h.name, h.n), nil
}

func (h *handle) Sync() error { return h.fs.syncHandle(h) }

func (h *handle) SyncData() error { return h.fs.syncHandle(h) }

// SyncTo makes nothing durable and says so (fullSync false), as MemFS
// does: sync_file_range gives no durability, and claiming none surfaces
// code that relies on it.
func (h *handle) SyncTo(length int64) (fullSync bool, err error) { return false, nil }

func (h *handle) Fd() uintptr { return vfs.InvalidFd }

// Flush exists so that Pebble's sstable writer does not add a bufio.Writer
// on top (as for MemFS).
func (h *handle) Flush() error { return nil }

// fileInfo is a snapshot of a node for Stat. Times are fixed: a clock
// would make the FS depend on the host.
type fileInfo struct {
	name  string
	size  int64
	isDir bool
}

func info(name string, n *node) *fileInfo {
	return &fileInfo{name: name, size: int64(len(n.data)), isDir: n.dir}
}

func (fi *fileInfo) Name() string           { return fi.name }
func (fi *fileInfo) Size() int64            { return fi.size }
func (fi *fileInfo) ModTime() time.Time     { return time.Unix(0, 0).UTC() }
func (fi *fileInfo) IsDir() bool            { return fi.isDir }
func (fi *fileInfo) Sys() any               { return nil }
func (fi *fileInfo) DeviceID() vfs.DeviceID { return vfs.DeviceID{} }
func (fi *fileInfo) Mode() os.FileMode {
	if fi.isDir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
