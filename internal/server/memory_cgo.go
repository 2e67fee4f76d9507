//go:build cgo

package server

// pebbleOffHeap: with cgo, Pebble allocates its block cache and memtables
// with C's allocator, outside what the Go runtime reports.
const pebbleOffHeap = true
