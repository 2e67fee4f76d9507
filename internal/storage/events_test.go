package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestPebbleLoggerErrorsReachTheLog: Pebble's Errorf (a flush failing on a
// full disk, retried at once) logs at ERROR with the data dir, each
// distinct message once per logEvery; Fatalf logs, then panics.
func TestPebbleLoggerErrorsReachTheLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	p := newPebbleLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil)), "/data")
	for range 100 {
		p.Errorf("background error: %s", "write 000042.sst: no space left on device")
	}
	p.Infof("chatter")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if n := strings.Count(out, "level=ERROR"); n != 1 || !strings.Contains(out, "no space left on device") || !strings.Contains(out, "dir=/data") {
		t.Fatalf("want one ERROR line naming the disk and the error, got:\n%s", out)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Fatalf returned")
			}
		}()
		p.Fatalf("MANIFEST sync failed: %v", "EIO")
	}()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "MANIFEST sync failed: EIO") {
		t.Errorf("Fatalf not logged:\n%s", buf.String())
	}
}
