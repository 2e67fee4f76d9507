package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/dst"
)

// runSim is `kintsu sim`: the deterministic simulator (internal/dst).
// One seed runs here; a range of seeds runs in worker processes (one
// simulation per process at a time: each seeds crypto/rand), twice with
// --double, and every seed's two trace hashes must agree.
func runSim(args []string) int {
	if len(args) > 0 && args[0] == "scale" {
		return runScaleSim(args[1:])
	}
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	seed := fs.Uint64("seed", 0, "run this one seed (with --trace: print every step)")
	seeds := fs.Int("seeds", 100, "how many seeds to run, from --from")
	from := fs.Uint64("from", 1, "the first seed")
	procs := fs.Int("procs", runtime.NumCPU(), "worker processes")
	plant := fs.String("plant", "", "plant a bug: lazy-fsync, forget-vote, stale-reads, reapply, compact-ahead, canary")
	leases := fs.Bool("read-leases", false, "leaders serve reads on read leases (raftstore's ReadLeases)")
	double := fs.Bool("double", true, "run every seed twice, in different processes, and compare the trace hashes")
	trace := fs.Bool("trace", false, "with --seed: print a line per step")
	traceFrom := fs.Int("trace-from", 0, "with --trace: from this step on")
	logs := fs.Bool("log", false, "with --seed: print the engines' log lines, each tagged with its node and simulated time")
	faultTime := fs.Duration("fault-time", 30*time.Second, "simulated time with faults, per seed")
	healTime := fs.Duration("heal-time", 15*time.Second, "simulated time to converge after the faults, per seed")
	worker := fs.Bool("worker", false, "internal: run --seeds from --from and print one JSON line per seed")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "kintsu sim: run the replication engine in the deterministic simulator (see docs/operations.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opt := dst.Options{Plant: dst.Plant(*plant), ReadLeases: *leases, FaultTime: *faultTime, HealTime: *healTime}
	if opt.Plant != "" && !slices.Contains(dst.Plants, opt.Plant) {
		fmt.Fprintf(os.Stderr, "kintsu sim: unknown plant %q\n", *plant)
		return 2
	}
	switch {
	case *worker:
		enc := json.NewEncoder(os.Stdout)
		for s := *from; s < *from+uint64(*seeds); s++ {
			o := opt
			o.Seed = s
			if err := enc.Encode(dst.Run(o)); err != nil {
				return 1
			}
		}
		return 0
	case *seed != 0:
		opt.Seed, opt.Trace, opt.TraceFrom, opt.TraceOut = *seed, *trace, *traceFrom, os.Stdout
		if *logs {
			opt.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: dropTime}))
		}
		r := dst.Run(opt)
		fmt.Println(r.Summary())
		if r.Failed() {
			fmt.Println("replay:", r.Replay())
			return 1
		}
		return 0
	}
	start := time.Now()
	first, err := runWorkers(os.Args[0], *from, *seeds, *procs, 0, fs, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kintsu sim:", err)
		return 1
	}
	sum := &dst.Summary{}
	for s := *from; s < *from+uint64(*seeds); s++ {
		sum.Add(first[s])
	}
	if *double {
		second, err := runWorkers(os.Args[0], *from, *seeds, *procs, 1, fs, args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kintsu sim:", err)
			return 1
		}
		for s := *from; s < *from+uint64(*seeds); s++ {
			a, b := first[s], second[s]
			o := opt
			o.Seed = s
			if d := dst.FirstDivergence(a, b, func(tf int) *dst.Result {
				o.Trace, o.TraceFrom = true, tf
				return dst.Run(o)
			}); d != nil {
				sum.Diverged++
				sum.Failures = append(sum.Failures, d.String())
			}
		}
	}
	sum.Elapsed = time.Since(start)
	fmt.Println(sum)
	if *double {
		fmt.Printf("every seed ran twice; %d of %d replayed identically\n", *seeds-sum.Diverged, *seeds)
	}
	if sum.Failed > 0 || sum.Diverged > 0 {
		return 1
	}
	return 0
}

// runWorkers runs seeds [from, from+n) in procs worker processes; shift
// changes which process gets which seeds, so a double run never repeats
// a seed in a process like the first one's.
func runWorkers(self string, from uint64, n, procs, shift int, fs *flag.FlagSet, args []string) (map[uint64]*dst.Result, error) {
	procs = max(1, min(procs, n))
	out := map[uint64]*dst.Result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	// Seeds go to workers in interleaved chunks so that slow and fast
	// seeds spread; chunk k runs in process (k+shift)%procs.
	chunk := max(1, n/(procs*4))
	type job struct {
		from uint64
		n    int
	}
	queues := make([][]job, procs)
	for k, s := 0, 0; s < n; k, s = k+1, s+chunk {
		queues[(k+shift)%procs] = append(queues[(k+shift)%procs], job{from + uint64(s), min(chunk, n-s)})
	}
	for _, q := range queues {
		wg.Add(1)
		go func(q []job) {
			defer wg.Done()
			for _, j := range q {
				// A worker that dies (a panic no recover catches, such as
				// one taken inside Pebble with its lock released) fails the
				// seed it was running; a new worker goes on after it.
				for next, end := j.from, j.from+uint64(j.n); next < end; {
					last, err := runWorker(self, next, int(end-next), fs, func(r *dst.Result) {
						mu.Lock()
						out[r.Seed] = r
						mu.Unlock()
					})
					if err == nil {
						break
					}
					var exit *exec.ExitError
					if !errors.As(err, &exit) {
						errs <- err
						return
					}
					dead := next
					if last != 0 {
						dead = last + 1
					}
					mu.Lock()
					out[dead] = &dst.Result{Seed: dead, Plant: dst.Plant(fs.Lookup("plant").Value.String()), ReadLeases: fs.Lookup("read-leases").Value.String() == "true",
						Failure: fmt.Sprintf("the worker process died running this seed (%v); a panic's stack, if any, is on stderr", err)}
					mu.Unlock()
					next = dead + 1
				}
			}
		}(q)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	for s := from; s < from+uint64(n); s++ {
		if out[s] == nil {
			return nil, fmt.Errorf("seed %d: no result from its worker", s)
		}
	}
	_ = args
	return out, nil
}

// runWorker runs seeds [from, from+n) in one worker process, handing each
// result to got as it arrives; last is the last seed reported (0 if none).
func runWorker(self string, from uint64, n int, fs *flag.FlagSet, got func(*dst.Result)) (last uint64, err error) {
	wargs := append([]string{"sim", "--worker", "--from", fmt.Sprint(from), "--seeds", fmt.Sprint(n)}, passThrough(fs)...)
	cmd := exec.Command(self, wargs...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r dst.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return last, fmt.Errorf("worker for seeds %d..%d: %w", from, from+uint64(n)-1, err)
		}
		got(&r)
		last = r.Seed
	}
	if err := cmd.Wait(); err != nil {
		return last, fmt.Errorf("worker for seeds %d..%d: %w", from, from+uint64(n)-1, err)
	}
	return last, nil
}

// passThrough repeats the flags that shape a run for the workers.
func passThrough(fs *flag.FlagSet) []string {
	var out []string
	for _, name := range []string{"plant", "read-leases", "fault-time", "heal-time"} {
		out = append(out, "--"+name+"="+fs.Lookup(name).Value.String())
	}
	return out
}

// dropTime drops the wall-clock time from a simulation's log lines: the
// trace's own steps give the simulated time.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
