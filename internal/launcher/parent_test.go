package launcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeParent is a launcher process of its own: it starts two fake nodes
// that would outlive it (envOrphanOK), writes their pids to dir/pids once
// they are ready, and waits to be killed.
func fakeParent(dir string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Goroutines locked to threads that end, as a node's snapshot
	// transfers make: the thread that started a node may be one of them.
	endThreads()
	c, err := Start(Options{Binary: exe, Dir: dir, Nodes: 2, BasePort: pickBase(2), Env: []string{envFake + "=1", envOrphanOK + "=1"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Threads that end after the nodes started: with Pdeathsig tied to
	// a thread that ends, the nodes would die now, and the test would
	// find them gone before it kills this process.
	endThreads()
	pids := fmt.Sprintf("%d %d\n", c.PID(1), c.PID(2))
	if err := os.WriteFile(filepath.Join(dir, "pids.tmp"), []byte(pids), 0o644); err != nil {
		return 1
	}
	if err := os.Rename(filepath.Join(dir, "pids.tmp"), filepath.Join(dir, "pids")); err != nil {
		return 1
	}
	// Killed by the test; never outlives it by long if it is not.
	time.Sleep(2 * time.Minute)
	return 1
}

// endThreads ends eight of the process's threads: a goroutine that exits
// locked to its thread takes the thread with it.
func endThreads() {
	for range 8 {
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); close(done) }()
		<-done
	}
}

// alive says whether pid runs (a zombie, killed and not yet reaped by
// its new parent, does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name's closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// A launcher killed outright (SIGKILL: no StopAll) takes its nodes with
// it, even when threads of its process ended after it started them.
func TestNodesDieWithTheLauncher(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a node dies with its launcher only on Linux (Pdeathsig)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	parent := exec.Command(exe, "-test.run=^$")
	parent.Env = append(os.Environ(), envParent+"="+dir)
	parent.Stderr = os.Stderr
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- parent.Wait() }()
	t.Cleanup(func() { _ = parent.Process.Kill() }) // however the test ends
	var pids []int
	eventually(t, 60*time.Second, "the launcher's nodes to be ready", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the launcher exited before its nodes were ready: %v", err)
		default:
		}
		b, err := os.ReadFile(filepath.Join(dir, "pids"))
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
		return true
	})
	if len(pids) != 2 || pids[0] <= 0 || pids[1] <= 0 {
		// A pid of 0 is a node not running (or, given to kill, this
		// process group).
		t.Fatalf("the launcher wrote pids %v: a node is not running", pids)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("node process %d died before its launcher", pid)
		}
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	eventually(t, 10*time.Second, "the nodes to die with their launcher", func() bool {
		return !alive(pids[0]) && !alive(pids[1])
	})
}
