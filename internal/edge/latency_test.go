package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

func TestLatencyBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Microsecond, 0}, {2 * time.Microsecond, 1}, {3 * time.Microsecond, 2},
		{4 * time.Microsecond, 2}, {5 * time.Microsecond, 3}, {time.Millisecond, 10},
		{time.Hour, latencyBuckets - 1},
	} {
		if got := bucketOf(c.d); got != c.want {
			t.Errorf("bucketOf(%v) = %d, want %d", c.d, got, c.want)
		}
		if c.want < latencyBuckets-1 && c.d > LatencyBucketBound(c.want) {
			t.Errorf("%v is over its bucket's bound %v", c.d, LatencyBucketBound(c.want))
		}
	}
}

// TestLatencyHistogramAsRedis: LATENCY HISTOGRAM's cumulative counts at
// power-of-two microsecond bounds, up to the bucket of the slowest call,
// only for the commands named (unknown names left out), in both
// protocols; INFO commandstats shows the same time.
func TestLatencyHistogramAsRedis(t *testing.T) {
	f := &Server{stats: newStats()}
	for _, d := range []time.Duration{time.Microsecond, 3 * time.Microsecond, 3 * time.Microsecond, 100 * time.Microsecond} {
		f.stats.observe("get", d)
		f.stats.count(command.Lookup([]byte("get")), nil, true, []byte("$1\r\nx\r\n"))
	}
	f.stats.observe("set", 2*time.Millisecond)
	got := showReply(t, f.latencyHistogram([][]byte{[]byte("GET"), []byte("nosuch")}, false))
	if want := `["get", ["calls", 4, "histogram_usec", [1, 1, 2, 1, 4, 3, 8, 3, 16, 3, 32, 3, 64, 3, 128, 4]]]`; got != want {
		t.Fatalf("RESP2:\n got %s\nwant %s", got, want)
	}
	if b := f.latencyHistogram(nil, true); !strings.HasPrefix(string(b), "%2\r\n$3\r\nget\r\n%2\r\n") {
		t.Fatalf("RESP3 reply %q", b[:min(len(b), 40)])
	}
	var info strings.Builder
	f.infoCommandStats(&info)
	if !strings.Contains(info.String(), "cmdstat_get:calls=4,usec=107,usec_per_call=26.75,") {
		t.Fatalf("INFO commandstats:\n%s", info.String())
	}
}

// TestLatencyMonitor: off at threshold 0; at a threshold, one sample per
// second (the worst), at most latencyHistory of them; LATEST, HISTORY and
// RESET as Redis answers them.
func TestLatencyMonitor(t *testing.T) {
	f := &Server{stats: newStats()}
	m := &f.latency
	at := time.Unix(1_700_000_000, 0)
	m.record("command", time.Second, at)
	if len(m.events) != 0 {
		t.Fatal("recorded with the monitor off")
	}
	m.setting("latency-monitor-threshold", "100")
	m.record("command", 50*time.Millisecond, at) // under the threshold
	m.record("command", 150*time.Millisecond, at)
	m.record("command", 300*time.Millisecond, at) // same second: the worst kept
	m.record("command", 120*time.Millisecond, at.Add(time.Second))
	st := &connState{}
	if got := showReply(t, cmdLatency(f, args("LATENCY", "LATEST"), st)); got != `[["command", 1700000001, 120, 300]]` {
		t.Fatalf("LATEST %s", got)
	}
	if got := showReply(t, cmdLatency(f, args("LATENCY", "HISTORY", "command"), st)); got != `[[1700000000, 300], [1700000001, 120]]` {
		t.Fatalf("HISTORY %s", got)
	}
	for i := range 500 {
		m.record("command", 200*time.Millisecond, at.Add(time.Duration(i+2)*time.Second))
	}
	if n := len(m.events["command"].samples); n != latencyHistory {
		t.Fatalf("%d samples kept", n)
	}
	if got := showReply(t, cmdLatency(f, args("LATENCY", "RESET", "command", "nosuch"), st)); got != "1" {
		t.Fatalf("RESET %s", got)
	}
	if got := showReply(t, cmdLatency(f, args("LATENCY", "LATEST"), st)); got != "[]" {
		t.Fatalf("LATEST after RESET %s", got)
	}
	if got := showReply(t, cmdLatency(f, args("LATENCY", "NOPE"), st)); !strings.Contains(got, "Try LATENCY HELP") {
		t.Fatalf("unknown subcommand: %s", got)
	}
}

// TestErrorCountsAreBounded: a client sending ever new command names and
// error codes grows neither the node's memory nor the metrics' labels
// past their bounds, and what it sends becomes printable labels.
func TestErrorCountsAreBounded(t *testing.T) {
	s := newStats()
	for i := range 5000 {
		s.count(nil, []byte(fmt.Sprintf("cmd%d", i)), true, []byte(fmt.Sprintf("-ERR%d unknown command\r\n", i)))
	}
	// Not like a command name, or from a connection not authenticated:
	// never a label of its own (it may be a password).
	s.count(nil, []byte("hunter2\xff"), true, []byte("-ERR unknown command\r\n"))
	s.count(nil, []byte("xadd"), false, []byte("-ERR unknown command\r\n"))
	if n := len(s.errs.byKey); n > maxErrorKeys {
		t.Fatalf("%d (command, code) pairs kept", n)
	}
	if n := len(s.errs.unknown); n > maxUnknownNames {
		t.Fatalf("%d unknown names kept", n)
	}
	codes := 0
	s.perError.Range(func(_, _ any) bool { codes++; return true })
	if codes > maxErrorCodes+1 {
		t.Fatalf("%d error codes kept", codes)
	}
	f := &Server{stats: s}
	for _, e := range f.ErrorCounts() {
		for _, r := range e.Command + e.Code {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("label %q %q is not printable", e.Command, e.Code)
			}
		}
	}
	if !s.errs.unknown["cmd0"] || s.errs.unknown["xadd"] || s.errs.byKey[errKey{unknownName, "OTHER"}] != 2 {
		t.Fatalf("unknown names kept: %v; (unknown): %d", s.errs.unknown, s.errs.byKey[errKey{unknownName, "OTHER"}])
	}
}

func args(a ...string) [][]byte {
	out := make([][]byte, len(a))
	for i, s := range a {
		out[i] = []byte(s)
	}
	return out
}

// showReply renders a RESP reply compactly.
func showReply(t *testing.T, b []byte) string {
	t.Helper()
	v, _, err := resp.ParseValue(b)
	if err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	return show(v)
}

func show(v resp.Value) string {
	switch {
	case v.Array != nil || v.Kind == '*':
		var parts []string
		for _, e := range v.Array {
			parts = append(parts, show(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.Kind == ':':
		return fmt.Sprint(v.Int)
	case v.Kind == '-':
		return "(error) " + string(v.Str)
	}
	return fmt.Sprintf("%q", v.Str)
}
