package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kintsu/kintsu/internal/server"
	"github.com/kintsu/kintsu/internal/stranger"
)

// runStranger is `kintsu stranger`: a hostile peer for the chaos suite
// (the stranger nemesis). Testing only: it attacks the nodes it is given.
func runStranger(args []string) int {
	fs := flag.NewFlagSet("stranger", flag.ContinueOnError)
	var peers string
	var cfg stranger.Config
	fs.StringVar(&peers, "peers", "", "the nodes to attack, as id=peer-addr, comma-separated")
	fs.StringVar(&cfg.ClusterID, "cluster-id", "", "the cluster id to send with every frame (empty: none)")
	fs.Uint64Var(&cfg.As, "as", 99, "the node id to claim")
	fs.IntVar(&cfg.Partitions, "partitions", 16, "the cluster's partition count (groups to aim at)")
	fs.DurationVar(&cfg.Duration, "duration", 2*time.Second, "how long to attack")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the frames")
	fs.IntVar(&cfg.Rate, "rate", 200, "frames per second to each node")
	fs.StringVar(&cfg.CertsDir, "certs-dir", "", "a node certificate for --as to present (empty: plaintext)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "kintsu stranger: TESTING ONLY — floods the given nodes' peer ports with hostile raft frames (see kintsu chaos --nemesis stranger)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.Peers, err = server.ParseInitialCluster(peers); err != nil || len(cfg.Peers) == 0 {
		fmt.Fprintf(os.Stderr, "kintsu stranger: --peers: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	rep, err := stranger.Run(context.Background(), cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kintsu stranger:", err)
		return 1
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}
