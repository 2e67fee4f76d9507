//go:build cgo

package memory

// PebbleOffHeap: with cgo, Pebble allocates its block cache and memtables
// with C's allocator, outside what the Go runtime reports.
const PebbleOffHeap = true
