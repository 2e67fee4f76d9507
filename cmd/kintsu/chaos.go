package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kintsu/kintsu/internal/chaos"
)

// runChaos runs `kintsu chaos`: exit 0 when every check passes, 1 when an
// anomaly is found, 2 on usage or set-up errors.
func runChaos(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var (
		cfg                chaos.Config
		nemeses, workloads string
	)
	fs.IntVar(&cfg.Nodes, "nodes", 5, "nodes in the cluster")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long faults are injected")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of the fault schedule and workloads (0 = from the clock; printed)")
	fs.StringVar(&nemeses, "nemesis", "", "faults to inject: "+strings.Join(chaos.AllNemeses, ", ")+" (default: all; coordinator and participant only with the bank workload)")
	fs.StringVar(&workloads, "workload", strings.Join(chaos.AllWorkloads, ","), "workloads: "+strings.Join(chaos.AllWorkloads, ", "))
	fs.StringVar(&cfg.Out, "out", "", "report directory (default: DIR/report under the run's data dir)")
	fs.StringVar(&cfg.Dir, "dir", "", "data directory of the run's cluster (default: a new temp dir)")
	fs.StringVar(&cfg.PlantBug, "plant-bug", "", "break a guarantee on purpose to show the checks catch it: "+strings.Join(chaos.AllBugs, ", "))
	fs.BoolVar(&cfg.ReadLeases, "read-leases", false, "run the nodes with --read-leases (leaders serve reads on leases)")
	fs.IntVar(&cfg.Partitions, "partitions", 16, "partitions")
	fs.IntVar(&cfg.Replicas, "replicas", 3, "replicas per partition")
	fs.IntVar(&cfg.Clients, "clients", 8, "clients of the register workload, and transfer clients of the bank workload")
	fs.BoolVar(&cfg.Secure, "secure", false, "run the cluster with certificates (TLS on every port, peers authenticated); the stranger then also holds a certificate of the cluster's CA for a non-member")
	fs.StringVar(&cfg.Network, "network", "hooks", "hooks: nodes on loopback, links cut inside the nodes; netns: each node its own host in a network namespace, links cut by dropping packets (needs root)")
	fs.IntVar(&cfg.BasePort, "base-port", 7100, "node i listens on base+i (RESP), base+1000+i (HTTP), base+10000+i (peers)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ownDir := cfg.Dir == ""
	if ownDir {
		d, err := os.MkdirTemp("", "kintsu-chaos-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "kintsu chaos: %v\n", err)
			return 2
		}
		cfg.Dir = d
	}
	cfg.Nemeses = splitList(nemeses)
	cfg.Workloads = splitList(workloads)
	cfg.Progress = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, cfg)
	reportChaosData(cfg.Dir, ownDir, err == nil && sum.OK)
	var se *chaos.SetupError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(os.Stderr, "kintsu chaos: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(os.Stderr, "kintsu chaos: %v\n", err)
		return 2
	case !sum.OK:
		return 1
	}
	return 0
}

// reportChaosData says where a run left its data, and removes the
// nodes' data dirs (hundreds of MiB) after a passing run in a directory
// of its own; the report stays. A failing run keeps everything, for the
// node logs.
func reportChaosData(dir string, own, passed bool) {
	cluster := filepath.Join(dir, "cluster")
	if own && passed {
		if err := os.RemoveAll(cluster); err == nil {
			fmt.Printf("chaos: removed the nodes' data (%s); the report stays in %s (pass --dir to keep everything)\n", cluster, dir)
			return
		}
	}
	fmt.Printf("chaos: the nodes' data and logs are in %s (remove it when done)\n", cluster)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
