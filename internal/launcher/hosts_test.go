package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/netns"
)

// TestHostsAndWrap runs fake nodes on their own loopback addresses
// (127.0.0.0/8 is all local on Linux) behind an exec-ing wrapper (env),
// which needs no privileges: addresses, command lines, the skipped port
// check and signals reaching the node itself.
func TestHostsAndWrap(t *testing.T) {
	t.Parallel()
	envBin, err := exec.LookPath("env")
	if err != nil {
		t.Skipf("no env(1): %v", err)
	}
	// Random 127.x.y.z addresses: no other test listens there.
	var hosts []string
	for range 3 {
		hosts = append(hosts, fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250)))
	}
	wrapped := func(id uint64) []string { return []string{envBin, "KINTSU_WRAPPED_NODE=" + strconv.FormatUint(id, 10)} }
	c, ev := startReady(t, Options{Hosts: hosts, Wrap: wrapped})
	base := c.opts.BasePort
	if got := c.Node(2).RESPAddr; got != net.JoinHostPort(hosts[1], strconv.Itoa(base+2)) {
		t.Errorf("node 2 RESP address %s, want on host %s", got, hosts[1])
	}
	if got := c.Node(3).PeerAddr; got != net.JoinHostPort(hosts[2], strconv.Itoa(10000+base+3)) {
		t.Errorf("node 3 peer address %s, want on host %s", got, hosts[2])
	}
	if args := c.Args(1); args[0] != c.opts.Binary || !slices.Contains(args, "--initial-cluster") {
		t.Errorf("Args(1) = %q: want the node's own command line, without the wrapper", args)
	}
	cluster := args(c.Args(1), "--initial-cluster")
	for i, h := range hosts {
		if !strings.Contains(cluster, fmt.Sprintf("%d=%s:", i+1, h)) {
			t.Errorf("--initial-cluster %q lacks node %d on %s", cluster, i+1, h)
		}
	}
	if log := readLog(t, c.Node(1).LogPath); !strings.Contains(log, "starting node 1: "+envBin+" KINTSU_WRAPPED_NODE=1 "+c.opts.Binary) {
		t.Errorf("node 1 log does not show the wrapped command:\n%s", log)
	}
	// The wrapper exec'd the node: its pid runs the node binary, with the
	// wrapper's environment.
	pid := c.PID(2)
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != "" && exe != c.opts.Binary {
		t.Errorf("pid %d runs %s, want the node binary %s", pid, exe, c.opts.Binary)
	}
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && !bytes.Contains(env, []byte("KINTSU_WRAPPED_NODE=2\x00")) {
		t.Errorf("node 2 was not started through its wrapper")
	}
	if err := c.Pause(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(2); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, 2, time.Second); !killedBy(e.Err, syscall.SIGKILL) {
		t.Errorf("node 2 exit %v, want killed by SIGKILL", e.Err)
	}
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAll(5 * time.Second); err != nil {
		t.Fatalf("StopAll (SIGTERM must reach the node, which exits 0): %v", err)
	}
}

func TestHostsValidation(t *testing.T) {
	t.Parallel()
	exe, _ := os.Executable()
	dir := t.TempDir()
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Binary: exe, Dir: dir, Nodes: 4, Hosts: []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"}}, "Hosts has 3 addresses"},
		{Options{Binary: exe, Dir: dir, Hosts: []string{"10.1.0.1", ""}}, "Hosts[1] (node 2) is empty"},
	} {
		if c, err := Start(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			if c != nil {
				c.StopAll(time.Second)
			}
			t.Errorf("Start(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
	o, err := Options{Binary: exe, Dir: dir, Hosts: []string{"a", "b", "c", "d"}}.normalize()
	if err != nil || o.Nodes != 4 {
		t.Errorf("Nodes 0 with 4 Hosts: Nodes=%d, err %v; want 4 nodes", o.Nodes, err)
	}
}

// args returns the value after flag in a command line.
func args(argv []string, flag string) string {
	if i := slices.Index(argv, flag); i >= 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	return ""
}

func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// needNetns skips where network namespaces cannot be made, except in CI,
// which must run the test.
func needNetns(t *testing.T) {
	t.Helper()
	if err := netns.Supported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are required in CI: %v", err)
		}
		t.Skipf("skipping: cannot create network namespaces here (run as root with iproute2 and nftables): %v", err)
	}
}

// buildKintsu builds the real server for the one test that needs it, so a
// broken server build fails that test only, not every launcher test (which
// run the fake).
func buildKintsu(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kintsu")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kintsu/kintsu/cmd/kintsu").CombinedOutput()
	if err != nil {
		t.Fatalf("building kintsu: %v\n%s", err, out)
	}
	return bin
}

// TestNetnsCluster runs a real three-node cluster with every node in its
// own network namespace (package netns): readiness, a write and a read
// through node 2's address, and Pause, Kill and Restart reaching the
// kintsu process itself through "ip netns exec".
func TestNetnsCluster(t *testing.T) {
	needNetns(t)
	t.Parallel()
	begin := time.Now()
	bin := buildKintsu(t)
	t.Logf("kintsu built in %v", time.Since(begin).Round(time.Millisecond))

	const prefix = "kl" // + 4 random characters
	if err := netns.CleanupStale(prefix); err != nil {
		t.Fatal(err)
	}
	var nw *netns.Net
	for try := 0; nw == nil; try++ {
		name := prefix + strconv.FormatUint(rand.Uint64N(36*36*36*36), 36)
		var err error
		if nw, err = netns.Create(name, 3); err != nil && (try > 5 || !strings.Contains(err.Error(), "in use")) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("closing the network: %v", err)
		}
	})
	hosts := []string{nw.Addr(1), nw.Addr(2), nw.Addr(3)}

	ev := &exits{ch: make(chan ExitEvent, 100)}
	begin = time.Now()
	// The test reaches the nodes from another host: without a password,
	// protected mode would refuse it.
	c, err := Start(Options{Binary: bin, Dir: t.TempDir(), Hosts: hosts, Wrap: nw.Wrap, Partitions: 8, OnExit: ev.record, ExtraArgs: []string{"--protected-mode=false"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before nw.Close: cleanups run last-registered first
		if err := c.StopAll(15 * time.Second); err != nil {
			t.Errorf("StopAll: %v", err)
		}
		if t.Failed() {
			for _, n := range c.Nodes() {
				t.Logf("--- node %d log tail ---\n%s", n.ID, tail(n.LogPath, 30))
			}
		}
	})
	if want := net.JoinHostPort(hosts[1], strconv.Itoa(DefaultBasePort+2)); c.Node(2).RESPAddr != want {
		t.Errorf("node 2 RESP address %s, want %s", c.Node(2).RESPAddr, want)
	}
	if err := c.WaitReady(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster ready %v after Start", time.Since(begin).Round(time.Millisecond))
	for _, n := range c.Nodes() {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.PID(n.ID))); err != nil || exe != bin {
			t.Errorf("node %d's pid runs %q (%v), want kintsu itself", n.ID, exe, err)
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: c.Node(2).RESPAddr, DialTimeout: 2 * time.Second, ReadTimeout: 6 * time.Second, MaxRetries: -1})
	defer rdb.Close()
	ctx := ctxFor(t, 60*time.Second)
	retry(t, ctx, "SET via node 2", func() error { return rdb.Set(ctx, "netns-key", "across-hosts", 0).Err() })
	if got, err := rdb.Get(ctx, "netns-key").Result(); err != nil || got != "across-hosts" {
		t.Fatalf("GET via node 2 = %q, %v", got, err)
	}

	if err := c.Pause(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(1); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(3); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, 3, 5*time.Second); !e.Requested || !killedBy(e.Err, syscall.SIGKILL) {
		t.Errorf("node 3 exit %+v, want requested, killed by SIGKILL", e)
	}
	if err := c.Restart(3); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNodeReady(ctxFor(t, 60*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	r3 := redis.NewClient(&redis.Options{Addr: c.Node(3).RESPAddr, DialTimeout: 2 * time.Second, ReadTimeout: 6 * time.Second, MaxRetries: -1})
	defer r3.Close()
	var got string
	retry(t, ctx, "GET via restarted node 3", func() (err error) {
		got, err = r3.Get(ctx, "netns-key").Result()
		return err
	})
	if got != "across-hosts" {
		t.Errorf("GET via restarted node 3 = %q", got)
	}
	if err := c.StopAll(15 * time.Second); err != nil {
		t.Fatalf("StopAll (SIGTERM must reach kintsu, which then exits 0): %v", err)
	}
}

// retry calls f until it succeeds or ctx ends: right after readiness a
// request may still meet a leader change.
func retry(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond): // retry interval
		}
	}
}
