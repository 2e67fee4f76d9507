package transport

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerPriority gives the calling goroutine an OS thread of its own,
// backgroundNice below the process's priority (a nice that much higher,
// at most 19), for the rest of its life. The goroutine must end
// when its work ends and must not unlock the thread: the runtime then
// ends the thread with it, so the lowered priority never reaches
// another goroutine. Threads the goroutine's work starts are made from
// the runtime's template thread, not this one, and keep the normal
// priority. Best effort: a thread whose priority cannot be changed runs
// the work at the normal one.
func lowerPriority() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The raw system call answers 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return
	}
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, min(20-p+backgroundNice, 19))
}
