//go:build !linux

package launcher

import (
	"os/exec"
	"syscall"
)

// startProcess starts cmd in its own process group. Outside Linux a node
// does not die with a launcher killed outright; StopAll stops it.
func startProcess(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

// startSpawner has nothing to start outside Linux.
func startSpawner() {}
