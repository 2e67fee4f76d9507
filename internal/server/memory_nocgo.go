//go:build !cgo

package server

// pebbleOffHeap: without cgo, Pebble's block cache and memtables are in
// the Go heap, already counted by the runtime.
const pebbleOffHeap = false
