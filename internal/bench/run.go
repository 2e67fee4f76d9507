package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	CPU time.Duration // the system's server CPU time in the measured window
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

// Run starts each system in turn, runs every workload on it, and stops
// it before the next starts. A system that fails to start is reported
// and skipped; the run goes on with the others.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Load.validate(); err != nil {
		return nil, err
	}
	say := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", a...)
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
			return rep, err
		}
		say("%s: starting", sys.Name)
		r, err := sys.start(ctx, dir, o.Load.Clients)
		if err != nil {
			say("%s: did not start: %v", sys.Name, err)
			errs = append(errs, fmt.Errorf("%s: %w", sys.Name, err))
			continue
		}
		for _, w := range o.Workloads {
			if ctx.Err() != nil {
				break
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
			cpu0, err0 := totalCPU(r.pids())
			m := drive(ctx, r.clients, w, o.Load, o.Seed)
			cpu1, err1 := totalCPU(r.pids())
			if err := <-profiled; err != nil {
				say("%s %s: no profile: %v", sys.Name, w, err)
			}
			row := Row{System: sys.Name, Workload: w, Measured: m}
			if err := errors.Join(err0, err1); err != nil {
				// A server process went away mid-measurement: its CPU
				// time cannot be read, and the figures are suspect.
				errs = append(errs, fmt.Errorf("%s %s: %w", sys.Name, w, err))
			} else {
				row.CPU = cpu1 - cpu0
			}
			rep.Rows = append(rep.Rows, row)
			if m.Skipped {
				say("%s %s: not supported", sys.Name, w)
				continue
			}
			say("%s %s: %.0f ops/s, p99 %s, %d errors %s", sys.Name, w, m.Rate(), ms(m.Hist.Quantile(0.99)), m.Errors, m.FirstErr)
		}
		if err := r.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: stop: %w", sys.Name, err))
		}
	}
	return rep, errors.Join(errs...)
}

// Table prints the report: a line per workload and system, with the
// first system's throughput and CPU per operation as ratios to each
// other's ("kintsu ÷ this": above 1 the first system is faster, or pays
// less CPU per operation).
func (r *Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsystem\tops/s\tp50\tp99\terrors\tCPU-s/1k ops\tops ratio\tCPU ratio\t")
	first := map[Workload]*Row{}
	for i := range r.Rows {
		row := &r.Rows[i]
		if _, ok := first[row.Workload]; !ok {
			first[row.Workload] = row
		}
		if row.Skipped {
			fmt.Fprintf(tw, "%s\t%s\t—\t—\t—\t—\t—\t—\t—\t\n", row.Workload, row.System)
			continue
		}
		opsRatio, cpuRatio := "", ""
		if f := first[row.Workload]; f != row && !f.Skipped {
			opsRatio = ratio(f.Rate(), row.Rate())
			cpuRatio = ratio(row.CPUPerK(), f.CPUPerK())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%d\t%.3f\t%s\t%s\t\n", row.Workload, row.System, row.Rate(),
			ms(row.Hist.Quantile(0.5)), ms(row.Hist.Quantile(0.99)), row.Errors, row.CPUPerK(), opsRatio, cpuRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	l := r.Load
	_, err := fmt.Fprintf(w, "%d connections, %d-byte values, %d keys, pipeline %d, %d keys per multi-key write; %v measured after %v warm-up per workload.\n"+
		"ops ratio: the first system's ops/s ÷ this one's. CPU ratio: this one's CPU per op ÷ the first's (above 1: the first pays less).\n",
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

func ms(d time.Duration) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)), "0"), ".") + "ms"
}
