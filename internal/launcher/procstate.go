package launcher

import (
	"bytes"
	"fmt"
	"os"
	"time"
)

// waitStopState waits until the kernel shows p stopped (want=true) or not
// stopped (want=false). kill(2) returns before a stop takes effect on every
// thread; callers of Pause expect the node to be frozen when it returns.
// Where /proc is unavailable (not Linux) it returns at once: delivery is
// prompt in practice and there is nothing better to poll.
func waitStopState(p *proc, want bool) error {
	deadline := time.Now().Add(signalWait)
	for {
		state, ok := procState(p.pid)
		switch {
		case !ok:
			return nil // unsupported, or the process is gone (Running will say so)
		case state == 'Z' || state == 'X':
			return nil // exited; the reaper will record it
		case (state == 'T' || state == 't') == want:
			return nil
		}
		select {
		case <-p.reaped:
			return nil
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("launcher: node %d (pid %d): state %q after %v, want stopped=%v", p.spec.info.ID, p.pid, state, signalWait, want)
		}
	}
}

// procState is the one-letter state of pid from /proc/<pid>/stat.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// "pid (comm) S ...": comm may contain spaces and parentheses, so the
	// state is the first field after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}
