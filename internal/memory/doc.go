// Package memory is the node's view of its own memory, for the limits:
// how much it uses as maxmemory counts it, the Go runtime's soft memory
// limit, and sizes written as Redis's configuration writes them. It holds
// no state; the edge enforces the limits.
package memory
