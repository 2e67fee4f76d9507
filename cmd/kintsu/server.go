package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kintsu/kintsu/internal/config"
	"github.com/kintsu/kintsu/internal/diskguard"
	"github.com/kintsu/kintsu/internal/memory"
	"github.com/kintsu/kintsu/internal/server"
)

// defaultSplitSize is --split-size's default: CockroachDB splits at 512
// MiB, TiKV at 96–144 MiB; Kintsu copies a split's keys on the engine
// loop, so it splits smaller than the first.
const defaultSplitSize = 256 << 20

// serverOpts are kintsu server's settings, as its flags set them.
type serverOpts struct {
	cfg            server.Config
	initialCluster string
	logLevel       string
	logFormat      string
	insecure       bool
}

// flags defines kintsu server's flags over o.
func (o *serverOpts) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfg, initialCluster, logLevel, insecure := &o.cfg, &o.initialCluster, &o.logLevel, &o.insecure
	fs.Uint64Var(&cfg.NodeID, "id", 0, "this node's id (positive integer, unique in the cluster)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for this node's data")
	fs.StringVar(&cfg.RESPAddr, "resp-addr", "127.0.0.1:7001", "address for Redis clients")
	fs.StringVar(&cfg.PeerAddr, "peer-addr", "127.0.0.1:17001", "address for other nodes (gRPC)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8001", "address for the HTTP admin API")
	fs.StringVar(&cfg.AdvertiseRESPAddr, "advertise-resp-addr", "", "address clients reach this node at, when not --resp-addr (NAT, containers); given in CLUSTER SLOTS/SHARDS/NODES, MOVED and status. Default: --resp-addr, its host taken from the peer address when it binds every interface")
	fs.StringVar(&cfg.AdvertisePeerAddr, "advertise-peer-addr", "", "address other nodes reach this one at, when not --peer-addr (default: this node's --initial-cluster entry, else --peer-addr)")
	fs.StringVar(&cfg.AdvertiseHTTPAddr, "advertise-http-addr", "", "address of the admin API for others, when not --http-addr (default as for --advertise-resp-addr)")
	fs.StringVar(initialCluster, "initial-cluster", "", "every initial node as id=peer-addr, comma-separated; the same on every node")
	fs.StringVar(&cfg.Join, "join", "", "instead of --initial-cluster: a member's peer address (host:port); the node joins that running cluster as a new member")
	fs.StringVar(&cfg.CertsDir, "certs-dir", "", "directory with ca.crt, node.crt and node.key (see kintsu cert): TLS on every port, mutual TLS between nodes")
	fs.BoolVar(insecure, "insecure", false, "run without TLS or peer authentication: anyone who reaches a port is trusted (loopback and tests only)")
	fs.IntVar(&cfg.Partitions, "partitions", 64, "number of partitions the cluster starts with (must divide 16384; they split and merge later, see --split-size)")
	fs.IntVar(&cfg.Replicas, "replicas", 3, "replicas per partition (fixed at bootstrap)")
	fs.DurationVar(&cfg.TickInterval, "tick", 50*time.Millisecond, "raft tick interval")
	fs.IntVar(&cfg.ElectionTicks, "election-ticks", 10, "ticks without a leader before an election")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", time.Second, "how often the node records that it is alive in the cluster metadata (silent for 3 intervals: suspect)")
	fs.DurationVar(&cfg.DeadTimeout, "dead-timeout", time.Minute, "how long a node may stay silent before it is declared dead")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 5*time.Second, "deadline of every client request")
	fs.DurationVar(&cfg.EmptyDirCheckTimeout, "empty-dir-check-timeout", time.Second, "with an empty --data-dir, how long to wait for peers to say whether this node ran before (it then refuses to start; negative: do not ask)")
	fs.DurationVar(&cfg.LeaderBalanceInterval, "leader-balance-interval", 5*time.Second, "how often a node hands one of its leaderships to a replica node leading two or more fewer partitions (negative: never)")
	fs.Uint64Var(&cfg.TruncateAfter, "log-truncate-after", 0, "truncate a partition's applied raft log beyond this many entries (0 = default)")
	fs.Uint64Var(&cfg.TruncateKeep, "log-truncate-keep", 0, "entries kept when truncating (0 = default)")
	fs.BoolVar(&cfg.ReadLeases, "read-leases", false, "leaders serve linearizable reads on a lease (a fifth of the election timeout) instead of a quorum round per read; see docs/operations.md")
	fs.BoolVar(&cfg.UnsafeLongLeases, "unsafe-long-leases", false, "TESTING ONLY: read leases ten election timeouts long, outliving their leader (stale reads)")
	fs.BoolVar(&cfg.UnsafeStaleReads, "unsafe-stale-reads", false, "TESTING ONLY: serve reads from any replica without ReadIndex (breaks linearizability)")
	fs.BoolVar(&cfg.UnsafeCASOnPropose, "unsafe-cas-on-propose", false, "TESTING ONLY: check SET ... IFEQ when a write arrives, not when it applies (loses updates)")
	fs.BoolVar(&cfg.UnsafeSkipIntentCheck, "unsafe-skip-intent-check", false, "TESTING ONLY: let reads ignore transactions' write locks (shows half-applied transactions)")
	fs.BoolVar(&cfg.UnsafeLostElement, "unsafe-lost-element", false, "TESTING ONLY: acknowledge one RPUSH in sixteen without applying it (loses list elements)")
	fs.DurationVar(&cfg.UnsafeLazyFsync, "unsafe-lazy-fsync", 0, "TESTING ONLY: let log writes reach disk only this often while fsync reports success (a crash loses acknowledged writes)")
	fs.BoolVar(&cfg.FaultInjection, "fault-injection", false, "TESTING ONLY: enable the admin API's fault hooks (used by kintsu chaos)")
	fs.Func("disk-reserve", "free space kept on the data dir's volume: below it the node refuses writes (NOSPACE) and hands its leaderships away, e.g. 2GiB or 5% (default: the smaller of 1GiB and 5%; 0: off)", func(v string) (err error) {
		cfg.DiskReserve, err = diskguard.ParseReserve(v)
		return err
	})
	cfg.SplitSize = defaultSplitSize
	fs.Func("split-size", "a partition whose data on disk passes this splits in two by itself, and neighbours both under a quarter of it merge (not below --partitions); 0: only kintsu ctl partition split|merge (default 256MiB; see docs/operations.md)", func(v string) error {
		n, err := parseSize(v)
		if err != nil {
			return fmt.Errorf("--split-size %q: want a size such as 256MiB, or 0", v)
		}
		cfg.SplitSize = uint64(n)
		return nil
	})
	fs.Func("split-load", "a partition applying more writes per second than this, for a few heartbeats in a row, splits at the median slot of its recent writes and its new half's leadership moves to another node (default 0: never by load; see docs/operations.md)", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("--split-load %q: want writes per second, such as 5000, or 0", v)
		}
		cfg.SplitLoad = f
		return nil
	})
	fs.BoolVar(&cfg.LeaderLoad, "leader-load", false, "EXPERIMENTAL: also move partition leaderships by measured write load (see docs/operations.md)")
	fs.Func("snapshot-rate", "bytes per second this node sends snapshots at, all together, when replicas move or are repaired (default 128MiB; 0: unlimited)", func(v string) error {
		n, err := parseSize(v)
		if err != nil {
			return fmt.Errorf("--snapshot-rate %q: want a size per second such as 128MiB, or 0", v)
		}
		cfg.SnapshotRate = n
		if n == 0 {
			cfg.SnapshotRate = -1
		}
		return nil
	})
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 30*time.Second, "a storage write still running after this long fences the node (it logs an ERROR naming the data dir and exits)")
	fs.StringVar(&cfg.RequirePassFile, "requirepass-file", "", "file whose first line is the default user's password (Redis's requirepass); clients must AUTH, the admin API asks for it")
	fs.BoolVar(&cfg.ProtectedMode, "protected-mode", true, "while the default user has no password, refuse clients and admin calls from other hosts (Redis's protected mode)")
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve Go profiles at /debug/pprof on the admin API (credentials required)")
	fs.StringVar(logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object per line, for log collectors)")
	limitFlags(fs, &cfg.Limits)
	return fs
}

// runServer runs one node until SIGTERM/SIGINT, then shuts it down
// gracefully (leadership handed away first).
func runServer(args []string) int {
	var o serverOpts
	fs := o.flags()
	cfg := &o.cfg
	logLevel, insecure, initialCluster := &o.logLevel, &o.insecure, &o.initialCluster
	showVersion := fs.Bool("version", false, "print the version and exit")
	printConfig := config.Register(fs)
	loaded, err := config.Load(fs, args, os.Environ())
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "kintsu server: %v\n", err)
		return 2
	case *showVersion:
		fmt.Print(versionText())
		return 0
	case *printConfig:
		if err := config.Print(os.Stdout, fs, loaded); err != nil {
			return 1
		}
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu server: --log-level %q: %v\n", *logLevel, err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	default:
		fmt.Fprintf(os.Stderr, "kintsu server: --log-format %q: want text or json\n", o.logFormat)
		return 2
	}
	if msg := securityProblem(cfg.CertsDir, *insecure); msg != "" {
		fmt.Fprintf(os.Stderr, "kintsu server: %s\n", msg)
		return 2
	}
	if *insecure {
		cfg.Logger.Warn("--insecure: no TLS, no peer authentication; anyone who reaches a port is trusted")
	}
	ic, err := server.ParseInitialCluster(*initialCluster)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu server: --initial-cluster: %v\n", err)
		return 2
	}
	cfg.InitialCluster = ic
	server.ApplyMemoryLimit(cfg.Limits, cfg.Logger)
	if cfg.UnsafeStaleReads {
		cfg.Logger.Warn("--unsafe-stale-reads is on: reads are NOT linearizable (testing only)")
	}
	if cfg.UnsafeLongLeases {
		cfg.Logger.Warn("--unsafe-long-leases is on: reads are NOT linearizable (testing only)")
	}
	if cfg.UnsafeLazyFsync > 0 {
		cfg.Logger.Warn("--unsafe-lazy-fsync is on: acknowledged writes are NOT durable (testing only)")
	}
	if cfg.UnsafeSkipIntentCheck {
		cfg.Logger.Warn("--unsafe-skip-intent-check is on: reads can see half of a transaction (testing only)")
	}
	if cfg.UnsafeCASOnPropose {
		cfg.Logger.Warn("--unsafe-cas-on-propose is on: compare-and-set can lose updates (testing only)")
	}
	if cfg.UnsafeLostElement {
		cfg.Logger.Warn("--unsafe-lost-element is on: list pushes can be acknowledged and lost (testing only)")
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	server.BuildCommit = commit // version.go: set by release builds
	node, err := server.Start(*cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu server: %v\n", err)
		return 1
	}
	select {
	case sig := <-sigs:
		cfg.Logger.Info("shutting down", "signal", sig.String())
	case <-node.Failed():
		cfg.Logger.Error("stopping: the replication engine failed", "err", node.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every wait has a deadline, shutdown included: after a disk failure
	// the storage engine may never finish closing, and a fenced node must
	// still exit so it can be restarted.
	watchdog := time.AfterFunc(15*time.Second, func() {
		fmt.Fprintln(os.Stderr, "kintsu server: shutdown did not finish in 15s; exiting")
		os.Exit(1)
	})
	defer watchdog.Stop()
	go func() {
		// A second signal means: stop now.
		<-sigs
		os.Exit(1)
	}()
	if err := node.Stop(ctx); err != nil {
		cfg.Logger.Error("shutdown", "err", err)
		return 1
	}
	if err := node.Err(); err != nil {
		cfg.Logger.Error("node stopped on a fatal error", "err", err)
		return 1
	}
	return 0
}

// parseSize reads a size flag: KiB, MiB, GiB or TiB (powers of 1024, any
// case), or as Redis's configuration writes sizes (memory.ParseBytes:
// 64mb, 1gb, a plain number of bytes).
func parseSize(v string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	for i, unit := range []string{"kib", "mib", "gib", "tib"} {
		if num, ok := strings.CutSuffix(t, unit); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 || n > math.MaxInt64>>(10*(i+1)) {
				return 0, fmt.Errorf("%q: want a size such as 256MiB", v)
			}
			return n << (10 * (i + 1)), nil
		}
	}
	return memory.ParseBytes(v)
}
