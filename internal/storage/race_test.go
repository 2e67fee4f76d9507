//go:build race

package storage

// raceEnabled scales the randomized tests down: the race detector slows
// Pebble's in-memory file system by an order of magnitude.
const raceEnabled = true
