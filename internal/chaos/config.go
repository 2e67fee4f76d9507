package chaos

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Known nemeses, workloads and planted bugs.
var (
	AllNemeses   = []string{"kill", "kill-leader", "crash-all", "pause", "pause-leader", "partition", "disk", "clock", "coordinator", "participant", "lose", "rolling-restart", "replace", "misconfig", "disk-full", "stranger", "split", "merge"}
	AllWorkloads = []string{"register", "set", "bank", "list"}
	// membershipNemeses change the cluster's membership, and split and
	// merge its partitions; not in the default set (see EnsureDefaults).
	membershipNemeses = []string{"lose", "rolling-restart", "replace", "split", "merge"}
	AllBugs           = []string{"stale-read", "ack-before-fsync", "lost-update", "skip-intent-check", "lease-too-long", "lost-element"}
)

// Config configures a run. Zero fields take defaults (EnsureDefaults).
type Config struct {
	Binary     string        // kintsu binary to run nodes with; "" = this executable
	Dir        string        // where nodes keep data and logs; "" = a temp dir
	Out        string        // report directory; "" = Dir/report
	Nodes      int           // default 5
	Partitions int           // default 16
	Replicas   int           // default 3
	Clients    int           // register clients, and bank transfer clients; default 8
	Duration   time.Duration // fault phase, default 60s
	Seed       int64         // 0 = time-based (printed)
	Nemeses    []string      // default all that the workloads support
	Workloads  []string      // default all
	PlantBug   string        // "" or one of AllBugs
	ReadLeases bool          // nodes serve reads on read leases (--read-leases)
	BasePort   int           // default 7100
	// Network: "hooks" (default) runs every node on loopback and cuts links
	// in the nodes' transports; "netns" runs each node as its own host in a
	// Linux network namespace and cuts links by dropping packets (root).
	Network string
	// Secure runs the cluster with certificates (TLS on every port, peers
	// authenticated); the stranger nemesis then also holds a certificate
	// of the cluster's CA for a node that is not a member.
	Secure   bool
	Progress io.Writer // progress lines; nil = none
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.Nodes == 0 {
		c.Nodes = 5
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.Duration == 0 {
		c.Duration = 60 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if len(c.Workloads) == 0 {
		c.Workloads = AllWorkloads
	}
	if len(c.Nemeses) == 0 {
		// Every nemesis that the workloads give something to hit: the
		// transaction failpoints need the bank's transactions. The
		// membership nemeses are opt-in for now: with them in the mix, a
		// 3-minute run's register history outgrew the checker's time
		// budget (check-timeout: the run then proves nothing).
		for _, n := range AllNemeses {
			if slices.Contains(membershipNemeses, n) {
				continue
			}
			if !slices.Contains(c.Workloads, "bank") && (n == "coordinator" || n == "participant") {
				continue
			}
			c.Nemeses = append(c.Nemeses, n)
		}
	}
	if c.Network == "" {
		c.Network = "hooks"
	}
	if c.BasePort == 0 {
		c.BasePort = 7100
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Nodes < 1 {
		errs = append(errs, fmt.Errorf("--nodes %d: need at least 1", c.Nodes))
	}
	if c.Replicas > c.Nodes {
		errs = append(errs, fmt.Errorf("--replicas %d exceeds --nodes %d", c.Replicas, c.Nodes))
	}
	if c.Duration < time.Second || c.Duration > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--duration %v: between 1s and 24h", c.Duration))
	}
	if c.Clients < 1 || c.Clients > 1000 {
		errs = append(errs, fmt.Errorf("--clients %d: between 1 and 1000", c.Clients))
	}
	for _, n := range c.Nemeses {
		if !slices.Contains(AllNemeses, n) {
			errs = append(errs, fmt.Errorf("unknown nemesis %q (known: %v)", n, AllNemeses))
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			errs = append(errs, fmt.Errorf("unknown workload %q (known: %v)", w, AllWorkloads))
		}
	}
	if (slices.Contains(c.Nemeses, "coordinator") || slices.Contains(c.Nemeses, "participant")) && !slices.Contains(c.Workloads, "bank") {
		errs = append(errs, errors.New("the coordinator and participant nemeses crash nodes inside cross-partition transactions: they need the bank workload"))
	}
	for _, nem := range []string{"lose", "replace"} {
		if slices.Contains(c.Nemeses, nem) && c.Nodes <= c.replicas() {
			errs = append(errs, fmt.Errorf("the %s nemesis needs more nodes (--nodes %d) than replicas (%d): a node's replicas are moved to the others", nem, c.Nodes, c.replicas()))
		}
	}
	if slices.Contains(c.Nemeses, "replace") && c.Network == "netns" {
		errs = append(errs, errors.New("the replace nemesis adds nodes, which --network netns cannot host yet"))
	}
	if c.PlantBug != "" && !slices.Contains(AllBugs, c.PlantBug) {
		errs = append(errs, fmt.Errorf("unknown planted bug %q (known: %v)", c.PlantBug, AllBugs))
	}
	if c.Network != "hooks" && c.Network != "netns" {
		errs = append(errs, fmt.Errorf("--network %q: hooks or netns", c.Network))
	}
	if c.BasePort < 1024 || c.BasePort+10000+c.Nodes >= 32768 {
		errs = append(errs, fmt.Errorf("--base-port %d: every port (base+i, base+1000+i, base+10000+i) must be in 1024..32767", c.BasePort))
	}
	return errors.Join(errs...)
}

// lazyFsync is how often a node with the planted ack-before-fsync bug
// writes its log through: every write acknowledged in the last interval
// before a crash is lost.
const lazyFsync = 2 * time.Second

// loseDeadTimeout is the servers' --dead-timeout under the lose nemesis.
const loseDeadTimeout = 3 * time.Second

// replicas is the replication factor the servers will use.
func (c *Config) replicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	return 3
}

// faultHooks says whether some nemesis needs the nodes' fault hooks.
func (c *Config) faultHooks() bool {
	for _, n := range []string{"partition", "disk", "disk-full", "clock", "coordinator", "participant"} {
		if slices.Contains(c.Nemeses, n) {
			return true
		}
	}
	return false
}

// serverArgs are the extra server flags the nemeses and a planted bug need.
func (c *Config) serverArgs() []string {
	var args []string
	if c.faultHooks() {
		args = append(args, "--fault-injection")
	}
	if slices.Contains(c.Nemeses, "lose") || slices.Contains(c.Nemeses, "replace") {
		args = append(args, "--dead-timeout", loseDeadTimeout.String(), "--heartbeat-interval", "200ms")
	}
	if c.ReadLeases {
		args = append(args, "--read-leases")
	}
	switch c.PlantBug {
	case "stale-read":
		args = append(args, "--unsafe-stale-reads")
	case "lease-too-long":
		args = append(args, "--unsafe-long-leases")
	case "ack-before-fsync":
		args = append(args, "--unsafe-lazy-fsync", lazyFsync.String())
	case "lost-update":
		args = append(args, "--unsafe-cas-on-propose")
	case "skip-intent-check":
		args = append(args, "--unsafe-skip-intent-check")
	case "lost-element":
		args = append(args, "--unsafe-lost-element")
	}
	return args
}
