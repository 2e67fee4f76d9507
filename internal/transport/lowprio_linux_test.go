package transport

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// threadNice is the nice value of the calling goroutine's thread, which
// it locks for the rest of its life.
func threadNice(t *testing.T) int {
	runtime.LockOSThread()
	// The raw system call answers 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Errorf("getpriority: %v", err)
	}
	return 20 - p
}

// A snapshot's thread runs backgroundNice below the process, and the lowered
// thread never serves another goroutine after it: were it handed back
// to the runtime (an UnlockOSThread), the goroutines started after it
// would find it among the idle threads.
func TestLowerPriorityIsTheGoroutinesAlone(t *testing.T) {
	base := make(chan int)
	go func() { base <- threadNice(t) }()
	normal := <-base
	lowered := make(chan int)
	go func() {
		lowerPriority()
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Errorf("getpriority: %v", err)
		}
		lowered <- 20 - p
	}()
	// Relative to the process's own: a process already at nice 15 puts
	// its snapshots at 19, never back up to 10.
	if got, want := <-lowered, min(normal+backgroundNice, 19); got != want {
		t.Fatalf("a thread lowered from nice %d runs at nice %d, want %d", normal, got, want)
	}
	for range 4 * runtime.GOMAXPROCS(0) {
		got := make(chan int)
		go func() { got <- threadNice(t) }()
		if n := <-got; n != normal {
			t.Fatalf("a goroutine started after a lowered one ran at nice %d, not %d: the lowered thread went back to the runtime", n, normal)
		}
	}
}
