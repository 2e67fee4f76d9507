package bench

import (
	"context"
	"errors"
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
	Ops      uint64        // operations acknowledged within the measured window
	Errors   uint64        // failed round trips that ended after the warm-up, however late
	FirstErr string        // the first error seen, to say what went wrong
	Elapsed  time.Duration // the measured window (shorter if interrupted)
	Hist     Hist          // round-trip latencies of the counted operations
	Skipped  bool          // the system cannot run this workload
	// CPU is the servers' CPU time over the measured window; CPUKnown is
	// false when it could not be read (a server process went away).
	CPU         time.Duration
	CPUKnown    bool
	Interrupted bool // the run was cancelled inside the window
}

// Rate is acknowledged operations per second.
func (m *Measured) Rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Ops) / m.Elapsed.Seconds()
}

// drive runs workload w over clients for l.Warmup+l.Duration and measures
// the last l.Duration of it. A request belongs to the window its reply
// ends in: a success ending in the window counts (its latency too), an
// error ending any time after the warm-up counts as an error — a request
// that times out after the window is still a failure the table must show.
// cpu, if not nil, is sampled when the window opens and when it closes.
// Each client is used by one goroutine only.
func drive(ctx context.Context, clients []Client, w Workload, l Load, seed uint64, cpu func() (time.Duration, error)) Measured {
	type worker struct {
		ops, errs uint64
		firstErr  string
		hist      Hist
		skipped   bool
	}
	ws := make([]worker, len(clients))
	val := value(l.Value)
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)
	var wg sync.WaitGroup
	m := Measured{Elapsed: l.Duration}
	if cpu != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.CPU, m.CPUKnown = sampleCPU(ctx, cpu, measureFrom, end)
		}()
	}
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
				switch w {
				case Write:
					err = c.Set(rctx, key(), val)
				case Read:
					err = c.Get(rctx, key())
				case Mixed:
					if rng.IntN(2) == 0 {
						err = c.Set(rctx, key(), val)
					} else {
						err = c.Get(rctx, key())
					}
				case Pipelined:
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
				case MultiKey:
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
				switch {
				case t1.Before(measureFrom):
				case err != nil:
					if ctx.Err() != nil {
						return // interrupted, not the system's failure
					}
					if me.errs == 0 {
						me.firstErr = err.Error()
					}
					me.errs++
				case t1.Before(end):
					me.ops += ops
					me.hist.Add(t1.Sub(t0))
				}
			}
		}()
	}
	wg.Wait()
	for i := range ws {
		m.Ops += ws[i].ops
		m.Errors += ws[i].errs
		if m.FirstErr == "" {
			m.FirstErr = ws[i].firstErr
		}
		m.Hist.Merge(&ws[i].hist)
		m.Skipped = m.Skipped || ws[i].skipped
	}
	if ctx.Err() != nil && time.Now().Before(end) {
		m.Interrupted, m.CPUKnown = true, false
		m.Elapsed = max(0, time.Since(measureFrom))
	}
	return m
}

// sampleCPU reads cpu when the window opens and when it closes.
func sampleCPU(ctx context.Context, cpu func() (time.Duration, error), from, end time.Time) (time.Duration, bool) {
	wait := func(t time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(t)):
			return true
		}
	}
	if !wait(from) {
		return 0, false
	}
	c0, err := cpu()
	if err != nil || !wait(end) {
		return 0, false
	}
	c1, err := cpu()
	if err != nil {
		return 0, false
	}
	return c1 - c0, true
}

func value(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// preloadBatch is how many keys one round trip of the preload writes.
const preloadBatch = 100

// preload writes every key of the key space once, unmeasured, so that the
// read workloads find every key on every system whatever its write rate
// (a miss is cheaper than a hit everywhere). Pipelined where the system
// pipelines, else in atomic batches (etcd: a transaction of puts, within
// its default limit of 128 operations).
func preload(ctx context.Context, clients []Client, l Load) error {
	val := value(l.Value)
	next := make(chan int)
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks := make([]string, 0, preloadBatch)
			for from := range next {
				ks = ks[:0]
				for k := from; k < min(from+preloadBatch, l.Keys); k++ {
					ks = append(ks, "key:"+strconv.Itoa(k))
				}
				rctx, cancel := context.WithTimeout(ctx, l.Timeout)
				ok, err := c.PipeSet(rctx, ks, val)
				if err == nil && !ok {
					err = c.MSet(rctx, ks, val)
				}
				cancel()
				if err != nil && errs[i] == nil {
					errs[i] = fmt.Errorf("preloading keys from %d: %w", from, err)
				}
			}
		}()
	}
feed:
	for from := 0; from < l.Keys; from += preloadBatch {
		select {
		case next <- from:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}
