package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kintsu/kintsu/internal/config"
	"github.com/kintsu/kintsu/internal/launcher"
)

const (
	// devReadyTimeout bounds startup: a fresh cluster elects every
	// partition's leader in a few seconds; a minute means something is wrong.
	devReadyTimeout = 60 * time.Second
	// devStopTimeout gives each node time to hand leadership away before it
	// is killed.
	devStopTimeout = 10 * time.Second
)

type devFlags struct {
	nodes, basePort, partitions, replicas int
	dir                                   string
	secure                                bool
}

// runDev runs `kintsu dev`: a local cluster of real `kintsu server`
// processes on loopback, until Ctrl-C. Exit status: 0 after a clean
// shutdown, 1 if the cluster could not start, 2 on a usage error.
func runDev(args []string) int {
	if len(args) > 0 && (args[0] == "restart" || args[0] == "stop") {
		return runDevOrder(args[0], args[1:])
	}
	f, err := parseDevFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	// Catch Ctrl-C before any node starts, so an interrupted startup still
	// stops the nodes gracefully. Signals stay caught until runDev returns:
	// a second Ctrl-C cannot abandon nodes halfway through shutdown, which
	// is bounded anyway.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	dir, fresh, err := devDir(f.dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: finding the kintsu binary: %v\n", err)
		return 1
	}
	if err := writeDevFlags(dir, f); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
		return 1
	}
	if fresh {
		fmt.Printf("kintsu dev: new cluster, data in %s\n", dir)
	} else {
		fmt.Printf("kintsu dev: reusing %s (nodes recover their data)\n", dir)
	}

	sec, err := setupDevSecurity(dir, f.secure, f.nodes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
		return 1
	}
	if !f.secure {
		fmt.Println(devInsecureWarning)
	}
	c, err := launcher.Start(launcher.Options{
		CertsDir:   sec.certsDir,
		ExtraArgs:  sec.serverArgs(),
		Binary:     exe,
		Nodes:      f.nodes,
		Dir:        dir,
		BasePort:   f.basePort,
		Partitions: f.partitions,
		Replicas:   f.replicas,
		OnExit:     reportUnexpectedExit,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
		return 1
	}
	fmt.Printf("starting %d nodes…\n", len(c.Nodes()))
	if err := waitDevReady(ctx, c); err != nil {
		if ctx.Err() != nil { // interrupted during startup: a normal stop
			return stopDev(c, dir, f)
		}
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
		stopDev(c, dir, f)
		return 1
	}
	unpublish, err := publishCtl(dir, c, sec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: recording ctl's address: %v\n", err)
	}
	defer unpublish()
	stopOrders, err := serveDevOrders(ctx, dir, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: no socket for kintsu dev restart: %v\n", err)
	}
	defer stopOrders()
	printCluster(os.Stdout, c, dir, sec)
	<-ctx.Done()
	return stopDev(c, dir, f)
}

func parseDevFlags(args []string) (devFlags, error) {
	var f devFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.IntVar(&f.nodes, "nodes", launcher.DefaultNodes, "number of nodes")
	fs.StringVar(&f.dir, "dir", "", "root directory for the nodes' data and logs; reused if it exists (default: a new temporary directory)")
	fs.IntVar(&f.basePort, "base-port", launcher.DefaultBasePort, "node i listens on RESP base+i, HTTP 1000+base+i, peer 10000+base+i")
	fs.IntVar(&f.partitions, "partitions", 0, "number of partitions (0 = server default)")
	fs.IntVar(&f.replicas, "replicas", 0, "replicas per partition (0 = server default)")
	fs.BoolVar(&f.secure, "secure", false, "TLS on every port: make a CA, node and client certificates and a password in the dev dir (kept and reused), and print how to connect")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kintsu dev [flags]\n\nRuns a local cluster of kintsu servers on 127.0.0.1 until Ctrl-C.\nStarted again on its --dir, it takes the flags it recorded there (dev.toml)\nfor those not given.\n\n")
		fs.PrintDefaults()
	}
	// The flags a cluster was made with are part of its identity: read
	// back those recorded in its directory, under the command line's.
	recorded := ""
	if d := config.ArgValue(args, "dir"); d != "" {
		recorded = filepath.Join(d, devFlagsFile)
	}
	fs.String("config", "", "a file of these flags (default: DIR/"+devFlagsFile+", which kintsu dev writes)")
	if _, err := config.LoadWith(fs, args, nil, config.Options{FileEnv: "KINTSU_DEV_CONFIG", DefaultFile: recorded}); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(fs.Output(), "kintsu dev: %v\n", err)
		}
		return f, err
	}
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case f.nodes < 1:
		problem = "--nodes must be at least 1"
	case f.basePort < 1 || 10000+f.basePort+f.nodes > 65535:
		problem = fmt.Sprintf("--base-port %d: peer ports (10000+base+id) must stay below 65536", f.basePort)
	case f.partitions < 0 || f.replicas < 0:
		problem = "--partitions and --replicas must not be negative"
	}
	if problem != "" {
		fmt.Fprintf(fs.Output(), "kintsu dev: %s\n", problem)
		fs.Usage()
		return f, errors.New(problem)
	}
	return f, nil
}

// devDir returns the absolute root directory, creating it if needed, and
// whether the cluster in it is new.
func devDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "kintsu-dev-")
		return d, true, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil && !os.IsNotExist(err) {
		return "", false, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, err
	}
	return abs, len(entries) == 0, nil
}

func waitDevReady(ctx context.Context, c *launcher.Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, devReadyTimeout)
	defer cancel()
	begin := time.Now()
	if err := c.WaitReady(ctx); err != nil {
		return err
	}
	fmt.Printf("ready in %.1fs\n\n", time.Since(begin).Seconds())
	return nil
}

// reportUnexpectedExit runs when a node process ends; the launcher's own
// stops are expected, anything else is worth telling the developer. The
// remaining nodes keep running: a dead node is what a cluster tolerates.
func reportUnexpectedExit(ev launcher.ExitEvent) {
	if ev.Requested {
		return
	}
	status := "exit status 0"
	if ev.Err != nil {
		status = ev.Err.Error()
	}
	fmt.Fprintf(os.Stderr, "kintsu dev: node %d exited unexpectedly (%s); see %s\n", ev.ID, status, ev.LogPath)
}

func printCluster(w io.Writer, c *launcher.Cluster, dir string, sec devSecurity) {
	nodes := c.Nodes()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRESP\tHTTP ADMIN\tDATA")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", n.ID, n.RESPAddr, n.HTTPAddr, n.DataDir)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nLogs: %s\n", filepath.Join(dir, "node-*", filepath.Base(nodes[0].LogPath)))
	fmt.Fprintf(w, "Restart or stop a node (it stays in this cluster): kintsu dev restart N | kintsu dev stop N\n")
	printTry(w, c, sec)
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

// stopDev stops every node gracefully and says how to get the cluster
// back.
func stopDev(c *launcher.Cluster, dir string, f devFlags) int {
	fmt.Println("\nstopping…")
	if err := c.StopAll(devStopTimeout); err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: %v\n", err)
	}
	again := "kintsu dev --dir " + dir // its flags are recorded there
	fmt.Printf("data kept in %s\nrun `%s` to bring this cluster back.\n", dir, again)
	return 0
}
