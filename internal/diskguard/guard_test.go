package diskguard

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestParseReserve(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		in    string
		total uint64
		want  uint64
	}{
		{"", 100 * gib, gib},        // default: 1 GiB on a large disk
		{"", 4 * gib, 4 * gib / 20}, // default: 5% on a small one
		{"512MiB", 100 * gib, 512 << 20},
		{"2GiB", 100 * gib, 2 * gib},
		{"1GB", 100 * gib, 1e9},
		{"10%", 100 * gib, 10 * gib},
		{"3GiB", 4 * gib, 2 * gib}, // never more than half the disk
		{"0", 100 * gib, 0},
	} {
		r, err := ParseReserve(tc.in)
		if err != nil {
			t.Fatalf("ParseReserve(%q): %v", tc.in, err)
		}
		if got := r.Bytes(tc.total); got != tc.want {
			t.Errorf("ParseReserve(%q).Bytes(%d) = %d, want %d", tc.in, tc.total, got, tc.want)
		}
	}
	for _, bad := range []string{"x", "-1", "5 %", "0%", "60%", "1.5GiB"} {
		if _, err := ParseReserve(bad); err == nil {
			t.Errorf("ParseReserve(%q) accepted", bad)
		}
	}
}

// TestNextHysteresis: full below the reserve, and full until the free
// space is back above 1.5 times the reserve.
func TestNextHysteresis(t *testing.T) {
	const res = 1000
	steps := []struct {
		free uint64
		want bool
	}{
		{5000, false}, {1000, false}, {999, true}, {1200, true}, {1499, true},
		{1500, false}, {1100, false}, {10, true}, {0, true}, {2000, false},
	}
	full := false
	for i, s := range steps {
		full = Next(full, s.free, res)
		if full != s.want {
			t.Fatalf("step %d (free %d): full = %v, want %v", i, s.free, full, s.want)
		}
	}
	if Next(true, 0, 0) {
		t.Error("a zero reserve (guard off) reported full")
	}
}

// usageFS reports the free space the test sets, on an in-memory FS.
type usageFS struct {
	vfs.FS
	mu   sync.Mutex
	free uint64
}

func (f *usageFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return vfs.DiskUsage{AvailBytes: f.free, TotalBytes: 100 << 30, UsedBytes: 100<<30 - f.free}, nil
}

func (f *usageFS) set(free uint64) {
	f.mu.Lock()
	f.free = free
	f.mu.Unlock()
}

// TestWatchReportsFullAndRecovery drives Watch with a disk whose free
// space the test sets.
func TestWatchReportsFullAndRecovery(t *testing.T) {
	fs := &usageFS{FS: vfs.NewMem(), free: 50 << 30}
	samples := make(chan Sample, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, fs, "/", Reserve{}, time.Millisecond, slog.Default(), func(s Sample) {
			select {
			case samples <- s:
			default:
			}
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	waitSample := func(full bool) Sample {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-samples:
				if s.Full == full {
					return s
				}
			case <-deadline:
				t.Fatalf("no sample with Full=%v", full)
			}
		}
	}
	if s := waitSample(false); s.Reserve != 1<<30 {
		t.Errorf("reserve %d, want 1 GiB", s.Reserve)
	}
	fs.set(512 << 20)
	if s := waitSample(true); s.Free != 512<<20 {
		t.Errorf("free %d", s.Free)
	}
	fs.set(1400 << 20) // above the reserve, below the hysteresis line: still full
	for range 5 {
		if s := waitSample(true); s.Free != 512<<20 && s.Free != 1400<<20 {
			t.Errorf("free %d", s.Free)
		}
	}
	fs.set(2 << 30)
	waitSample(false)
}
