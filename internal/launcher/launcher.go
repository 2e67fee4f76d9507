package launcher

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors returned (wrapped, with the node id) by Cluster methods.
var (
	ErrUnknownNode = errors.New("no such node")
	ErrNotRunning  = errors.New("node is not running")
	ErrRunning     = errors.New("node is already running")
	ErrClosed      = errors.New("cluster was stopped with StopAll")
	// ErrForcedKill: the node ignored SIGTERM for the whole timeout and was
	// killed with SIGKILL.
	ErrForcedKill = errors.New("did not exit after SIGTERM; killed with SIGKILL")
	// ErrExitStatus: after SIGTERM the node exited, but not with status 0
	// (a failed shutdown, a SIGTERM that came before the node installed its
	// handler, or a concurrent Kill).
	ErrExitStatus = errors.New("exited uncleanly after SIGTERM")
)

// Cluster is a set of local node processes. All methods are safe for
// concurrent use.
type Cluster struct {
	// Set by Start and never modified afterwards: read without the lock.
	opts   Options
	env    []string
	client *http.Client
	scheme string // of the probes: http, or https for a secure cluster

	// mu guards the process table below, and the guarded fields of every
	// proc. It is held only to read or update them — never across a
	// process start, a signal, file or network I/O, or a wait.
	mu       sync.Mutex
	ids      []uint64             // ascending; AddNode appends
	specs    map[uint64]*nodeSpec // a spec never changes once added
	procs    map[uint64]*proc     // latest process of each node; absent until started
	starting map[uint64]bool      // nodes whose process is being spawned right now
	live     map[*proc]struct{}   // processes whose reaper goroutine has not finished
	closed   bool                 // StopAll has begun: no new processes
}

// proc is one process of a node. A restart creates a new proc.
type proc struct {
	spec *nodeSpec
	cmd  *exec.Cmd
	pid  int
	// reaped is closed once the process has exited and been waited for;
	// done is closed after that, when OnExit has returned and the reaper
	// goroutine is about to end.
	reaped chan struct{}
	done   chan struct{}

	// Guarded by Cluster.mu.
	exited    bool
	exitErr   error
	requested bool // the launcher asked it to exit
}

// Start validates opts, creates the directories, checks every port (not
// with Options.Hosts) and starts every node. It returns once all processes
// are started, not once they are ready (see WaitReady). If a node fails to
// start, the nodes already started are killed and the error is returned.
func Start(opts Options) (*Cluster, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	probes, scheme, err := probeTransport(opts.CertsDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:   opts,
		scheme: scheme,
		specs:  map[uint64]*nodeSpec{},
		env:    append(os.Environ(), opts.Env...),
		client: &http.Client{
			Timeout: probeTimeout,
			// No keep-alives: probes are rare, and no idle connection (or
			// its goroutines) should outlive StopAll.
			Transport: probes,
		},
		procs:    map[uint64]*proc{},
		starting: map[uint64]bool{},
		live:     map[*proc]struct{}{},
	}
	for _, s := range opts.specs() {
		c.ids = append(c.ids, s.info.ID)
		c.specs[s.info.ID] = s
	}
	// Check everything before starting anything, so a busy port never
	// leaves half a cluster behind.
	for _, id := range c.ids {
		if err := os.MkdirAll(c.specs[id].info.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("launcher: node %d: %w", id, err)
		}
		if err := checkPorts(c.specs[id]); err != nil {
			return nil, err
		}
	}
	for _, id := range c.ids {
		if err := c.start(id, false); err != nil {
			c.abort()
			return nil, err
		}
	}
	return c, nil
}

// abort kills every node started by a failed Start and waits for their
// reapers, so a failed Start leaves neither processes nor goroutines.
func (c *Cluster) abort() {
	c.mu.Lock()
	c.closed = true
	var all []*proc
	for p := range c.live {
		p.requested = true
		all = append(all, p)
	}
	c.mu.Unlock()
	for _, p := range all {
		_ = sendSignal(p, syscall.SIGKILL)
		waitClosed(p.done, killWait)
	}
}

// Nodes returns every node, by ascending id.
func (c *Cluster) Nodes() []NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NodeInfo, len(c.ids))
	for i, id := range c.ids {
		out[i] = c.specs[id].info
	}
	return out
}

// spec returns node id's spec, nil if there is no such node.
func (c *Cluster) spec(id uint64) *nodeSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.specs[id]
}

// Node returns node id's addresses and paths; the zero NodeInfo if there is
// no such node.
func (c *Cluster) Node(id uint64) NodeInfo {
	if s := c.spec(id); s != nil {
		return s.info
	}
	return NodeInfo{}
}

// Args returns node id's exact command line, binary first (nil if there is
// no such node). With Options.Wrap the process runs the wrapper's prefix
// followed by this.
func (c *Cluster) Args(id uint64) []string {
	if s := c.spec(id); s != nil {
		return slices.Clone(s.args)
	}
	return nil
}

// Running reports whether node id has a process that has not exited yet
// (a paused node is running).
func (c *Cluster) Running(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[id]
	return p != nil && !p.exited
}

// PID is node id's process id while it runs, else 0 (for accounting such
// as the CPU time `kintsu bench` reads from /proc).
func (c *Cluster) PID(id uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[id]; p != nil && !p.exited {
		return p.pid
	}
	return 0
}

// AddNode starts a new node, with the next id and addresses laid out as
// Start's, that joins the running cluster through node via's peer address
// (kintsu server --join). It returns once the process is started; see
// WaitNodeReady. With Options.Hosts, the new node takes the next host, and
// there must be one left.
func (c *Cluster) AddNode(via uint64) (NodeInfo, error) {
	seed := c.spec(via)
	if seed == nil {
		return NodeInfo{}, fmt.Errorf("launcher: node %d: %w", via, ErrUnknownNode)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return NodeInfo{}, ErrClosed
	}
	id := c.ids[len(c.ids)-1] + 1
	if len(c.opts.Hosts) > 0 && int(id) > len(c.opts.Hosts) {
		c.mu.Unlock()
		return NodeInfo{}, fmt.Errorf("launcher: node %d: Options.Hosts has no host left for it", id)
	}
	s := c.opts.nodeSpec(id)
	s.args = c.opts.joinCommandLine(s.info, seed.info.PeerAddr)
	c.ids = append(c.ids, id)
	c.specs[id] = s
	c.mu.Unlock()
	err := os.MkdirAll(s.info.DataDir, 0o755)
	if err == nil {
		err = checkPorts(s)
	}
	if err == nil {
		err = c.start(id, false)
	}
	if err != nil {
		c.mu.Lock()
		c.ids = slices.DeleteFunc(c.ids, func(x uint64) bool { return x == id })
		delete(c.specs, id)
		c.mu.Unlock()
		return NodeInfo{}, err
	}
	return s.info, nil
}

// Restart starts a stopped or killed node again, with the same command line
// and data directory.
func (c *Cluster) Restart(id uint64) error {
	return c.start(id, true)
}

// Kill sends SIGKILL to node id and returns once the process is reaped.
func (c *Cluster) Kill(id uint64) error {
	p, err := c.running(id, func(p *proc) { p.requested = true })
	if err != nil {
		return err
	}
	// ErrNotRunning here means it exited on its own meanwhile: still reap.
	if err := sendSignal(p, syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if !waitClosed(p.reaped, killWait) {
		return fmt.Errorf("launcher: node %d (pid %d) not reaped %v after SIGKILL", p.spec.info.ID, p.pid, killWait)
	}
	return nil
}

// Stop stops node id gracefully: SIGTERM, then SIGKILL if it has not exited
// within timeout (<= 0 means DefaultStopTimeout). It returns an error
// wrapping ErrForcedKill if SIGKILL was needed, and an error if the process
// exited with a non-zero status.
func (c *Cluster) Stop(id uint64, timeout time.Duration) error {
	p, err := c.running(id, func(p *proc) { p.requested = true })
	if err != nil {
		return err
	}
	return c.stopProc(p, timeout)
}

// StopAll stops every running node in parallel as Stop does (paused nodes
// are resumed first so they can act on SIGTERM), then waits until every
// reaper goroutine has finished. Afterwards the Cluster starts no process
// again (Restart returns ErrClosed); start a new Cluster on the same Dir to
// bring the nodes back with their data.
func (c *Cluster) StopAll(timeout time.Duration) error {
	c.mu.Lock()
	c.closed = true
	var running, all []*proc
	for p := range c.live {
		all = append(all, p)
		if !p.exited {
			p.requested = true
			running = append(running, p)
		}
	}
	c.mu.Unlock()

	errs := make([]error, len(running))
	var wg sync.WaitGroup
	for i, p := range running {
		wg.Go(func() { errs[i] = c.stopProc(p, timeout) })
	}
	wg.Wait()
	for _, p := range all {
		if !waitClosed(p.done, killWait) {
			errs = append(errs, fmt.Errorf("launcher: node %d (pid %d): reaper did not finish within %v (OnExit blocked?)", p.spec.info.ID, p.pid, killWait))
		}
	}
	c.client.CloseIdleConnections()
	return errors.Join(errs...)
}

// Pause stops node id with SIGSTOP, as a hung machine would look: its
// sockets stay open but nothing answers. It returns once the kernel reports
// the process stopped (where it can tell).
func (c *Cluster) Pause(id uint64) error {
	p, err := c.running(id, nil)
	if err != nil {
		return err
	}
	if err := sendSignal(p, syscall.SIGSTOP); err != nil {
		return err
	}
	return waitStopState(p, true)
}

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(id uint64) error {
	p, err := c.running(id, nil)
	if err != nil {
		return err
	}
	if err := sendSignal(p, syscall.SIGCONT); err != nil {
		return err
	}
	return waitStopState(p, false)
}

// running returns node id's live process, applying update to its guarded
// fields under the lock.
func (c *Cluster) running(id uint64, update func(*proc)) (*proc, error) {
	if c.spec(id) == nil {
		return nil, fmt.Errorf("launcher: node %d: %w", id, ErrUnknownNode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[id]
	if p == nil || p.exited {
		return nil, fmt.Errorf("launcher: node %d: %w", id, ErrNotRunning)
	}
	if update != nil {
		update(p)
	}
	return p, nil
}

// stopProc is SIGCONT+SIGTERM, a bounded wait, then SIGKILL.
func (c *Cluster) stopProc(p *proc, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	id := p.spec.info.ID
	// Continue first, whether or not Pause was called: a stopped process
	// would not act on SIGTERM. A process that exited meanwhile makes the
	// signals fail with ErrNotRunning; the wait below then reports how it
	// exited.
	if err := sendSignal(p, syscall.SIGCONT); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if err := sendSignal(p, syscall.SIGTERM); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if waitClosed(p.reaped, timeout) {
		if err := c.exitErr(p); err != nil {
			return fmt.Errorf("launcher: node %d %w (%v); see %s", id, ErrExitStatus, err, p.spec.info.LogPath)
		}
		return nil
	}
	if err := sendSignal(p, syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	if !waitClosed(p.reaped, killWait) {
		return fmt.Errorf("launcher: node %d (pid %d) not reaped %v after SIGKILL", id, p.pid, killWait)
	}
	return fmt.Errorf("launcher: node %d %w (timeout %v); see %s", id, ErrForcedKill, timeout, p.spec.info.LogPath)
}

func (c *Cluster) exitErr(p *proc) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return p.exitErr
}

// start spawns node id's process. restart says whether this is Restart,
// which checks the node's ports again (Start checked them all up front).
func (c *Cluster) start(id uint64, restart bool) error {
	s := c.spec(id)
	if s == nil {
		return fmt.Errorf("launcher: node %d: %w", id, ErrUnknownNode)
	}
	if err := c.reserve(id); err != nil {
		return err
	}
	var p *proc
	var err error
	if restart {
		err = checkPorts(s)
	}
	if err == nil {
		p, err = c.spawn(s)
	}

	c.mu.Lock()
	delete(c.starting, id)
	closed := c.closed
	if err == nil {
		c.procs[id] = p
		c.live[p] = struct{}{}
		p.requested = closed
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	go c.reap(p)

	// StopAll began while we were spawning and could not see this process:
	// take it down ourselves so nothing outlives StopAll.
	if closed {
		_ = sendSignal(p, syscall.SIGKILL)
		waitClosed(p.done, killWait)
		return fmt.Errorf("launcher: node %d: %w", id, ErrClosed)
	}
	return nil
}

// reserve claims the right to spawn node id, so two concurrent Restarts
// cannot both start a process for it.
func (c *Cluster) reserve(id uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p := c.procs[id]; {
	case c.closed:
		return fmt.Errorf("launcher: node %d: %w", id, ErrClosed)
	case c.starting[id]:
		return fmt.Errorf("launcher: node %d: %w (being started)", id, ErrRunning)
	case p != nil && !p.exited:
		return fmt.Errorf("launcher: node %d: %w (pid %d)", id, ErrRunning, p.pid)
	}
	c.starting[id] = true
	return nil
}

// spawn starts one process with its output appended to the node's log.
func (c *Cluster) spawn(s *nodeSpec) (*proc, error) {
	id := s.info.ID
	logf, err := os.OpenFile(s.info.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("launcher: node %d: %w", id, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed
	// once it has started.
	defer logf.Close()
	argv := append(slices.Clip(s.wrap), s.args...)
	fmt.Fprintf(logf, "=== %s launcher: starting node %d: %s\n", stamp(), id, strings.Join(argv, " "))

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = c.env
	// Own process group: a terminal Ctrl-C reaches only the launcher,
	// which then stops the nodes gracefully.
	if err := startProcess(cmd); err != nil {
		fmt.Fprintf(logf, "=== %s launcher: node %d failed to start: %v\n", stamp(), id, err)
		return nil, fmt.Errorf("launcher: starting node %d: %w", id, err)
	}
	return &proc{
		spec:   s,
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		reaped: make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

// reap is the one goroutine that waits for p. Output goes straight to the
// log file descriptor, so Wait starts no copying goroutines of its own.
func (c *Cluster) reap(p *proc) {
	err := p.cmd.Wait()
	appendLog(p.spec.info.LogPath, fmt.Sprintf("=== %s launcher: node %d (pid %d) exited: %s\n", stamp(), p.spec.info.ID, p.pid, exitText(err)))

	c.mu.Lock()
	p.exited, p.exitErr = true, err
	requested := p.requested
	c.mu.Unlock()
	close(p.reaped)

	if c.opts.OnExit != nil {
		c.opts.OnExit(ExitEvent{ID: p.spec.info.ID, PID: p.pid, Err: err, LogPath: p.spec.info.LogPath, Requested: requested})
	}
	c.mu.Lock()
	delete(c.live, p)
	c.mu.Unlock()
	close(p.done)
}

// sendSignal delivers sig to p. A process that has already exited reports
// ErrNotRunning; os.Process.Signal never signals a reused pid.
func sendSignal(p *proc, sig syscall.Signal) error {
	err := p.cmd.Process.Signal(sig)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrProcessDone):
		return fmt.Errorf("launcher: node %d: %w", p.spec.info.ID, ErrNotRunning)
	default:
		return fmt.Errorf("launcher: node %d: sending %v: %w", p.spec.info.ID, sig, err)
	}
}

// waitClosed reports whether ch was closed within d.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return // the log is a debugging aid; never fail an operation over it
	}
	defer f.Close()
	f.WriteString(line)
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func stamp() string { return time.Now().Format("2006-01-02T15:04:05.000Z07:00") }
