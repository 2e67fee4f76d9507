package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/testbin"
)

var kintsuBinary string

func TestMain(m *testing.M) {
	testbin.Main(func(bin string) int {
		kintsuBinary = bin
		return m.Run()
	})
}

func TestHistQuantilesWithinABucket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Hist
	var xs []time.Duration
	for range 100_000 {
		// Log-uniform from 10µs to 10s, as latencies spread.
		d := time.Duration(float64(10*time.Microsecond) * math.Pow(1e6, rng.Float64()))
		xs = append(xs, d)
		h.Add(d)
	}
	slices.Sort(xs)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := xs[int(math.Ceil(q*float64(len(xs))))-1]
		got := h.Quantile(q)
		if got < want || float64(got) > float64(want)*histGrowth*1.0001 {
			t.Errorf("q%.3f: %v, want within one bucket above %v", q, got, want)
		}
	}
	var empty Hist
	if empty.Quantile(0.99) != 0 {
		t.Error("an empty histogram has no quantile")
	}
	h.Add(time.Hour)
	if h.Quantile(1) < 100*time.Second {
		t.Errorf("a latency past the last bucket reads as %v", h.Quantile(1))
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name may hold spaces and parentheses.
	line := "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 100 0 0\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 3800*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 3.8s", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) took a malformed line", bad)
		}
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Errorf("reading this process's CPU time: %v", err)
	}
}

func TestLoadIsValidated(t *testing.T) {
	ok := Load{Clients: 4, Duration: time.Second, Timeout: time.Second, Keys: 100, Value: 10, Pipeline: 16, MultiKey: 10}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Load){
		"no clients":        func(l *Load) { l.Clients = 0 },
		"no duration":       func(l *Load) { l.Duration = 0 },
		"huge values":       func(l *Load) { l.Value = 1 << 30 },
		"keys too few":      func(l *Load) { l.Keys = 15 },
		"pipeline of none":  func(l *Load) { l.Pipeline = 0 },
		"negative warm-up":  func(l *Load) { l.Warmup = -time.Second },
		"no request bounds": func(l *Load) { l.Timeout = 0 },
	} {
		l := ok
		mut(&l)
		if l.validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSideBySide runs every workload briefly on a real Kintsu cluster and
// a real redis-server, and checks each was measured: operations counted,
// no errors, the servers' CPU read. A system that cannot start is
// reported without stopping the others.
func TestSideBySide(t *testing.T) {
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required under CI=true (install it: see .ci/run)")
		}
		t.Skip("redis-server not installed; skipping (install Debian's redis-server to run it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress strings.Builder
	dir := t.TempDir()
	rep, err := Run(ctx, Options{
		Systems: []System{
			Kintsu(kintsuBinary, 17800, []string{"--partitions", "8"}, true), // fewer partitions balance sooner
			Redis("/nonexistent/redis-server", 18100, "always"),
			Redis(redisServer, 18100, "everysec"),
		},
		Workloads: Workloads,
		Dir:       dir,
		Progress:  &progress,
		Seed:      1,
		Load:      Load{Clients: 8, Duration: 400 * time.Millisecond, Keys: 1000, Value: 100, Pipeline: 16, MultiKey: 10, Timeout: 10 * time.Second},
	})
	t.Log(progress.String())
	if err == nil || !strings.Contains(err.Error(), "redis-aof-always") {
		t.Errorf("the system that could not start is not reported: %v", err)
	}
	want := map[string]bool{"kintsu": true, "redis-aof-everysec": true}
	if len(rep.Rows) != len(want)*len(Workloads) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(want)*len(Workloads))
	}
	if ps, _ := filepath.Glob(filepath.Join(dir, "kintsu-write-node*.pprof")); len(ps) != 3 {
		t.Errorf("profiles of the write workload: %v, want one per node", ps)
	}
	var cpu time.Duration
	for _, r := range rep.Rows {
		if !want[r.System] || r.Skipped || r.Ops == 0 || r.Errors != 0 || r.Hist.Count() == 0 {
			t.Errorf("%s %s: %d ops, %d errors (%s), skipped %v", r.System, r.Workload, r.Ops, r.Errors, r.FirstErr, r.Skipped)
		}
		if r.Workload == Pipelined && r.Ops%16 != 0 {
			t.Errorf("%s pipelined: %d ops is not a whole number of 16-SET pipelines", r.System, r.Ops)
		}
		cpu += r.CPU
	}
	if cpu <= 0 {
		t.Error("no server CPU time was read")
	}
	var table strings.Builder
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "redis-aof-everysec") || !strings.Contains(table.String(), "×") {
		t.Errorf("the table lacks a peer's row or its ratios:\n%s", table.String())
	}
}
