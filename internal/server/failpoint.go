package server

import (
	"os"
	"syscall"
)

// Crash failpoints: PUT /v1/fault/crash (internal/admin) arms one through
// armCrash, and the transaction coordinator reaches them through
// failpoint.

// armCrash arms the crash failpoint at, or disarms it when at is "".
func (n *Node) armCrash(at string) {
	if at == "" {
		n.crashAt.Store(nil)
		return
	}
	n.crashAt.Store(&at)
}

// failpoint kills this process, as kill -9 would, the first time the
// armed point is reached; nothing is flushed or closed on the way out.
func (n *Node) failpoint(name string) {
	p := n.crashAt.Load()
	if p == nil || *p != name || !n.crashAt.CompareAndSwap(p, nil) {
		return
	}
	n.log.Error("fault injection: crashing at failpoint", "point", name)
	n.crash()
}

// killSelf ends the process as kill -9 would; exiting is the fallback
// should the signal fail.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	os.Exit(137)
}
