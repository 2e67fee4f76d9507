package edge

import (
	"errors"
	"fmt"
	"time"
)

// ClientLimits bound what clients can make a node hold, in Redis's terms
// (the edge enforces them, as Limits). A zero field takes its default; a
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

// EnsureDefaults fills the zero fields.
func (l *ClientLimits) EnsureDefaults() {
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

// Validate reports every problem at once.
func (l *ClientLimits) Validate() []error {
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

// Enforced turns the limits into what the edge enforces (0: off), with
// used as the node's memory in use.
func (l ClientLimits) Enforced(used func() uint64) Limits {
	on := func(v int64) int64 { return max(v, 0) }
	onD := func(d time.Duration) time.Duration { return max(d, 0) }
	return Limits{
		MaxClients: l.MaxClients, IdleTimeout: onD(l.Timeout), ClientReadTimeout: onD(l.ClientReadTimeout),
		QueryBufferLimit: int(on(l.QueryBufferLimit)), QueryBudget: on(l.QueryBufferBudget),
		OutputHard: on(l.OutputHard), OutputSoft: on(l.OutputSoft), OutputSoftTime: onD(l.OutputSoftTime),
		ReplyBudget: on(l.MaxMemoryClients), MaxMemory: uint64(on(l.MaxMemory)), UsedMemory: used,
	}
}
