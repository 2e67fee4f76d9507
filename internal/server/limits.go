package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/edge"
)

// ClientLimits bound what clients can make a node hold, in Redis's terms
// (package edge enforces them). A zero field takes its default; a
// negative one switches the limit off.
type ClientLimits struct {
	// MaxClients bounds open client connections (maxclients). Default
	// 10000. When full, a client idle for a second or more gives way to
	// the newcomer; else the newcomer gets Redis's error.
	MaxClients int
	// Timeout closes clients idle this long (Redis's timeout). Default off.
	Timeout time.Duration
	// ClientReadTimeout closes a client that started a command and has not
	// sent all of it in this time (slowloris). Default 30s.
	ClientReadTimeout time.Duration
	// QueryBufferLimit bounds one command's bytes
	// (client-query-buffer-limit). Default and most 64 MiB: a command is
	// proposed whole through the raft log and forwarded in one frame.
	QueryBufferLimit int64
	// QueryBufferBudget bounds the buffers of large partially received
	// commands of all clients together. Default 256 MiB.
	QueryBufferBudget int64
	// client-output-buffer-limit normal OutputHard OutputSoft
	// OutputSoftTime: a client whose unwritten replies pass OutputHard, or
	// stay above OutputSoft for OutputSoftTime, is closed. Default 256 MiB
	// 64 MiB 60s.
	OutputHard, OutputSoft int64
	OutputSoftTime         time.Duration
	// MaxMemoryClients bounds the unwritten replies of all clients
	// together; over it the biggest holders are closed
	// (maxmemory-clients). Default 1 GiB.
	MaxMemoryClients int64
	// MaxMemory: while the node's used memory (UsedMemory) exceeds it,
	// writes that may grow memory get Redis's -OOM error. Default off.
	MaxMemory int64
	// MaxMemoryPolicy: only "noeviction".
	MaxMemoryPolicy string
	// MemoryLimit is the Go runtime's soft memory limit. Default: MaxMemory
	// plus a quarter, else 90% of the cgroup's memory limit, else none.
	MemoryLimit int64
}

const (
	defaultQueryLimit  = 64 << 20
	defaultQueryBudget = 256 << 20
	defaultOutputHard  = 256 << 20
	defaultOutputSoft  = 64 << 20
	defaultOutputTime  = time.Minute
	defaultReplyBudget = 1 << 30
	defaultReadTimeout = 30 * time.Second
)

func (l *ClientLimits) ensureDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MaxClients == 0 {
		l.MaxClients = 10000
	}
	if l.ClientReadTimeout == 0 {
		l.ClientReadTimeout = defaultReadTimeout
	}
	def(&l.QueryBufferLimit, defaultQueryLimit)
	def(&l.QueryBufferBudget, defaultQueryBudget)
	def(&l.OutputHard, defaultOutputHard)
	def(&l.OutputSoft, defaultOutputSoft)
	if l.OutputSoftTime == 0 {
		l.OutputSoftTime = defaultOutputTime
	}
	def(&l.MaxMemoryClients, defaultReplyBudget)
	if l.MaxMemoryPolicy == "" {
		l.MaxMemoryPolicy = "noeviction"
	}
}

func (l *ClientLimits) validate() []error {
	var errs []error
	if l.MaxClients < 1 {
		errs = append(errs, errors.New("--maxclients must be at least 1"))
	}
	if l.QueryBufferLimit > 0 && (l.QueryBufferLimit < 1<<20 || l.QueryBufferLimit > defaultQueryLimit) {
		errs = append(errs, fmt.Errorf("--client-query-buffer-limit %d: want 1mb to 64mb (a command is proposed whole through the raft log)", l.QueryBufferLimit))
	}
	if l.QueryBufferBudget > 0 && l.QueryBufferLimit > 0 && l.QueryBufferBudget < l.QueryBufferLimit {
		errs = append(errs, fmt.Errorf("--client-query-buffer-budget %d is below --client-query-buffer-limit %d: the largest command could never be received", l.QueryBufferBudget, l.QueryBufferLimit))
	}
	if l.OutputHard > 0 && l.OutputSoft > l.OutputHard {
		errs = append(errs, fmt.Errorf("--client-output-buffer-limit: soft %d above hard %d", l.OutputSoft, l.OutputHard))
	}
	if l.MaxMemoryPolicy != "noeviction" {
		errs = append(errs, fmt.Errorf("--maxmemory-policy %q: only noeviction is supported", l.MaxMemoryPolicy))
	}
	return errs
}

// edge turns the limits into the edge's (0: off), with used as the
// node's memory in use.
func (l ClientLimits) edge(used func() uint64) edge.Limits {
	on := func(v int64) int64 { return max(v, 0) }
	onD := func(d time.Duration) time.Duration { return max(d, 0) }
	return edge.Limits{
		MaxClients: l.MaxClients, IdleTimeout: onD(l.Timeout), ClientReadTimeout: onD(l.ClientReadTimeout),
		QueryBufferLimit: int(on(l.QueryBufferLimit)), QueryBudget: on(l.QueryBufferBudget),
		OutputHard: on(l.OutputHard), OutputSoft: on(l.OutputSoft), OutputSoftTime: onD(l.OutputSoftTime),
		ReplyBudget: on(l.MaxMemoryClients), MaxMemory: uint64(on(l.MaxMemory)), UsedMemory: used,
	}
}

// usedMemory is the node's memory in use, as maxmemory compares it: the
// Go runtime's mapped memory less what it returned to the OS (what Go's
// own memory limit counts), plus Pebble's block cache and memtables when
// they live outside the Go heap (cgo builds).
func (n *Node) usedMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	used := s[0].Value.Uint64() - s[1].Value.Uint64()
	if pebbleOffHeap {
		m := n.db.Metrics()
		used += uint64(m.BlockCache.Size) + m.MemTable.Size + m.MemTable.ZombieSize
	}
	return used
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit from the
// limits, so memory taken in a spike is handed back to the OS and the
// garbage collector works harder as the limit nears (audit: 8 GB stayed
// after the clients left). It returns the limit set (0: none).
func ApplyMemoryLimit(l ClientLimits, log *slog.Logger) int64 {
	limit := l.MemoryLimit
	source := "--memory-limit"
	switch {
	case limit < 0:
		return 0
	case limit > 0:
	case l.MaxMemory > 0:
		limit, source = l.MaxMemory+l.MaxMemory/4, "--maxmemory + 25%"
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
