package simfs

import (
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultCapacity is the size GetDiskUsage reports unless New is given
// another.
const DefaultCapacity = 1 << 40

// FS is an in-memory vfs.FS with power-loss crashes and armed faults. It is
// safe for concurrent use.
type FS struct {
	mu struct {
		sync.Mutex
		root  *node
		locks map[string]bool
		// crashed is set on the FS a Crash was taken from.
		crashed bool
		faults  faults
		stats   Stats
	}
	capacity uint64
}

var _ vfs.FS = (*FS)(nil)

// New returns an empty FS whose GetDiskUsage reports capacity bytes in
// total (0 means DefaultCapacity).
func New(capacity uint64) *FS {
	if capacity == 0 {
		capacity = DefaultCapacity
	}
	fs := &FS{capacity: capacity}
	fs.mu.root = newDir()
	fs.mu.locks = map[string]bool{}
	return fs
}

// split cleans name and returns its components; the root is none. Like
// MemFS, the working directory is the root and a leading "/" is ignored.
func split(name string) []string {
	name = path.Clean(strings.TrimLeft(name, "/"))
	if name == "." || name == "/" {
		return nil
	}
	return strings.Split(name, "/")
}

func pathErr(op, name string, err error) error { return &os.PathError{Op: op, Path: name, Err: err} }

var errNotDir = errors.New("not a directory")

// lookupLocked returns the directory that holds name's last component, and
// that component ("" for the root). REQUIRES: fs.mu.
func (fs *FS) lookupLocked(op, name string) (*node, string, error) {
	parts := split(name)
	dir := fs.mu.root
	if len(parts) == 0 {
		return nil, "", nil
	}
	for _, p := range parts[:len(parts)-1] {
		c := dir.children[p]
		if c == nil {
			return nil, "", pathErr(op, name, os.ErrNotExist)
		}
		if !c.dir {
			return nil, "", pathErr(op, name, errNotDir)
		}
		dir = c
	}
	return dir, parts[len(parts)-1], nil
}

// nodeLocked returns the node at name. REQUIRES: fs.mu.
func (fs *FS) nodeLocked(op, name string) (*node, error) {
	dir, base, err := fs.lookupLocked(op, name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return fs.mu.root, nil
	}
	n := dir.children[base]
	if n == nil {
		return nil, pathErr(op, name, os.ErrNotExist)
	}
	return n, nil
}

// createLocked makes name a new empty file (replacing any entry, as MemFS
// does: the old node stays in the directory's synced entries). REQUIRES:
// fs.mu.
func (fs *FS) createLocked(name string) (*handle, error) {
	if err := fs.fullLocked("create", name); err != nil {
		return nil, err
	}
	dir, base, err := fs.lookupLocked("create", name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, pathErr("create", name, syscall.EISDIR)
	}
	n := &node{}
	dir.children[base] = n
	return &handle{fs: fs, n: n, name: base, read: true, write: true}, nil
}

// Create implements vfs.FS.
func (fs *FS) Create(name string, _ vfs.DiskWriteCategory) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.createLocked(name)
}

// Link implements vfs.FS.
func (fs *FS) Link(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.nodeLocked("link", oldname)
	if err != nil {
		return err
	}
	dir, base, err := fs.lookupLocked("link", newname)
	if err != nil {
		return err
	}
	if dir == nil || dir.children[base] != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: os.ErrExist}
	}
	dir.children[base] = n
	return nil
}

func (fs *FS) open(name string, write bool) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.nodeLocked("open", name)
	if err != nil {
		return nil, err
	}
	return &handle{fs: fs, n: n, name: path.Base("/" + name), read: true, write: write && !n.dir}, nil
}

// Open implements vfs.FS.
func (fs *FS) Open(name string, _ ...vfs.OpenOption) (vfs.File, error) {
	return fs.open(name, false)
}

// OpenReadWrite implements vfs.FS.
func (fs *FS) OpenReadWrite(name string, _ vfs.DiskWriteCategory, _ ...vfs.OpenOption) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.nodeLocked("open", name)
	if errors.Is(err, os.ErrNotExist) {
		return fs.createLocked(name)
	}
	if err != nil {
		return nil, err
	}
	return &handle{fs: fs, n: n, name: path.Base("/" + name), read: true, write: !n.dir}, nil
}

// OpenDir implements vfs.FS.
func (fs *FS) OpenDir(name string) (vfs.File, error) { return fs.open(name, false) }

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.lookupLocked("remove", name)
	if err != nil {
		return err
	}
	if dir == nil {
		return pathErr("remove", name, syscall.EBUSY)
	}
	n := dir.children[base]
	if n == nil {
		return pathErr("remove", name, os.ErrNotExist)
	}
	if n.dir && len(n.children) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements vfs.FS. Like os.RemoveAll, a missing name is not an
// error.
func (fs *FS) RemoveAll(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.lookupLocked("removeall", name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if dir == nil {
		return pathErr("removeall", name, syscall.EBUSY)
	}
	delete(dir.children, base)
	return nil
}

// Rename implements vfs.FS; it replaces newname if it exists.
func (fs *FS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.renameLocked(oldname, newname)
}

func (fs *FS) renameLocked(oldname, newname string) error {
	odir, obase, err := fs.lookupLocked("rename", oldname)
	if err != nil {
		return err
	}
	ndir, nbase, err := fs.lookupLocked("rename", newname)
	if err != nil {
		return err
	}
	if odir == nil || ndir == nil {
		return pathErr("rename", oldname, syscall.EBUSY)
	}
	n := odir.children[obase]
	if n == nil {
		return pathErr("rename", oldname, os.ErrNotExist)
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	return nil
}

// ReuseForWrite implements vfs.FS: Pebble recycles an old WAL by renaming
// it and overwriting it from offset 0.
func (fs *FS) ReuseForWrite(oldname, newname string, _ vfs.DiskWriteCategory) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.renameLocked(oldname, newname); err != nil {
		return nil, err
	}
	n, err := fs.nodeLocked("open", newname)
	if err != nil {
		return nil, err
	}
	return &handle{fs: fs, n: n, name: path.Base("/" + newname), write: true}, nil
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(name string, _ os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir := fs.mu.root
	for _, p := range split(name) {
		c := dir.children[p]
		if c == nil {
			if err := fs.fullLocked("mkdir", name); err != nil {
				return err
			}
			c = newDir()
			dir.children[p] = c
		}
		if !c.dir {
			return pathErr("mkdir", name, errNotDir)
		}
		dir = c
	}
	return nil
}

// Lock implements vfs.FS. Locks exclude only within this FS (and a crash
// releases them all); the lock file is created if missing.
func (fs *FS) Lock(name string) (io.Closer, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	key := strings.Join(split(name), "/")
	if fs.mu.locks[key] {
		return nil, syscall.EAGAIN
	}
	if _, err := fs.nodeLocked("lock", name); errors.Is(err, os.ErrNotExist) {
		h, err := fs.createLocked(name)
		if err != nil {
			return nil, err
		}
		h.closed = true
	} else if err != nil {
		return nil, err
	}
	fs.mu.locks[key] = true
	return &lock{fs: fs, key: key}, nil
}

type lock struct {
	fs   *FS
	key  string
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.mu.locks, l.key)
		l.fs.mu.Unlock()
	})
	return nil
}

// List implements vfs.FS, in sorted order.
func (fs *FS) List(name string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.nodeLocked("list", name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, pathErr("list", name, errNotDir)
	}
	return sortedNames(n.children), nil
}

// Stat implements vfs.FS.
func (fs *FS) Stat(name string) (vfs.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, err := fs.nodeLocked("stat", name)
	if err != nil {
		return nil, err
	}
	return info(path.Base("/"+name), n), nil
}

// PathBase implements vfs.FS.
func (*FS) PathBase(p string) string { return path.Base(p) }

// PathJoin implements vfs.FS.
func (*FS) PathJoin(elem ...string) string { return path.Join(elem...) }

// PathDir implements vfs.FS.
func (*FS) PathDir(p string) string { return path.Dir(p) }

// GetDiskUsage implements vfs.FS: the capacity given to New, the bytes of
// every file reachable now, and nothing available while the disk is full.
func (fs *FS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var used uint64
	seen := map[*node]bool{}
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			if seen[c] {
				continue
			}
			seen[c] = true
			if c.dir {
				walk(c)
			} else {
				used += uint64(len(c.data))
			}
		}
	}
	walk(fs.mu.root)
	u := vfs.DiskUsage{TotalBytes: fs.capacity, UsedBytes: used}
	if fs.mu.faults.full == nil && used < fs.capacity {
		u.AvailBytes = fs.capacity - used
	}
	return u, nil
}

// Unwrap implements vfs.FS.
func (*FS) Unwrap() vfs.FS { return nil }
