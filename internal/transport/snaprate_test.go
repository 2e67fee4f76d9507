package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSnapshotRatePaces: bytes through a byteRate never go faster than
// its rate, whoever sends them (two senders share one rate), the first
// chunk goes at once, and a sender whose context ends stops waiting.
func TestSnapshotRatePaces(t *testing.T) {
	var l byteRate
	l.set(1 << 20) // 1 MiB/s
	const chunk = 128 << 10
	start := time.Now()
	if err := l.wait(context.Background(), chunk); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("the first chunk waited %v", d)
	}
	done := make(chan error, 2)
	for range 2 {
		go func() {
			for range 2 {
				if err := l.wait(context.Background(), chunk); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Five chunks of 128 KiB at 1 MiB/s: the fifth starts 0.5 s after the first.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("5 chunks of 128 KiB went in %v at 1 MiB/s", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.set(1) // one byte a second: the next chunk would wait for days
	_ = l.wait(context.Background(), chunk)
	cancel()
	if err := l.wait(ctx, chunk); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
	l.set(0)
	if err := l.wait(context.Background(), 1<<30); err != nil {
		t.Fatalf("unlimited: %v", err)
	}
}
