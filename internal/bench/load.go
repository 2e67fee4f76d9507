package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Client is one connection's view of a system under test. Every method
// is one round trip and returns once the system acknowledged it.
type Client interface {
	Set(ctx context.Context, key string, val []byte) error
	Get(ctx context.Context, key string) error
	// MSet writes all pairs atomically.
	MSet(ctx context.Context, keys []string, val []byte) error
	// PipeSet sends len(keys) SETs in one write and reads their replies;
	// ok is false where the system has no pipelining.
	PipeSet(ctx context.Context, keys []string, val []byte) (ok bool, err error)
}

// Workload names one kind of load.
type Workload string

const (
	Write     Workload = "write"     // SET / Put of a random key
	Read      Workload = "read"      // linearizable GET / Range of a random key
	Mixed     Workload = "mixed"     // half reads, half writes
	Pipelined Workload = "pipelined" // 16 SETs per round trip
	MultiKey  Workload = "multi-key" // one atomic write of 10 random keys
)

// Workloads is every workload, in the order they run: writes first, so
// the reads find keys.
var Workloads = []Workload{Write, Read, Mixed, Pipelined, MultiKey}

// Load is how a workload is driven.
type Load struct {
	Clients  int           // concurrent connections
	Duration time.Duration // measured time per workload
	Warmup   time.Duration // unmeasured time before it
	Keys     int           // key space: keys are key:0 .. key:Keys-1
	Value    int           // value size in bytes
	Pipeline int           // SETs per round trip in Pipelined
	MultiKey int           // keys per write in MultiKey
	Timeout  time.Duration // per request
}

// Measured is one workload's outcome on one system.
type Measured struct {
	Ops      uint64        // acknowledged operations in the measured window
	Errors   uint64        // failed round trips (their operations not counted)
	FirstErr string        // the first error seen, to say what went wrong
	Elapsed  time.Duration // the measured window
	Hist     Hist          // round-trip latencies of successes
	Skipped  bool          // the system cannot run this workload
}

// Rate is acknowledged operations per second.
func (m *Measured) Rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Ops) / m.Elapsed.Seconds()
}

// drive runs workload w over clients for l.Warmup+l.Duration and measures
// the last l.Duration of it. Each client is used by one goroutine only.
func drive(ctx context.Context, clients []Client, w Workload, l Load, seed uint64) Measured {
	type worker struct {
		ops, errs uint64
		firstErr  string
		hist      Hist
		skipped   bool
	}
	ws := make([]worker, len(clients))
	val := make([]byte, l.Value)
	for i := range val {
		val[i] = 'a' + byte(i%26)
	}
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := &ws[i]
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			key := func() string { return "key:" + strconv.Itoa(rng.IntN(l.Keys)) }
			batch := make([]string, max(l.Pipeline, l.MultiKey))
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, l.Timeout)
				var err error
				ops := uint64(1)
				switch op := w; {
				case op == Write || (op == Mixed && rng.IntN(2) == 0):
					err = c.Set(rctx, key(), val)
				case op == Read || op == Mixed:
					err = c.Get(rctx, key())
				case op == Pipelined:
					ks := batch[:l.Pipeline]
					for j := range ks {
						ks[j] = key()
					}
					var ok bool
					ok, err = c.PipeSet(rctx, ks, val)
					if !ok {
						cancel()
						me.skipped = true
						return
					}
					ops = uint64(len(ks))
				case op == MultiKey:
					// Distinct keys: etcd refuses a transaction that
					// puts one key twice.
					ks := batch[:l.MultiKey]
					for j := range ks {
						ks[j] = key()
						for slices.Contains(ks[:j], ks[j]) {
							ks[j] = key()
						}
					}
					err = c.MSet(rctx, ks, val)
				}
				cancel()
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(end) {
					continue
				}
				if err != nil {
					if me.errs == 0 {
						me.firstErr = err.Error()
					}
					me.errs++
					continue
				}
				me.ops += ops
				me.hist.Add(t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	m := Measured{Elapsed: l.Duration}
	for i := range ws {
		m.Ops += ws[i].ops
		m.Errors += ws[i].errs
		if m.FirstErr == "" {
			m.FirstErr = ws[i].firstErr
		}
		m.Hist.Merge(&ws[i].hist)
		m.Skipped = m.Skipped || ws[i].skipped
	}
	if ctx.Err() != nil {
		m.FirstErr = fmt.Sprintf("interrupted: %v", ctx.Err())
	}
	return m
}
