package transport

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerPriority gives the calling goroutine an OS thread of its own, at
// nice backgroundNice, for the rest of its life. The goroutine must end
// when its work ends and must not unlock the thread: the runtime then
// ends the thread with it, so the lowered priority never reaches
// another goroutine. Threads the goroutine's work starts are made from
// the runtime's template thread, not this one, and keep the normal
// priority. Best effort: a thread whose priority cannot be changed runs
// the work at the normal one.
func lowerPriority() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice)
}
