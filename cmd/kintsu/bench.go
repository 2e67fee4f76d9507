package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kintsu/kintsu/internal/bench"
)

// runBench is `kintsu bench`: Kintsu, etcd and Redis side by side (see
// package bench).
func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	systems := fs.String("systems", "kintsu,etcd,redis", "systems to measure, in order: kintsu, etcd, redis (AOF everysec and always)")
	workloads := fs.String("workloads", "write,read,mixed,pipelined,multi-key", "workloads to run, in order")
	etcdBin := fs.String("etcd", "etcd", "the etcd binary (3.6 built from its Go module, or Debian's etcd-server)")
	redisBin := fs.String("redis-server", "redis-server", "the redis-server binary")
	clients := fs.Int("clients", 64, "concurrent connections")
	duration := fs.Duration("duration", 10*time.Second, "measured time per workload")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time before each workload")
	keys := fs.Int("keys", 100_000, "key space")
	value := fs.Int("value", 100, "value size in bytes")
	pipeline := fs.Int("pipeline", 16, "SETs per round trip in the pipelined workload")
	multi := fs.Int("multi-key", 10, "keys per atomic write in the multi-key workload")
	basePort := fs.Int("base-port", 17300, "ports from here: kintsu +1.., its peers +10001.., HTTP +1001..; etcd +201..; redis +300")
	dir := fs.String("dir", "", "where data, logs and profiles go (default: a temporary directory, removed afterwards); it must be new, empty, or one an earlier run used")
	kintsuArgs := fs.String("kintsu-args", "", "extra flags for every Kintsu node, space-separated")
	seed := fs.Uint64("seed", 1, "seed of the key choice")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each request")
	profile := fs.Bool("profile", false, "leave a CPU profile of every Kintsu node per workload in --dir (KINTSU-WORKLOAD-nodeN.pprof)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "kintsu bench: Kintsu, etcd and Redis side by side on loopback, one at a time, with one load generator (see docs/benchmarks.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kintsu bench:", err)
		return 1
	}
	var sys []bench.System
	seen := map[string]bool{}
	for _, s := range strings.Split(*systems, ",") {
		if seen[s] {
			fmt.Fprintf(os.Stderr, "kintsu bench: %q twice in --systems\n", s)
			return 2
		}
		seen[s] = true
		switch s {
		case "kintsu":
			sys = append(sys, bench.Kintsu(self, *basePort, strings.Fields(*kintsuArgs), *profile))
		case "etcd":
			bin, err := exec.LookPath(*etcdBin)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kintsu bench: no etcd (%v); build etcd 3.6 with scripts/build-etcd.sh or install etcd-server, or leave it out of --systems\n", err)
				return 1
			}
			sys = append(sys, bench.Etcd(bin, *basePort+200))
		case "redis":
			bin, err := exec.LookPath(*redisBin)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kintsu bench: no redis-server (%v); install redis-server, or leave it out of --systems\n", err)
				return 1
			}
			sys = append(sys, bench.Redis(bin, *basePort+300, "everysec"), bench.Redis(bin, *basePort+300, "always"))
		default:
			fmt.Fprintf(os.Stderr, "kintsu bench: unknown system %q\n", s)
			return 2
		}
	}
	var ws []bench.Workload
	for _, w := range strings.Split(*workloads, ",") {
		if !slices.Contains(bench.Workloads, bench.Workload(w)) {
			fmt.Fprintf(os.Stderr, "kintsu bench: unknown workload %q\n", w)
			return 2
		}
		ws = append(ws, bench.Workload(w))
	}
	root := *dir
	if *profile && root == "" {
		fmt.Fprintln(os.Stderr, "kintsu bench: --profile needs --dir, where the profiles stay")
		return 2
	}
	if root != "" {
		// Each run clears DIR/<system>: never in a directory of the user's.
		if err := bench.ClaimDir(root); err != nil {
			fmt.Fprintln(os.Stderr, "kintsu bench:", err)
			return 2
		}
	} else {
		if root, err = os.MkdirTemp("", "kintsu-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, "kintsu bench:", err)
			return 1
		}
		defer os.RemoveAll(root)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, bench.Options{
		Systems: sys, Workloads: ws, Dir: root, Progress: os.Stderr, Seed: *seed,
		Load: bench.Load{Clients: *clients, Duration: *duration, Warmup: *warmup, Keys: *keys, Value: *value,
			Pipeline: *pipeline, MultiKey: *multi, Timeout: *timeout},
	})
	if rep != nil && len(rep.Rows) > 0 {
		fmt.Println()
		if werr := rep.Table(os.Stdout); werr != nil {
			fmt.Fprintln(os.Stderr, "kintsu bench:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kintsu bench:", err)
		return 1
	}
	return 0
}
