//go:build linux

package diskguard

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestWatchRealTmpfs fills a real 64 MiB tmpfs past its reserve and frees
// it again. It needs root and a kernel that lets the test mount; it skips
// (saying why) otherwise.
func TestWatchRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	defer func() { _ = syscall.Unmount(dir, 0) }()

	samples := make(chan Sample, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, vfs.Default, dir, Reserve{Size: 16 << 20}, 5*time.Millisecond, slog.Default(), func(s Sample) {
			select {
			case samples <- s:
			default:
			}
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	wait := func(full bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-samples:
				if s.Full == full {
					return
				}
			case <-deadline:
				t.Fatalf("no sample with Full=%v", full)
			}
		}
	}
	wait(false)
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 56<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	wait(true)
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	wait(false)
}
