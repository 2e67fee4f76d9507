package launcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports: tests run in parallel with each other and with other packages, so
// each cluster gets a random base port, never one whose ports overlap
// another cluster of this test binary, and Start is retried on a busy port.
// Bases lie in 12000..22700 so that every port (up to 10000+base+i) stays
// below Linux's ephemeral range (32768+): an outgoing connection anywhere on
// the machine may take any ephemeral port between our check and our bind.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

func pickBase(nodes int) int {
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		base := 12000 + rand.IntN(10700-nodes)
		var ports []int
		for i := 1; i <= nodes; i++ {
			ports = append(ports, base+i, 1000+base+i, 10000+base+i)
		}
		if !slices.ContainsFunc(ports, func(p int) bool { return portsUsed[p] }) {
			for _, p := range ports {
				portsUsed[p] = true
			}
			return base
		}
	}
}

// exits records ExitEvents without ever blocking the reaper.
type exits struct {
	ch      chan ExitEvent
	pending []ExitEvent // received but not yet asked for; test goroutine only
}

func (e *exits) record(ev ExitEvent) {
	select {
	case e.ch <- ev:
	default:
	}
}

// next returns the next event for node id, failing after d.
func (e *exits) next(t *testing.T, id uint64, d time.Duration) ExitEvent {
	t.Helper()
	for i, ev := range e.pending {
		if ev.ID == id {
			e.pending = slices.Delete(e.pending, i, i+1)
			return ev
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-e.ch:
			if ev.ID == id {
				return ev
			}
			e.pending = append(e.pending, ev)
		case <-timer.C:
			t.Fatalf("no exit event for node %d within %v", id, d)
		}
	}
}

// startFake starts a cluster of fake nodes (this test binary re-executed).
func startFake(t *testing.T, opts Options) (*Cluster, *exits) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ev := &exits{ch: make(chan ExitEvent, 100)}
	opts.Binary = exe
	opts.Env = append([]string{envFake + "=1"}, opts.Env...)
	opts.OnExit = ev.record
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	for range 20 {
		opts.BasePort = pickBase(opts.Nodes)
		c, err := Start(opts)
		var pe *PortError
		if errors.As(err, &pe) {
			t.Logf("retrying with another base port: %v", err)
			continue
		}
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(func() { c.StopAll(5 * time.Second) })
		return c, ev
	}
	t.Fatal("no free base port after 20 tries")
	return nil, nil
}

// startReady is startFake followed by WaitReady. Another test process may
// grab a port between Start's check and the fake's bind; the fake then dies
// with "address already in use", and the whole cluster is retried elsewhere.
func startReady(t *testing.T, opts Options) (*Cluster, *exits) {
	t.Helper()
	for range 5 {
		c, ev := startFake(t, opts)
		err := c.WaitReady(ctxFor(t, 30*time.Second))
		if err == nil {
			return c, ev
		}
		if !lostPortRace(err) {
			t.Fatal(err)
		}
		t.Logf("retrying elsewhere: %v", err)
		c.StopAll(5 * time.Second)
	}
	t.Fatal("ports kept being taken by other processes")
	return nil, nil
}

func lostPortRace(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartWaitReadyStopAll(t *testing.T) {
	t.Parallel()
	c, ev := startReady(t, Options{
		Partitions: 16,
		ExtraArgs:  []string{"--fake-tag=hello"},
		Env:        []string{envReadyAfter + "=300ms"}, // exercise the 503 path
	})
	nodes := c.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("Nodes() = %d nodes, want 3", len(nodes))
	}
	for i, n := range nodes {
		id := uint64(i + 1)
		if n.ID != id || c.Node(id) != n || !c.Running(id) {
			t.Errorf("node %d: info %+v, Node()=%+v, Running=%v", id, n, c.Node(id), c.Running(id))
		}
		if log := readLog(t, n.LogPath); !strings.Contains(log, "fake: boot 1 node "+strconv.Itoa(i+1)+" tag=hello") {
			t.Errorf("node %d log lacks its boot line:\n%s", id, log)
		}
	}
	if err := c.StopAll(5 * time.Second); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	for _, n := range nodes {
		if c.Running(n.ID) {
			t.Errorf("node %d still running after StopAll", n.ID)
		}
		if e := ev.next(t, n.ID, time.Second); e.Err != nil || !e.Requested {
			t.Errorf("node %d exit event %+v, want clean and requested", n.ID, e)
		}
		if log := readLog(t, n.LogPath); !strings.Contains(log, "fake: SIGTERM, shutting down") {
			t.Errorf("node %d did not stop gracefully:\n%s", n.ID, log)
		}
	}
	if err := c.Restart(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after StopAll = %v, want ErrClosed", err)
	}
}

func TestArgsAndLayout(t *testing.T) {
	t.Parallel()
	c, _ := startFake(t, Options{Nodes: 2, Replicas: 2, ExtraArgs: []string{"--fake-tag", "x"}})
	base := c.opts.BasePort
	n2 := c.Node(2)
	want := NodeInfo{
		ID:       2,
		RESPAddr: fmt.Sprintf("127.0.0.1:%d", base+2),
		PeerAddr: fmt.Sprintf("127.0.0.1:%d", 10000+base+2),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 1000+base+2),
		DataDir:  filepath.Join(c.opts.Dir, "node-2", "data"),
		LogPath:  filepath.Join(c.opts.Dir, "node-2", "kintsu.log"),
	}
	if n2 != want {
		t.Errorf("Node(2) = %+v\nwant       %+v", n2, want)
	}
	cluster := fmt.Sprintf("1=127.0.0.1:%d,2=127.0.0.1:%d", 10001+base, 10002+base)
	wantArgs := []string{c.opts.Binary, "server", "--id", "2", "--data-dir", want.DataDir,
		"--resp-addr", want.RESPAddr, "--peer-addr", want.PeerAddr, "--http-addr", want.HTTPAddr,
		"--initial-cluster", cluster, "--insecure", "--replicas", "2", "--fake-tag", "x"}
	if got := c.Args(2); !slices.Equal(got, wantArgs) {
		t.Errorf("Args(2) = %q\nwant      %q", got, wantArgs)
	}
	if c.Args(9) != nil || c.Node(9) != (NodeInfo{}) {
		t.Error("unknown node should give nil Args and zero NodeInfo")
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	c, ev := startReady(t, Options{})
	if err := c.Kill(2); err != nil {
		t.Fatal(err)
	}
	if c.Running(2) {
		t.Fatal("node 2 running after Kill returned")
	}
	if e := ev.next(t, 2, time.Second); !e.Requested || e.Err == nil {
		t.Errorf("kill event %+v: want requested, with a signal error", e)
	}
	if err := c.Kill(2); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Kill = %v, want ErrNotRunning", err)
	}
	if err := c.WaitNodeReady(ctxFor(t, time.Second), 2); !errors.Is(err, ErrNotRunning) {
		t.Errorf("WaitNodeReady on killed node = %v, want ErrNotRunning", err)
	}
	// WaitReady covers running nodes only.
	if err := c.WaitReady(ctxFor(t, 10*time.Second)); err != nil {
		t.Errorf("WaitReady with node 2 down: %v", err)
	}

	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(2); !errors.Is(err, ErrRunning) {
		t.Errorf("Restart of running node = %v, want ErrRunning", err)
	}
	if err := c.WaitReady(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Same data dir (boot counter), log appended across restarts.
	log := readLog(t, c.Node(2).LogPath)
	for _, s := range []string{"fake: boot 1 node 2", "exited: signal: killed", "fake: boot 2 node 2"} {
		if !strings.Contains(log, s) {
			t.Errorf("node 2 log lacks %q:\n%s", s, log)
		}
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	c, _ := startReady(t, Options{})
	if err := c.Pause(1); err != nil {
		t.Fatal(err)
	}
	if !c.Running(1) {
		t.Error("a paused node counts as running")
	}
	err := c.WaitNodeReady(ctxFor(t, 300*time.Millisecond), 1)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), c.Node(1).LogPath) {
		t.Fatalf("WaitNodeReady on paused node = %v; want deadline exceeded naming its log", err)
	}
	// WaitReady names exactly the node that is not ready. (The deadline
	// leaves the other nodes time to answer on a loaded machine.)
	err = c.WaitReady(ctxFor(t, 3*time.Second))
	if err == nil || !strings.Contains(err.Error(), "node(s) 1 not ready") {
		t.Fatalf("WaitReady with node 1 paused = %v", err)
	}
	if err := c.Resume(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodeReady(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
	// StopAll must resume a paused node so it exits gracefully.
	if err := c.Pause(3); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAll(5 * time.Second); err != nil {
		t.Fatalf("StopAll with a paused node: %v", err)
	}
}

func TestStopGraceful(t *testing.T) {
	t.Parallel()
	c, ev := startReady(t, Options{Nodes: 1})
	if err := c.Stop(1, 5*time.Second); err != nil {
		t.Fatalf("graceful Stop: %v", err)
	}
	if e := ev.next(t, 1, time.Second); e.Err != nil || !e.Requested {
		t.Errorf("exit event %+v, want exit 0, requested", e)
	}
	if err := c.Stop(1, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Stop of stopped node = %v, want ErrNotRunning", err)
	}
}

func TestStopForcedAfterTimeout(t *testing.T) {
	t.Parallel()
	// Ready means the fake has already set SIGTERM to ignored.
	c, _ := startReady(t, Options{Nodes: 1, Env: []string{envIgnoreTerm + "=1"}})
	begin := time.Now()
	err := c.Stop(1, 300*time.Millisecond)
	if !errors.Is(err, ErrForcedKill) {
		t.Fatalf("Stop of a node ignoring SIGTERM = %v, want ErrForcedKill", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Stop took %v with a 300ms timeout", took)
	}
	if c.Running(1) {
		t.Error("node still running after forced Stop")
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	exe, _ := os.Executable()
	for range 20 {
		base := pickBase(3)
		busy := fmt.Sprintf("127.0.0.1:%d", 1000+base+2) // node 2's HTTP port
		l, err := net.Listen("tcp", busy)
		if err != nil {
			continue // taken by someone else; try another range
		}
		defer l.Close()
		dir := t.TempDir()
		c, err := Start(Options{Binary: exe, Dir: dir, BasePort: base, Env: []string{envFake + "=1"}})
		var pe *PortError
		if errors.As(err, &pe) && pe.Addr != busy {
			continue // some other port of the range is busy; not our listener
		}
		if err == nil {
			c.StopAll(time.Second)
			t.Fatal("Start succeeded with node 2's HTTP port taken")
		}
		port := strconv.Itoa(1000 + base + 2)
		if pe == nil || pe.Role != "HTTP" || !strings.Contains(err.Error(), "node 2") || !strings.Contains(err.Error(), port) {
			t.Fatalf("error %q: want a PortError naming node 2 and port %s", err, port)
		}
		if _, err := os.Stat(filepath.Join(dir, "node-1", "kintsu.log")); !os.IsNotExist(err) {
			t.Errorf("node 1 was started despite the busy port (log exists: %v)", err)
		}
		return
	}
	t.Fatal("could not set up a busy port")
}

func TestCrashAtStartReportedWithLogTail(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"before", "during"} {
		t.Run("crash "+when+" WaitReady", func(t *testing.T) {
			t.Parallel()
			var c *Cluster
			var err error
			var begin time.Time
			for range 5 { // retry if another process stole a port
				var ev *exits
				c, ev = startFake(t, Options{Env: []string{envCrashNode + "=2"}})
				if when == "before" {
					if e := ev.next(t, 2, 10*time.Second); e.Requested {
						t.Errorf("crash event %+v marked as requested", e)
					}
				}
				begin = time.Now()
				if err = c.WaitReady(ctxFor(t, 30*time.Second)); !lostPortRace(err) {
					break
				}
				c.StopAll(5 * time.Second)
			}
			if err == nil {
				t.Fatal("WaitReady succeeded with node 2 crashing")
			}
			if took := time.Since(begin); took > 10*time.Second {
				t.Errorf("crash reported after %v; want at once", took)
			}
			wantCrashReport(t, c, err)
			wantCrashReport(t, c, c.WaitNodeReady(ctxFor(t, 10*time.Second), 2))
			if !c.Running(1) || !c.Running(3) || c.Running(2) {
				t.Error("want nodes 1 and 3 running, node 2 not")
			}
		})
	}
}

func wantCrashReport(t *testing.T, c *Cluster, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error for crashed node 2")
	}
	for _, s := range []string{"node 2", "on its own", "exit status 3", fakeCrashLine, c.Node(2).LogPath} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%s", s, err)
		}
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	exe, _ := os.Executable()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{Binary: exe}, "Dir is required"},
		{"negative nodes", Options{Binary: exe, Dir: dir, Nodes: -1}, "Nodes -1"},
		{"port overflow", Options{Binary: exe, Dir: dir, BasePort: 60000}, "BasePort 60000"},
		{"negative partitions", Options{Binary: exe, Dir: dir, Partitions: -2}, "Partitions -2"},
		{"missing binary", Options{Binary: filepath.Join(dir, "no-such-kintsu"), Dir: dir}, "server binary"},
	} {
		c, err := Start(tc.opts)
		if err == nil {
			c.StopAll(time.Second)
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.name, err, tc.want)
		}
	}
}

// A node that cannot be started makes Start kill the nodes it already
// started: no half cluster is left behind.
func TestStartFailureStopsStartedNodes(t *testing.T) {
	t.Parallel()
	exe, _ := os.Executable()
	dir := t.TempDir()
	// A directory where node 2's log file should be makes its start fail
	// after node 1 is already running.
	if err := os.MkdirAll(filepath.Join(dir, "node-2", "kintsu.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 20 {
		var c *Cluster
		c, err = Start(Options{Binary: exe, Dir: dir, BasePort: pickBase(3), Env: []string{envFake + "=1"}})
		if c != nil {
			c.StopAll(time.Second)
			t.Fatal("Start succeeded although node 2 cannot start")
		}
		var pe *PortError
		if !errors.As(err, &pe) {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "node 2") {
		t.Fatalf("Start error = %v, want one naming node 2", err)
	}
	log := readLog(t, filepath.Join(dir, "node-1", "kintsu.log"))
	if !strings.Contains(log, "exited: signal: killed") {
		t.Errorf("node 1 was not killed after node 2 failed:\n%s", log)
	}
}

// TestChaosNoLeaks hammers one cluster from several goroutines (run with
// -race), then checks that StopAll leaves no process and no goroutine. It
// is not parallel so the goroutine count is its own.
func TestChaosNoLeaks(t *testing.T) {
	startSpawner() // lives as long as the process, by design
	before := runtime.NumGoroutine()
	c, _ := startReady(t, Options{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 15 {
				id := uint64(1 + r.IntN(3))
				var err error
				switch r.IntN(5) {
				case 0:
					err = c.Kill(id)
				case 1:
					err = c.Restart(id)
				case 2:
					err = c.Pause(id)
				case 3:
					err = c.Resume(id)
				case 4:
					err = c.Stop(id, 2*time.Second)
				}
				// Racing operations legitimately find a node down, up, or
				// killed by another goroutine in the middle of a Stop.
				if err != nil && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrRunning) && !errors.Is(err, ErrExitStatus) {
					t.Errorf("goroutine %d: %v", g, err)
				}
			}
		})
	}
	wg.Wait()
	for _, n := range c.Nodes() {
		if err := c.Restart(n.ID); err != nil && !errors.Is(err, ErrRunning) {
			t.Fatal(err)
		}
		if err := c.Resume(n.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	var pids []int
	c.mu.Lock()
	for _, p := range c.procs {
		pids = append(pids, p.pid)
	}
	c.mu.Unlock()
	if err := c.StopAll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	live := len(c.live)
	c.mu.Unlock()
	if live != 0 {
		t.Errorf("%d reaper goroutines still registered after StopAll", live)
	}
	for _, pid := range pids {
		if _, ok := procState(pid); ok {
			t.Errorf("pid %d still exists after StopAll (zombie or running)", pid)
		}
	}
	eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	got := tail(path, 3)
	if got != "line 4997\nline 4998\nline 4999" {
		t.Errorf("tail = %q", got)
	}
	if got := tail(filepath.Join(t.TempDir(), "missing"), 3); !strings.Contains(got, "cannot read log") {
		t.Errorf("tail of missing file = %q", got)
	}
}

// A secure cluster: each node gets its own certs directory, and readiness
// is probed over HTTPS trusting the cluster's CA.
func TestSecureCluster(t *testing.T) {
	t.Parallel()
	certs := filepath.Join(t.TempDir(), "certs")
	if err := CreateCerts(certs, 3, nil, "default"); err != nil {
		t.Fatal(err)
	}
	// Again, as when a dev cluster comes back: everything is kept.
	before, _ := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err := CreateCerts(certs, 3, nil, "default"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(certs, "ca.crt")); string(after) != string(before) {
		t.Fatal("CreateCerts replaced the CA")
	}
	c, _ := startReady(t, Options{CertsDir: certs})
	args := c.Args(2)
	if i := slices.Index(args, "--certs-dir"); i < 0 || args[i+1] != NodeCertsDir(certs, 2) || slices.Contains(args, "--insecure") {
		t.Fatalf("node 2's command line %q: want --certs-dir %s", args, NodeCertsDir(certs, 2))
	}
	if _, err := os.Stat(filepath.Join(NodeCertsDir(certs, 2), "ca.key")); !os.IsNotExist(err) {
		t.Errorf("the CA key is in a node's directory: %v", err)
	}
	if _, err := Start(Options{Dir: t.TempDir(), CertsDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "CertsDir") {
		t.Errorf("a CertsDir without a CA: %v, want refused", err)
	}
}

// A node that loses a port to another process between the launcher's
// check and its own listen is reported as a PortError, as the check
// would have, so callers that pick other ports retry.
func TestBindFailureInTheLogIsAPortError(t *testing.T) {
	log := "time=... level=WARN msg=x\nkintsu server: client listener (--resp-addr): listen tcp 127.0.0.1:21112: bind: address already in use\n"
	role, addr, ok := bindFailure(log)
	if !ok || role != "RESP" || addr != "127.0.0.1:21112" {
		t.Fatalf("bindFailure = %q, %q, %v", role, addr, ok)
	}
	if _, _, ok := bindFailure("kintsu server: admin listener (--http-addr): listen tcp 127.0.0.1:1: bind: permission denied"); ok {
		t.Fatal("a refusal other than a taken port counted as one")
	}
}
