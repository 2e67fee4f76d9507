package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"
)

// Options is one side-by-side run.
type Options struct {
	Systems   []System // the first is the one the ratios are about
	Workloads []Workload
	Load      Load
	Dir       string    // each system's data and logs go under Dir/<name>
	Progress  io.Writer // a line per step; nil for none
	Seed      uint64
}

// Row is one workload on one system.
type Row struct {
	System   string
	Workload Workload
	Measured
}

// CPUPerK is server CPU-seconds per 1,000 acknowledged operations.
func (r *Row) CPUPerK() float64 {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU.Seconds() * 1000 / float64(r.Ops)
}

// Report is a run's outcome.
type Report struct {
	Load Load
	Rows []Row
}

func (l Load) validate() error {
	switch {
	case l.Clients < 1 || l.Clients > 10_000:
		return fmt.Errorf("bench: clients %d: want 1..10000", l.Clients)
	case l.Duration <= 0 || l.Warmup < 0 || l.Timeout <= 0:
		return errors.New("bench: duration and timeout must be positive, warmup not negative")
	case l.Value < 1 || l.Value > 1<<20:
		return fmt.Errorf("bench: value size %d: want 1..1048576", l.Value)
	case l.Pipeline < 1 || l.Pipeline > 1000 || l.MultiKey < 1 || l.MultiKey > 1000:
		return errors.New("bench: pipeline and multi-key sizes want 1..1000")
	case l.Keys < 2*l.MultiKey:
		return fmt.Errorf("bench: a key space of %d is too small for %d-key writes", l.Keys, l.MultiKey)
	}
	return nil
}

// dirMark marks a directory as one kintsu bench may clear parts of.
const dirMark = ".kintsu-bench"

// ClaimDir makes dir a run directory: it must not exist, be empty, or
// carry the mark an earlier run left; Run clears dir/<system> in it.
func ClaimDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case len(entries) > 0 && !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == dirMark }):
		return fmt.Errorf("%s is not empty and not a kintsu bench directory; pick a new one", dir)
	}
	return os.WriteFile(filepath.Join(dir, dirMark), nil, 0o644)
}

// Run starts each system in turn, runs every workload on it, and stops
// it before the next starts. A system that fails to start is reported
// and skipped; the run goes on with the others.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Load.validate(); err != nil {
		return nil, err
	}
	if len(o.Systems) == 0 || len(o.Workloads) == 0 {
		return nil, errors.New("bench: no system or no workload to run")
	}
	say := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", a...)
		}
	}
	for _, w := range o.Workloads {
		if !slices.Contains(Workloads, w) {
			return nil, fmt.Errorf("bench: unknown workload %q", w)
		}
	}
	rep := &Report{Load: o.Load}
	var errs []error
	for _, sys := range o.Systems {
		if ctx.Err() != nil {
			break
		}
		dir := filepath.Join(o.Dir, sys.Name)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			break
		}
		say("%s: starting", sys.Name)
		r, err := sys.start(ctx, dir, o.Load)
		if err != nil {
			say("%s: did not start: %v", sys.Name, err)
			errs = append(errs, fmt.Errorf("%s: %w", sys.Name, err))
			continue
		}
		loaded := false
		for _, w := range o.Workloads {
			if ctx.Err() != nil {
				break
			}
			if (w == Read || w == Mixed) && !loaded {
				t := time.Now()
				if err := preload(ctx, r.clients, o.Load); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", sys.Name, err))
				}
				loaded = true
				say("%s: preloaded %d keys in %v", sys.Name, o.Load.Keys, time.Since(t).Round(time.Millisecond))
			}
			profiled := make(chan error, 1)
			if r.profile != nil {
				go func() {
					// Profile the measured window: start after the warm-up.
					select {
					case <-ctx.Done():
						profiled <- ctx.Err()
						return
					case <-time.After(o.Load.Warmup):
					}
					profiled <- r.profile(ctx, o.Load.Duration, filepath.Join(o.Dir, fmt.Sprintf("%s-%s", sys.Name, w)))
				}()
			} else {
				profiled <- nil
			}
			m := drive(ctx, r.clients, w, o.Load, o.Seed, func() (time.Duration, error) { return totalCPU(r.pids()) })
			if err := <-profiled; err != nil {
				say("%s %s: no profile: %v", sys.Name, w, err)
			}
			rep.Rows = append(rep.Rows, Row{System: sys.Name, Workload: w, Measured: m})
			switch {
			case m.Skipped:
				say("%s %s: not supported", sys.Name, w)
			case m.Interrupted:
				say("%s %s: interrupted", sys.Name, w)
			default:
				if !m.CPUKnown {
					// A server process went away mid-window: the figures
					// are suspect.
					errs = append(errs, fmt.Errorf("%s %s: the servers' CPU time could not be read", sys.Name, w))
				}
				say("%s %s: %.0f ops/s, p99 %s, %d errors %s", sys.Name, w, m.Rate(), ms(m.Hist.Quantile(0.99)), m.Errors, m.FirstErr)
			}
		}
		if err := r.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: stop: %w", sys.Name, err))
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("bench: interrupted: %w", ctx.Err()))
	}
	return rep, errors.Join(errs...)
}

// Table prints the report: a line per workload and system, with the
// first system's throughput and CPU per operation as ratios to each
// other's (above 1 the first system is faster, or pays less CPU per
// operation).
func (r *Report) Table(w io.Writer) error {
	base := ""
	if len(r.Rows) > 0 {
		base = r.Rows[0].System
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tsystem\tops/s\tp50\tp99\terrors\tCPU-s/1k ops\tops: %s ÷ it\tCPU: it ÷ %s\t\n", base, base)
	first := map[Workload]*Row{}
	for i := range r.Rows {
		row := &r.Rows[i]
		if _, ok := first[row.Workload]; !ok && row.System == base {
			first[row.Workload] = row
		}
		if row.Skipped || row.Interrupted {
			what := "—"
			if row.Interrupted {
				what = "interrupted"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t—\t—\t—\t—\t—\t—\t\n", row.Workload, row.System, what)
			continue
		}
		cpu, opsRatio, cpuRatio := "—", "", ""
		if row.CPUKnown {
			cpu = fmt.Sprintf("%.3f", row.CPUPerK())
		}
		if f := first[row.Workload]; f != nil && f != row && !f.Skipped && !f.Interrupted {
			opsRatio = ratio(f.Rate(), row.Rate())
			if row.CPUKnown && f.CPUKnown {
				cpuRatio = ratio(row.CPUPerK(), f.CPUPerK())
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%d\t%s\t%s\t%s\t\n", row.Workload, row.System, row.Rate(),
			ms(row.Hist.Quantile(0.5)), ms(row.Hist.Quantile(0.99)), row.Errors, cpu, opsRatio, cpuRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	l := r.Load
	_, err := fmt.Fprintf(w, "%d client workers, %d-byte values, %d keys (all preloaded before the reads), pipeline %d, %d keys per multi-key write; %v measured after %v warm-up per workload.\n"+
		"Connections: kintsu's cluster client pools up to one per worker per node; redis one per worker; etcd one HTTP/2 connection per member, as its client does.\n"+
		"A kintsu pipeline is split by node and its parts sent in parallel (one round trip is the slowest part); a kintsu multi-key write spanning partitions is a two-phase commit.\n"+
		"CPU is the servers' only, over the measured window; figures taken with --profile include the profiler's cost.\n",
		l.Clients, l.Value, l.Keys, l.Pipeline, l.MultiKey, l.Duration, l.Warmup)
	return err
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	if a/b < 0.1 {
		return fmt.Sprintf("%.3f×", a/b)
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// ms prints a latency in milliseconds with three significant digits.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	case v >= 1:
		return fmt.Sprintf("%.2fms", v)
	default:
		return fmt.Sprintf("%.3fms", v)
	}
}
