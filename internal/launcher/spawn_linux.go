package launcher

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// spawner starts every node process from one OS thread that lives as long
// as the launcher's process. The nodes get SIGKILL when their parent dies
// (Pdeathsig), so a launcher killed outright — a test binary past its
// timeout, a `kintsu dev` sent SIGKILL — leaves no node running. Linux
// sends that signal when the thread that started the child ends, not the
// process; the Go runtime ends a thread when a goroutine locked to it
// exits, which may be any thread that once ran cmd.Start. Hence the one
// thread, locked for good and never ended.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// startProcess starts cmd in its own process group, to die with this
// process.
func startProcess(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	startSpawner()
	done := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// startSpawner starts the spawning thread's goroutine, once; it lives as
// long as the process.
func startSpawner() {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
}
