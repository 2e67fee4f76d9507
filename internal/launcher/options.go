package launcher

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Start to zero Options fields.
const (
	DefaultNodes    = 3
	DefaultBasePort = 7000
)

// Options describes a local cluster.
type Options struct {
	// Binary is the kintsu executable; "" means os.Executable().
	Binary string
	// Nodes is the number of nodes (ids 1..Nodes). 0 means DefaultNodes.
	Nodes int
	// Dir is the root directory (required). Node i keeps its data in
	// Dir/node-i/data and its log (stdout and stderr, appended across
	// restarts) in Dir/node-i/kintsu.log.
	Dir string
	// BasePort places the listeners of node i: RESP on 127.0.0.1:BasePort+i,
	// peer on 10000+BasePort+i, HTTP on 1000+BasePort+i. 0 means
	// DefaultBasePort. Keep all of them below the kernel's ephemeral range
	// (Linux: 32768 and up), where any outgoing connection may take a port.
	BasePort int
	// Hosts, when set, gives node i its own address Hosts[i-1] instead of
	// 127.0.0.1 for all three listeners; ports are still BasePort-based.
	// Nodes 0 then means len(Hosts); any other Nodes may not exceed it,
	// and the hosts past Nodes are for nodes AddNode starts later. The
	// addresses are expected to exist only where the node runs (see Wrap),
	// so Start and Restart do not check the ports first and never return
	// a PortError: a fresh host has every port free.
	Hosts []string
	// Wrap, when set, returns the argv prefix for node id's command: the
	// node runs Wrap(id) followed by Args(id), e.g. netns.Net.Wrap's
	// "ip netns exec <namespace>". Start calls it once per node. The
	// prefix must exec the command rather than fork it, so that the
	// started pid is the node's own: Kill, Stop, Pause and Resume signal
	// that pid.
	Wrap func(id uint64) []string
	// Partitions and Replicas are passed to every server; 0 omits the flag
	// so the server default applies.
	Partitions int
	Replicas   int
	// CertsDir, when set, makes the cluster secure: node i runs with
	// --certs-dir NodeCertsDir(CertsDir, i) and readiness is probed over
	// HTTPS trusting CertsDir/ca.crt (see CreateCerts). Empty runs every
	// node with --insecure.
	CertsDir string
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
	// NodeArgs, when set, gives flags for one node's command line, after
	// ExtraArgs (e.g. an address it advertises).
	NodeArgs func(n NodeInfo) []string
	// Env holds extra "KEY=value" entries added to the inherited environment.
	Env []string
	// OnExit, if set, is called once for every node process after it has
	// been reaped, on the goroutine that reaped it. It may call Cluster
	// methods such as Restart or Kill, but not StopAll, and must return
	// promptly: StopAll waits for it.
	OnExit func(ExitEvent)
}

// NodeInfo is where a node listens and keeps its files.
type NodeInfo struct {
	ID       uint64
	RESPAddr string
	PeerAddr string
	HTTPAddr string
	DataDir  string
	LogPath  string
}

// ExitEvent reports that a node process exited and was reaped.
type ExitEvent struct {
	ID      uint64
	PID     int
	Err     error // nil for exit status 0; otherwise the *exec.ExitError or wait error
	LogPath string
	// Requested is true when the launcher asked the process to exit (Kill,
	// Stop, StopAll), false when it died on its own.
	Requested bool
}

// PortError reports a port that a node needs but cannot listen on.
type PortError struct {
	Node uint64
	Role string // "RESP", "peer" or "HTTP"
	Addr string
	Err  error
}

func (e *PortError) Error() string {
	_, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("launcher: node %d: %s port %s (%s) is not free: %v", e.Node, e.Role, port, e.Addr, e.Err)
}

func (e *PortError) Unwrap() error { return e.Err }

// nodeSpec is everything fixed about a node; it never changes after Start.
type nodeSpec struct {
	info  NodeInfo
	args  []string // full command line, binary first
	wrap  []string // Options.Wrap's prefix for the node; nil without one
	ports []port   // checked before every start; empty with Options.Hosts
}

type port struct{ role, addr string }

// normalize fills defaults and reports every invalid field at once.
func (o Options) normalize() (Options, error) {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	} else if abs, err := filepath.Abs(o.Dir); err != nil {
		errs = append(errs, fmt.Errorf("Dir %q: %w", o.Dir, err))
	} else {
		o.Dir = abs
	}
	switch {
	case o.Nodes == 0 && len(o.Hosts) > 0:
		o.Nodes = len(o.Hosts)
	case o.Nodes == 0:
		o.Nodes = DefaultNodes
	case len(o.Hosts) > 0 && o.Nodes > len(o.Hosts):
		errs = append(errs, fmt.Errorf("Nodes %d: Hosts has %d addresses; want one per node", o.Nodes, len(o.Hosts)))
	}
	for i, h := range o.Hosts {
		if h == "" {
			errs = append(errs, fmt.Errorf("Hosts[%d] (node %d) is empty", i, i+1))
		}
	}
	if o.BasePort == 0 {
		o.BasePort = DefaultBasePort
	}
	switch {
	case o.Nodes < 0:
		errs = append(errs, fmt.Errorf("Nodes %d: must be positive", o.Nodes))
	case o.Nodes >= 1000:
		// Node 1000+i's RESP port would collide with node i's HTTP port.
		errs = append(errs, fmt.Errorf("Nodes %d: at most 999", o.Nodes))
	}
	if o.BasePort < 0 || 10000+o.BasePort+o.Nodes > 65535 {
		errs = append(errs, fmt.Errorf("BasePort %d: with %d nodes the peer ports (10000+BasePort+id) must stay within 1..65535", o.BasePort, o.Nodes))
	}
	if o.Partitions < 0 {
		errs = append(errs, fmt.Errorf("Partitions %d: must not be negative", o.Partitions))
	}
	if o.Replicas < 0 {
		errs = append(errs, fmt.Errorf("Replicas %d: must not be negative", o.Replicas))
	}
	if o.CertsDir != "" {
		if abs, err := filepath.Abs(o.CertsDir); err == nil {
			o.CertsDir = abs
		}
		if err := o.checkCerts(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("launcher: invalid options: %w", err)
	}

	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("launcher: finding own executable: %w", err)
		}
		o.Binary = exe
	}
	// Resolve now so a wrong binary fails before any node starts, and every
	// restart runs the very same file.
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return o, fmt.Errorf("launcher: server binary: %w", err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	o.Binary = bin
	return o, nil
}

// specs derives every node's addresses, paths and command line.
func (o Options) specs() []*nodeSpec {
	specs := make([]*nodeSpec, o.Nodes)
	initial := make([]string, o.Nodes)
	for i := range specs {
		specs[i] = o.nodeSpec(uint64(i + 1))
		initial[i] = fmt.Sprintf("%d=%s", specs[i].info.ID, specs[i].info.PeerAddr)
	}
	cluster := strings.Join(initial, ",")
	for _, s := range specs {
		s.args = o.commandLine(s.info, cluster)
	}
	return specs
}

// nodeSpec lays out node id's addresses and paths; args are left to the
// caller.
func (o Options) nodeSpec(id uint64) *nodeSpec {
	host := "127.0.0.1"
	if len(o.Hosts) > 0 {
		host = o.Hosts[id-1]
	}
	addr := func(p int) string { return net.JoinHostPort(host, strconv.Itoa(p)) }
	nodeDir := filepath.Join(o.Dir, fmt.Sprintf("node-%d", id))
	info := NodeInfo{
		ID:       id,
		RESPAddr: addr(o.BasePort + int(id)),
		PeerAddr: addr(10000 + o.BasePort + int(id)),
		HTTPAddr: addr(1000 + o.BasePort + int(id)),
		DataDir:  filepath.Join(nodeDir, "data"),
		LogPath:  filepath.Join(nodeDir, "kintsu.log"),
	}
	s := &nodeSpec{info: info}
	// A node's own host (Hosts) is not reachable for a listen from here,
	// and starts with every port free: nothing to check.
	if len(o.Hosts) == 0 {
		s.ports = []port{{"RESP", info.RESPAddr}, {"peer", info.PeerAddr}, {"HTTP", info.HTTPAddr}}
	}
	if o.Wrap != nil {
		s.wrap = slices.Clone(o.Wrap(id))
	}
	return s
}

// joinCommandLine is a joining node's command line: --join instead of
// --initial-cluster, and no placement flags (it learns them).
func (o Options) joinCommandLine(n NodeInfo, seedPeer string) []string {
	return append(append(o.nodeArgs(n, "--join", seedPeer), o.ExtraArgs...), o.ownArgs(n)...)
}

func (o Options) ownArgs(n NodeInfo) []string {
	if o.NodeArgs == nil {
		return nil
	}
	return o.NodeArgs(n)
}

// nodeArgs is the start of every node's command line: the binary, the
// node's identity and addresses, and how it finds the cluster.
func (o Options) nodeArgs(n NodeInfo, how, where string) []string {
	return append([]string{
		o.Binary, "server",
		"--id", strconv.FormatUint(n.ID, 10),
		"--data-dir", n.DataDir,
		"--resp-addr", n.RESPAddr,
		"--peer-addr", n.PeerAddr,
		"--http-addr", n.HTTPAddr,
		how, where,
	}, o.securityArgs(n.ID)...)
}

func (o Options) commandLine(n NodeInfo, initialCluster string) []string {
	args := o.nodeArgs(n, "--initial-cluster", initialCluster)
	if o.Partitions > 0 {
		args = append(args, "--partitions", strconv.Itoa(o.Partitions))
	}
	if o.Replicas > 0 {
		args = append(args, "--replicas", strconv.Itoa(o.Replicas))
	}
	return append(append(args, o.ExtraArgs...), o.ownArgs(n)...)
}

// checkPorts fails on the first port of s that cannot be listened on. The
// check is advisory (another process may take the port right after), but it
// turns the common case — a leftover cluster or another service — into a
// clear message instead of a node dying with a bind error in its log.
func checkPorts(s *nodeSpec) error {
	for _, p := range s.ports {
		l, err := net.Listen("tcp", p.addr)
		if err != nil {
			return &PortError{Node: s.info.ID, Role: p.role, Addr: p.addr, Err: err}
		}
		l.Close()
	}
	return nil
}

// Timeouts of the launcher's own waits.
const (
	// killWait bounds the wait for a process to be reaped after SIGKILL.
	killWait = 10 * time.Second
	// signalWait bounds the wait for SIGSTOP/SIGCONT to take effect.
	signalWait = 2 * time.Second
	// defaultReadyWait applies when WaitReady's context has no deadline.
	defaultReadyWait = 2 * time.Minute
	// DefaultStopTimeout applies when Stop or StopAll get a timeout <= 0.
	DefaultStopTimeout = 10 * time.Second

	pollInterval = 100 * time.Millisecond
	probeTimeout = time.Second
)
