package memory

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// Used is the process's memory in use, as maxmemory compares it: the Go
// runtime's mapped memory less what it returned to the OS (what Go's own
// memory limit counts), plus offHeap() when Pebble allocates its block
// cache and memtables outside the Go heap (cgo builds). Code pages are not
// counted, as Redis's used_memory does not count them.
func Used(offHeap func() uint64) uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	used := s[0].Value.Uint64() - s[1].Value.Uint64()
	if PebbleOffHeap && offHeap != nil {
		used += offHeap()
	}
	return used
}

// ApplyLimit sets the Go runtime's soft memory limit, so memory taken in
// a spike is handed back to the OS and the garbage collector works harder
// as the limit nears (a node once held 8 GB after its clients left):
// limit when positive; none when negative; else maxMemory + 25%, else 90%
// of the cgroup's memory limit. It returns the limit set (0: none).
func ApplyLimit(limit, maxMemory int64, log *slog.Logger) int64 {
	source := "--memory-limit"
	switch {
	case limit < 0:
		return 0
	case limit > 0:
	case maxMemory > 0:
		limit, source = maxMemory+maxMemory/4, "--maxmemory + 25%"
	default:
		if cg := cgroupMemoryMax(); cg > 0 {
			limit, source = cg/10*9, "90% of the cgroup memory limit"
		}
	}
	if limit <= 0 {
		return 0
	}
	debug.SetMemoryLimit(limit)
	log.Info("Go soft memory limit set", "bytes", limit, "from", source)
	return limit
}

// cgroupMemoryMax is the cgroup v2 memory limit of this process, 0 if
// none.
func cgroupMemoryMax() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v == math.MaxInt64 {
		return 0 // "max": unlimited
	}
	return v
}

// ParseBytes reads a size as Redis's configuration does: a plain number
// of bytes, or with k, m, g (powers of 1000) or kb, mb, gb (powers of
// 1024), in any case.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: want a size such as 1048576, 64mb or 1gb", s)
	}
	return v * mult, nil
}
