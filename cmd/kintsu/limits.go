package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/edge"
	"github.com/kintsu/kintsu/internal/memory"
)

// byteSize is a flag holding a size in Redis's notation (64mb, 1gb).
// Zero given explicitly switches a limit off (Redis's meaning), stored as
// -1 since a zero field takes the default.
type byteSize struct{ v *int64 }

func (b byteSize) String() string {
	if b.v == nil {
		return "0"
	}
	return strconv.FormatInt(max(*b.v, 0), 10)
}

func (b byteSize) Set(s string) error {
	n, err := memory.ParseBytes(s)
	if err != nil {
		return err
	}
	*b.v = n
	if n == 0 {
		*b.v = -1
	}
	return nil
}

// offDuration is a duration flag where 0 switches the limit off (stored
// as -1, since a zero field takes the default).
type offDuration struct{ v *time.Duration }

func (d offDuration) String() string {
	if d.v == nil {
		return "0s"
	}
	return max(*d.v, 0).String()
}

func (d offDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d.v = v
	if v <= 0 {
		*d.v = -1
	}
	return nil
}

// outputLimit is --client-output-buffer-limit: "HARD SOFT SECONDS", as
// Redis's normal class.
type outputLimit struct{ l *edge.ClientLimits }

func (o outputLimit) String() string {
	if o.l == nil {
		return ""
	}
	return fmt.Sprintf("%d %d %d", max(o.l.OutputHard, 0), max(o.l.OutputSoft, 0), int64(max(o.l.OutputSoftTime, 0)/time.Second))
}

func (o outputLimit) Set(s string) error {
	f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(s), "normal "))
	if len(f) != 3 {
		return fmt.Errorf("%q: want HARD SOFT SECONDS, such as \"256mb 64mb 60\"", s)
	}
	hard, err1 := memory.ParseBytes(f[0])
	soft, err2 := memory.ParseBytes(f[1])
	secs, err3 := strconv.ParseInt(f[2], 10, 32)
	if err := firstErr(err1, err2, err3); err != nil || secs < 0 {
		return fmt.Errorf("%q: want HARD SOFT SECONDS, such as \"256mb 64mb 60\"", s)
	}
	off := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	o.l.OutputHard, o.l.OutputSoft, o.l.OutputSoftTime = off(hard), off(soft), time.Duration(off(secs))*time.Second
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// limitFlags declares the client limits' flags, with Redis's names.
func limitFlags(fs *flag.FlagSet, l *edge.ClientLimits) {
	l.QueryBufferLimit, l.QueryBufferBudget = 64<<20, 256<<20
	l.OutputHard, l.OutputSoft, l.OutputSoftTime = 256<<20, 64<<20, time.Minute
	l.MaxMemoryClients = 1 << 30
	l.ClientReadTimeout = 30 * time.Second
	fs.IntVar(&l.MaxClients, "maxclients", 10000, "most client connections; when full, one idle for 1s or more gives way, else the newcomer gets -ERR max number of clients reached")
	fs.DurationVar(&l.Timeout, "timeout", 0, "close clients idle this long (0: never), as Redis's timeout")
	fs.Var(offDuration{&l.ClientReadTimeout}, "client-read-timeout", "close a client that takes longer than this to send a command it started (0: never)")
	fs.Var(byteSize{&l.QueryBufferLimit}, "client-query-buffer-limit", "most bytes of one command (1mb to 64mb)")
	fs.Var(byteSize{&l.QueryBufferBudget}, "client-query-buffer-budget", "most bytes of large, partially received commands of all clients together (0: no limit)")
	fs.Var(outputLimit{l}, "client-output-buffer-limit", "HARD SOFT SECONDS: close a client whose unwritten replies pass HARD bytes, or stay over SOFT for SECONDS (0 0 0: no limit)")
	fs.Var(byteSize{&l.MaxMemoryClients}, "maxmemory-clients", "most bytes of unwritten replies of all clients together; over it the biggest holders are closed (0: no limit)")
	fs.Var(byteSize{&l.MaxMemory}, "maxmemory", "refuse writes that may grow memory with -OOM while the node uses more than this (0: no limit)")
	fs.StringVar(&l.MaxMemoryPolicy, "maxmemory-policy", "noeviction", "what to do over --maxmemory: noeviction (writes are refused)")
	fs.Var(byteSize{&l.MemoryLimit}, "memory-limit", "the Go runtime's soft memory limit (default: --maxmemory + 25%, else 90% of the cgroup's memory limit, else none; 0: none)")
}
