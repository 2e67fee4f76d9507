// Package diskguard watches the free space of a node's data dir and tells
// the node when to refuse writes, before Pebble meets a full disk (then a
// flush fails, is retried, and writes stall behind it: a node that hangs
// instead of failing).
//
// The decision is a pure function (Next) of the previous state, the free
// and total bytes and the reserve; Watch does the I/O (statfs through
// Pebble's vfs) at the edge and reports every sample.
//
// Invariants:
//   - Full is entered when free space drops below the reserve, and left
//     only when it is back above the reserve plus half of it, so a node
//     near the line does not flap between refusing and taking writes.
//   - The reserve is never more than the disk: Reserve.Bytes caps it at
//     half of the total, so a small volume is not full from the start.
//   - A failed statfs changes nothing (the last state holds) and is
//     logged; the engine's stall watchdog covers a disk that stops
//     answering.
package diskguard
