package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the programs run inside the hosts, so no
// extra tool is needed: with envHelper set it acts as one of them.
const (
	envHelper  = "KINTSU_NETNS_HELPER"  // "serve", "dial" or "udp"
	envAddr    = "KINTSU_NETNS_ADDR"    // serve: port; dial, udp: host:port
	envTimeout = "KINTSU_NETNS_TIMEOUT" // dial: dial timeout

	testPort   = 7100
	testPrefix = "knt" // every Net of this package's tests: knt + 3 random chars
	udpBurst   = 20

	// A -race binary sleeps a second before a successful exit, to catch
	// races at exit; the short-lived helpers need not.
	noExitSleep = "GORACE=atexit_sleep_ms=0"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

func helper(mode string) int {
	addr := os.Getenv(envAddr)
	switch mode {
	case "serve":
		return serve(addr)
	case "dial":
		d, _ := time.ParseDuration(os.Getenv(envTimeout))
		c, err := net.DialTimeout("tcp", addr, d)
		if err != nil {
			fmt.Println("dial error:", err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintln(c, "ping")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			fmt.Printf("echo error: %q %v\n", line, err)
			return 1
		}
		fmt.Println("ok")
		return 0
	case "udp":
		c, err := net.Dial("udp", addr)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		for range udpBurst {
			if _, err := c.Write([]byte("x")); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

// serve listens on TCP and UDP port addr on every address of its host. A
// TCP line "count A" is answered with the number of UDP datagrams received
// from address A; any other line is echoed. It prints "ready" once both
// listeners are bound and exits when its stdin closes (the test ended).
func serve(port string) int {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	u, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	var mu sync.Mutex
	counts := map[string]int{}
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			counts[from.(*net.UDPAddr).IP.String()]++
			mu.Unlock()
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if a, ok := strings.CutPrefix(strings.TrimSpace(line), "count "); ok {
						mu.Lock()
						line = strconv.Itoa(counts[a]) + "\n"
						mu.Unlock()
					}
					io.WriteString(c, line)
				}
			}()
		}
	}()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// need skips the test where namespaces cannot be made, except in CI, which
// must run it.
func need(t *testing.T) {
	t.Helper()
	if err := Supported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are required in CI: %v", err)
		}
		t.Skipf("skipping: cannot create network namespaces here (run as root with iproute2 and nftables): %v", err)
	}
}

func randomName() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := []byte(testPrefix)
	for range 6 - len(testPrefix) {
		b = append(b, chars[rand.IntN(len(chars))])
	}
	return string(b)
}

func newNet(t *testing.T, hosts int) *Net {
	t.Helper()
	if err := CleanupStale(testPrefix); err != nil {
		t.Fatalf("CleanupStale: %v", err)
	}
	for range 5 {
		n, err := Create(randomName(), hosts)
		if err != nil && strings.Contains(err.Error(), "in use by a live Net") {
			continue // another test drew the same name
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return n
	}
	t.Fatal("no free name after 5 tries")
	return nil
}

func executable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		t.Fatal(err)
	}
	return exe
}

type server struct {
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan error // Wait's result
}

// startServer runs the serve helper inside host id through Wrap and
// returns once it is listening.
func startServer(t *testing.T, n *Net, id uint64) *server {
	t.Helper()
	argv := append(n.Wrap(id), executable(t))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envHelper+"=serve", envAddr+"="+strconv.Itoa(testPort))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		first <- line
		io.Copy(io.Discard, stdout) // until exit, so Wait can finish
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("server in host %d not reaped", id)
		}
	})
	select {
	case line := <-first:
		if line != "ready\n" {
			t.Fatalf("server in host %d: %q", id, line)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("server in host %d not ready within 20s", id)
	}
	return s
}

// dialFrom connects from host id (0: this process, in the root namespace)
// to addr, sends a line and waits for its echo.
func dialFrom(t *testing.T, n *Net, id uint64, addr string, timeout time.Duration) error {
	t.Helper()
	if id == 0 {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintln(c, "ping")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			return fmt.Errorf("echo: %q %v", line, err)
		}
		return nil
	}
	out, err := helperIn(t, n, id, "dial", addr, envTimeout+"="+timeout.String())
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// helperIn runs a short-lived helper inside host id, bounded by a timeout.
func helperIn(t *testing.T, n *Net, id uint64, mode, addr string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append(n.Wrap(id), executable(t))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), envHelper+"="+mode, envAddr+"="+addr, noExitSleep), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// udpCount asks the server at addr (from the root namespace) how many
// datagrams it got from source.
func udpCount(t *testing.T, addr, source string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "count %s\n", source)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
}

func hostPort(n *Net, id uint64) string {
	return net.JoinHostPort(n.Addr(id), strconv.Itoa(testPort))
}

const (
	okDial  = 5 * time.Second        // generous: must succeed
	cutDial = 300 * time.Millisecond // short: must time out
)

func wantReach(t *testing.T, n *Net, from, to uint64) {
	t.Helper()
	if err := dialFrom(t, n, from, hostPort(n, to), okDial); err != nil {
		t.Errorf("host %d -> host %d: %v", from, to, err)
	}
}

// wantCut expects a dial timeout: a dropped SYN (or SYN-ACK) is silence,
// not a refusal.
func wantCut(t *testing.T, n *Net, from, to uint64) {
	t.Helper()
	begin := time.Now()
	err := dialFrom(t, n, from, hostPort(n, to), cutDial)
	if err == nil {
		t.Errorf("host %d -> host %d: connected across a cut", from, to)
	} else if !strings.Contains(err.Error(), "timeout") {
		t.Errorf("host %d -> host %d: want a dial timeout, got %v", from, to, err)
	}
	t.Logf("host %d -> host %d across the cut: %v after %v", from, to, err, time.Since(begin).Round(time.Millisecond))
}

func TestCutAndHeal(t *testing.T) {
	need(t)
	t.Parallel()
	begin := time.Now()
	n := newNet(t, 3)
	t.Logf("Create(3 hosts) took %v; subnet of host 1: %s", time.Since(begin), n.Addr(1))
	if got, want := n.Addr(2), strings.TrimSuffix(n.Addr(1), "1")+"2"; got != want {
		t.Errorf("Addr(2) = %s, want %s", got, want)
	}
	if w := n.Wrap(3); len(w) != 4 || filepath.Base(w[0]) != "ip" || w[1] != "netns" || w[2] != "exec" || w[3] != n.Name()+"-h3" {
		t.Errorf("Wrap(3) = %q", w)
	}

	startServer(t, n, 1)
	startServer(t, n, 2)
	startServer(t, n, 3)

	// Reachable from the root namespace, from the other hosts, and inside
	// the host on loopback.
	wantReach(t, n, 0, 2)
	wantReach(t, n, 1, 2)
	wantReach(t, n, 3, 2)
	if err := dialFrom(t, n, 2, net.JoinHostPort("127.0.0.1", strconv.Itoa(testPort)), okDial); err != nil {
		t.Errorf("host 2 -> its own loopback: %v", err)
	}

	for range 2 { // idempotent
		if err := n.Cut(1, 2); err != nil {
			t.Fatal(err)
		}
	}
	wantCut(t, n, 1, 2)
	wantReach(t, n, 3, 2)
	wantReach(t, n, 0, 2)
	wantReach(t, n, 0, 1)
	// One-way at the IP level, but TCP needs both directions: host 2's SYN
	// reaches host 1, whose SYN-ACK is dropped.
	wantCut(t, n, 2, 1)

	// UDP shows the drop really is one-way: 2 -> 1 arrives, 1 -> 2 does
	// not. Host 3's burst, sent after host 1's, proves host 1's had time.
	if out, err := helperIn(t, n, 2, "udp", hostPort(n, 1)); err != nil {
		t.Fatalf("udp from host 2: %v %s", err, out)
	}
	eventually(t, 5*time.Second, "host 2's datagrams at host 1", func() bool { return udpCount(t, hostPort(n, 1), n.Addr(2)) == udpBurst })
	for _, from := range []uint64{1, 3} {
		if out, err := helperIn(t, n, from, "udp", hostPort(n, 2)); err != nil {
			t.Fatalf("udp from host %d: %v %s", from, err, out)
		}
	}
	eventually(t, 5*time.Second, "host 3's datagrams at host 2", func() bool { return udpCount(t, hostPort(n, 2), n.Addr(3)) == udpBurst })
	if got := udpCount(t, hostPort(n, 2), n.Addr(1)); got != 0 {
		t.Errorf("host 2 got %d datagrams from host 1 across the cut", got)
	}

	for range 2 { // idempotent
		if err := n.Heal(); err != nil {
			t.Fatal(err)
		}
	}
	wantReach(t, n, 1, 2)
	wantReach(t, n, 2, 1)

	if err := n.Cut(1, 1); err == nil {
		t.Error("Cut(1, 1) succeeded")
	}
	if err := n.Cut(1, 4); err == nil || !strings.Contains(err.Error(), "no host 4") {
		t.Errorf("Cut(1, 4) = %v", err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Cut(1, 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Cut after Close = %v, want ErrClosed", err)
	}
	wantGone(t, n.Name())
}

// wantGone checks that no namespace, no root link and no lock file of the
// Net called name is left.
func wantGone(t *testing.T, name string) {
	t.Helper()
	// A cleanup running in a parallel test may hold the name and still be
	// removing it: wait for it, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := leftovers(t, name)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, l := range left {
				t.Error(l)
			}
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}

// leftovers describes what of the Net called name still exists.
func leftovers(t *testing.T, name string) []string {
	t.Helper()
	var left []string
	for _, argv := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", strings.Join(argv, " "), err, out)
		}
		if strings.Contains(string(out), name+"-") {
			left = append(left, fmt.Sprintf("%q left behind by %s:\n%s", name, strings.Join(argv, " "), out))
		}
	}
	if _, err := os.Stat(nameLockPath(name)); !os.IsNotExist(err) {
		left = append(left, fmt.Sprintf("lock file of %q left behind (%v)", name, err))
	}
	return left
}

// TestSignalsReachTheCommand: ip netns exec execs, so the pid the caller
// holds is the command's own, and SIGSTOP / SIGKILL act on it directly.
func TestSignalsReachTheCommand(t *testing.T) {
	need(t)
	t.Parallel()
	n := newNet(t, 1)
	s := startServer(t, n, 1)
	pid := s.cmd.Process.Pid
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if exe != executable(t) {
		t.Fatalf("pid %d runs %q, want the command itself (%s)", pid, exe, executable(t))
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "stopped state", func() bool { return procState(pid) == 'T' })
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "running state", func() bool { return procState(pid) != 'T' })
	wantReach(t, n, 0, 1)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("after SIGKILL, Wait = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not reaped 10s after SIGKILL")
	}
	s.done <- nil // for the cleanup's wait
}

func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}

// TestCleanupStale: a Net whose owner died (simulated by dropping its lock
// without closing it) is removed with its processes; a live Net is not.
func TestCleanupStale(t *testing.T) {
	need(t)
	t.Parallel()
	live := newNet(t, 1)
	startServer(t, live, 1)
	crashed := newNet(t, 2)
	s := startServer(t, crashed, 2)
	crashed.lock.Close() // the owner "dies": the kernel drops its flock

	if err := CleanupStale(testPrefix); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
		s.done <- nil // for the cleanup's wait
	case <-time.After(10 * time.Second):
		t.Fatal("process inside the stale Net still running")
	}
	wantGone(t, crashed.Name())
	wantReach(t, live, 0, 1)
}

func TestCreateErrors(t *testing.T) {
	need(t)
	t.Parallel()
	for _, name := range []string{"", "toolong7", "Upper", "a-b"} {
		if _, err := Create(name, 1); err == nil || !strings.Contains(err.Error(), "want 1 to 6 characters") {
			t.Errorf("Create(%q) = %v", name, err)
		}
	}
	if _, err := Create("knterr", 0); err == nil {
		t.Error("Create with 0 hosts succeeded")
	}
	n := newNet(t, 1)
	if _, err := Create(n.Name(), 1); err == nil || !strings.Contains(err.Error(), "in use by a live Net") {
		t.Errorf("second Create(%q) = %v", n.Name(), err)
	}
	startServer(t, n, 1)
	wantReach(t, n, 0, 1) // the failed Create did not touch the live Net
}

// TestCreateFailureRemovesEverything: a Create failing half-way (here
// before host 2, with the hub and host 1 built) leaves nothing behind.
func TestCreateFailureRemovesEverything(t *testing.T) {
	need(t)
	t.Parallel()
	name := randomName()
	_, err := create(name, 3, func(host uint64) error {
		if host == 2 {
			return errors.New("planted failure")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "planted failure") || !strings.Contains(err.Error(), name) {
		t.Fatalf("create = %v, want the planted failure naming %q", err, name)
	}
	wantGone(t, name)
}
