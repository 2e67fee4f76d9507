package server

import (
	"log/slog"

	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/memory"
)

// usedMemory is the node's memory in use, as maxmemory compares it
// (memory.Used), with Pebble's off-heap cache and memtables.
func (n *Node) usedMemory() uint64 {
	return memory.Used(func() uint64 {
		m := n.db.Metrics()
		return uint64(m.BlockCache.Size) + m.MemTable.Size + m.MemTable.ZombieSize
	})
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit from the
// limits (memory.ApplyLimit); it returns the limit set (0: none).
func ApplyMemoryLimit(l edge.ClientLimits, log *slog.Logger) int64 {
	return memory.ApplyLimit(l.MemoryLimit, l.MaxMemory, log)
}
