package events

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestTeeRecordsInfoAndAboveBounded: Info and above are recorded (with
// attributes, the newest first) whatever the log's level; Debug is not;
// the ring keeps only its capacity, and a huge attribute is cut.
func TestTeeRecordsInfoAndAboveBounded(t *testing.T) {
	var out bytes.Buffer
	r := New(3, 4)
	log := slog.New(r.Tee(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))).With("node", 3, "component", "raft")
	log.Debug("chatty")
	log.Info("became leader", "partition", 7)
	log.Warn("slow fsync", "took", "2s")
	got := r.Latest(10)
	if len(got) != 2 || got[0].Message != "slow fsync" || got[1].Message != "became leader" {
		t.Fatalf("got %+v", got)
	}
	if got[1].Attrs != "component=raft partition=7" || got[1].Node != 3 || got[1].Level != "INFO" {
		t.Fatalf("event %+v", got[1])
	}
	if strings.Contains(out.String(), "became leader") || !strings.Contains(out.String(), "slow fsync") {
		t.Fatalf("the log's own level changed: %q", out.String())
	}
	for i := range 10 {
		log.Info(fmt.Sprint("e", i), "big", strings.Repeat("x", 10_000))
	}
	got = r.Latest(10)
	if len(got) != 4 || got[0].Message != "e9" || got[3].Message != "e6" {
		t.Fatalf("ring: %+v", got)
	}
	if len(got[0].Attrs) > maxAttrs+len("…") {
		t.Fatalf("attrs of %d bytes", len(got[0].Attrs))
	}
}
