package bench

import (
	"context"
	"errors"
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

// slowClient answers every call after a fixed delay, failing while fail
// says so, and blocking until its deadline when stall says so.
type slowClient struct {
	delay time.Duration
	fail  func() bool
	stall bool
}

func (c *slowClient) do(ctx context.Context) error {
	if c.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.fail != nil && c.fail() {
		return errors.New("refused")
	}
	return nil
}

func (c *slowClient) Set(ctx context.Context, _ string, _ []byte) error    { return c.do(ctx) }
func (c *slowClient) Get(ctx context.Context, _ string) error              { return c.do(ctx) }
func (c *slowClient) MSet(ctx context.Context, _ []string, _ []byte) error { return c.do(ctx) }
func (c *slowClient) PipeSet(ctx context.Context, _ []string, _ []byte) (bool, error) {
	return true, c.do(ctx)
}

// TestDriveCountsByWindow checks the measuring rules with clients whose
// behaviour is known: failures during the warm-up are not counted, a
// request that times out across the window's end still counts as an
// error, pipelines count every command, and CPU is sampled at the
// window's edges.
func TestDriveCountsByWindow(t *testing.T) {
	l := Load{Clients: 2, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Timeout: time.Second,
		Keys: 100, Value: 10, Pipeline: 16, MultiKey: 10}
	ctx := context.Background()

	start := time.Now()
	warmupOnly := func() bool { return time.Since(start) < l.Warmup/2 }
	var samples int
	m := drive(ctx, []Client{&slowClient{delay: time.Millisecond, fail: warmupOnly}, &slowClient{delay: time.Millisecond}},
		Pipelined, l, 1, func() (time.Duration, error) { samples++; return time.Duration(samples) * time.Second, nil })
	if m.Errors != 0 || m.Ops == 0 || m.Ops%16 != 0 || m.Hist.Count() == 0 {
		t.Errorf("warm-up failures or pipeline counting: %d ops, %d errors (%s)", m.Ops, m.Errors, m.FirstErr)
	}
	if !m.CPUKnown || m.CPU != time.Second || samples != 2 {
		t.Errorf("CPU sampled %d times, %v (known %v); want the two window edges, 1s apart", samples, m.CPU, m.CPUKnown)
	}

	// Every request stalls until its deadline (450ms), longer than the
	// measured window: none succeeds, and the ones ending after the window
	// are errors all the same.
	l.Timeout = 450 * time.Millisecond
	m = drive(ctx, []Client{&slowClient{stall: true}}, Write, l, 1, nil)
	if m.Ops != 0 || m.Errors == 0 {
		t.Errorf("a stalled system: %d ops, %d errors; want 0 ops and its timeouts counted", m.Ops, m.Errors)
	}

	// Cancelled inside the window: marked, not reported as a full window.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(l.Warmup+50*time.Millisecond, cancel)
	m = drive(cctx, []Client{&slowClient{delay: time.Millisecond}}, Write, l, 1, func() (time.Duration, error) { return 0, nil })
	if !m.Interrupted || m.CPUKnown || m.Elapsed >= l.Duration {
		t.Errorf("an interrupted window: interrupted %v, CPU known %v, elapsed %v", m.Interrupted, m.CPUKnown, m.Elapsed)
	}
}

func TestClaimDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ClaimDir(dir) == nil {
		t.Fatal("claimed a directory holding someone's files")
	}
	fresh := filepath.Join(dir, "run")
	if err := ClaimDir(fresh); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(fresh, "kintsu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ClaimDir(fresh); err != nil {
		t.Errorf("a directory an earlier run used: %v", err)
	}
}

// freePorts returns a base port b such that b+off is free for every off.
// Other test packages pick ports too; probing first makes a collision
// unlikely, and the systems' own port checks make one a clear error.
func freePorts(t *testing.T, offs ...int) int {
	t.Helper()
	for range 100 {
		b := 23000 + rand.IntN(8000)
		if portsFree(func() []int {
			var ps []int
			for _, o := range offs {
				ps = append(ps, b+o)
			}
			return ps
		}()...) == nil {
			return b
		}
	}
	t.Fatal("no free ports")
	return 0
}

// needTool returns the path of an outside program, skipping the test when
// it is missing — except under CI=true, where that is a failure.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true (install it: see .ci/run)", name)
		}
		t.Skipf("%s not installed; skipping (install Debian's %s to run it)", name, pkg)
	}
	return p
}

// TestSideBySide runs every workload briefly on a real Kintsu cluster, a
// real etcd cluster and a real redis-server, and checks each was
// measured: operations counted, no errors, the servers' CPU read. A
// system that cannot start is reported without stopping the others.
func TestSideBySide(t *testing.T) {
	redisServer := needTool(t, "redis-server", "redis-server")
	etcd := needTool(t, "etcd", "etcd-server")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress strings.Builder
	dir := t.TempDir()
	// Kintsu: base+1..3, +1001..3, +10001..3 (the launcher's layout);
	// etcd: base+201..213; redis: base+300.
	base := freePorts(t, 1, 2, 3, 1001, 1002, 1003, 10001, 10002, 10003, 201, 202, 203, 211, 212, 213, 300)
	rep, err := Run(ctx, Options{
		Systems: []System{
			Kintsu(kintsuBinary, base, []string{"--partitions", "8"}, true), // fewer partitions balance sooner
			Redis("/nonexistent/redis-server", base+300, "always"),
			Etcd(etcd, base+200),
			Redis(redisServer, base+300, "everysec"),
		},
		Workloads: Workloads,
		Dir:       dir,
		Progress:  &progress,
		Seed:      1,
		Load:      Load{Clients: 8, Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, Keys: 1000, Value: 100, Pipeline: 16, MultiKey: 10, Timeout: 10 * time.Second},
	})
	t.Log(progress.String())
	if err == nil || !strings.Contains(err.Error(), "redis-aof-always") {
		t.Errorf("the system that could not start is not reported: %v", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	want := map[string]bool{"kintsu": true, "etcd": true, "redis-aof-everysec": true}
	if len(rep.Rows) != len(want)*len(Workloads) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(want)*len(Workloads))
	}
	if ps, _ := filepath.Glob(filepath.Join(dir, "kintsu-write-node*.pprof")); len(ps) != 3 {
		t.Errorf("profiles of the write workload: %v, want one per node", ps)
	}
	for _, r := range rep.Rows {
		if r.System == "etcd" && r.Workload == Pipelined {
			if !r.Skipped {
				t.Error("etcd has no pipelining, yet its pipelined row was measured")
			}
			continue
		}
		if !want[r.System] || r.Skipped || r.Ops == 0 || r.Errors != 0 || r.Hist.Count() == 0 {
			t.Errorf("%s %s: %d ops, %d errors (%s), skipped %v", r.System, r.Workload, r.Ops, r.Errors, r.FirstErr, r.Skipped)
		}
		if r.Workload == Pipelined && r.Ops%16 != 0 {
			t.Errorf("%s pipelined: %d ops is not a whole number of 16-SET pipelines", r.System, r.Ops)
		}
		if r.Workload == Write && (!r.CPUKnown || r.CPU <= 0) {
			t.Errorf("%s write: the servers' CPU was not read (%v, known %v)", r.System, r.CPU, r.CPUKnown)
		}
	}
	var table strings.Builder
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"redis-aof-everysec", "etcd", "×"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, table.String())
		}
	}
}
