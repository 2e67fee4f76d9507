// Command kintsu is the single Kintsu binary: a node (`kintsu server`), a
// local cluster for development (`kintsu dev`), and the tools around them.
package main

import (
	"fmt"
	"os"
)

const usage = `kintsu — a replicated, Redis-compatible key-value store

Usage:
  kintsu server --id N --data-dir DIR --resp-addr H:P --peer-addr H:P --http-addr H:P \
                --initial-cluster 1=H:P,2=H:P,3=H:P [--partitions 64] [--replicas 3] \
                (--certs-dir DIR | --insecure) [--config kintsu.toml] [--print-config]
                (every flag also from the --config file and $KINTSU_<FLAG>, e.g. KINTSU_DATA_DIR)
  kintsu cert create-ca | create-node ID HOST... | create-client USER --certs-dir DIR
  kintsu dev [--nodes 3] [--dir DIR] [--base-port 7000] [--secure]
  kintsu dev restart N | stop N [--dir DIR]   (a node of the running kintsu dev, which keeps supervising it)
  kintsu chaos [--nodes 5] [--duration 60s] [--seed N] [--nemesis kill,kill-leader,...,misconfig,disk-full,stranger]
               [--workload register,set,bank] [--out DIR]
               [--plant-bug stale-read|ack-before-fsync|lost-update|skip-intent-check]
               [--network hooks|netns]
  kintsu ctl [--http HOST:PORT] status | locate KEY | node decommission|remove ID | backup --out DIR
             | backup verify DIR | restore --from DIR   (default: the running kintsu dev cluster)
  kintsu sim [--seeds 100] [--from 1] [--procs N] [--plant BUG] | --seed N [--trace]   (the deterministic simulator)
  kintsu bench [--systems kintsu,etcd,redis] [--duration 10s] [--clients 64]   (side by side with etcd and Redis)
  kintsu stranger --peers 1=H:P,... [--cluster-id ID] [--as 99] [--duration 2s]   (testing only: a hostile peer)
  kintsu kube init | start | prestop   (a pod of the Kubernetes StatefulSet in deploy/kubernetes/)
  kintsu version                 (also kintsu server --version)

Run 'kintsu <command> -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "server":
		os.Exit(runServer(args))
	case "dev":
		os.Exit(runDev(args))
	case "chaos":
		os.Exit(runChaos(args))
	case "ctl":
		os.Exit(runCtl(args))
	case "cert":
		os.Exit(runCert(args))
	case "stranger":
		os.Exit(runStranger(args))
	case "sim":
		os.Exit(runSim(args))
	case "bench":
		os.Exit(runBench(args))
	case "kube":
		os.Exit(runKube(args))
	case "version", "--version", "-v":
		fmt.Print(versionText())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "kintsu: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
