package storage

import (
	"errors"
	"fmt"

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
}

// Open opens (creating if needed) the node's Pebble database.
func Open(o Options) (*pebble.DB, error) {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	cacheBytes := o.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = 64 << 20
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:    fs,
		Cache: cache,
		// The raft log is written and deleted at a high rate; a larger
		// memtable lets most entries die before they are flushed.
		MemTableSize: 64 << 20,
		Logger:       quietLogger{},
	}
	// Bloom filters on every level: most point reads on the write path
	// look for keys that do not exist yet (SET of a new key), and without a
	// filter each such miss reads index and data blocks of every sstable.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pebble.TableFilter
	}
	db, err := pebble.Open(o.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open storage at %s: %w", o.Dir, err)
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

// quietLogger drops Pebble's informational chatter; errors surface as
// returned errors, and a fatal storage error stops the node.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
