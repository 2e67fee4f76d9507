//go:build !cgo

package memory

// PebbleOffHeap: without cgo, Pebble's block cache and memtables are in
// the Go heap, already counted by the runtime.
const PebbleOffHeap = false
