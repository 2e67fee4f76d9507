package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
)

var (
	moveAcceptance = flag.Bool("move.acceptance", false, "run TestReplicaMoveRate: a replica of a 256 MiB partition moves to a new node under foreground load (minutes)")
	moveRate       = flag.String("move.rate", "128MiB", "TestReplicaMoveRate's --snapshot-rate")
	moveCPUs       = flag.Float64("move.cpus", 0, "TestReplicaMoveRate: each node's CPU budget in cores, as a host of its own would have (0: the nodes share the machine)")
	moveProfile    = flag.String("move.profile", "", "TestReplicaMoveRate: leave a CPU profile of each node, taken from the decommission on for 10 s, in this directory (nodeN.pprof)")
)

// TestReplicaMoveRate is issue 20's fifth deliverable measured, behind
// -move.acceptance: a 3-node cluster holds one partition of about 256 MiB;
// a fourth node joins and the first is decommissioned, so one replica
// moves, as a snapshot streamed into sstables on the new node and
// ingested, while a foreground of small SETs and GETs runs; then, with
// the foreground stopped, a fifth node joins and the second leaves. The
// test wants the foreground's p99 while the first snapshot streams
// within twice the one of the 10 s before it, and the second move at
// least 100 MB/s (when --snapshot-rate allows it): rates from the new
// node's log, bytes and time from the first byte to the last.
func TestReplicaMoveRate(t *testing.T) {
	if !*moveAcceptance {
		t.Skip("minutes of load: run with -move.acceptance (go test ./internal/e2e -run TestReplicaMoveRate -move.acceptance -timeout 20m)")
	}
	var wrap func(id uint64) []string
	if *moveCPUs > 0 {
		wrap, _ = cpuBudgets(t, 5, *moveCPUs)
	}
	c := launch(t, func(base int, dir string) launcher.Options {
		return launcher.Options{Binary: binary, Nodes: 3, Dir: dir, BasePort: base, Partitions: 1, Replicas: 3, Wrap: wrap,
			ExtraArgs: append([]string{"--split-size", "0", "--snapshot-rate", *moveRate}, profileArgs()...)}
	})
	t.Cleanup(func() { _ = c.StopAll(15 * time.Second) })
	var addrs []string
	for _, nd := range c.Nodes() {
		addrs = append(addrs, nd.RESPAddr)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, PoolSize: 64})
	defer cc.Close()

	// The bulk: 256 MiB of 4 KiB values, pipelined.
	const (
		workers   = 16
		valueSize = 4096
		total     = 256 << 20
		perWorker = total / valueSize / workers
		pipe      = 32
	)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := strings.Repeat(fmt.Sprintf("%x", w), valueSize)[:valueSize]
			for i := 0; i < perWorker; i += pipe {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				p := cc.Pipeline()
				for j := i; j < min(i+pipe, perWorker); j++ {
					p.Set(ctx, fmt.Sprintf("bulk:%d:%d", w, j), v, 0)
				}
				if _, err := p.Exec(ctx); err != nil {
					failed.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d bulk pipelines failed", n)
	}
	t.Logf("%d MiB written in %v", total>>20, time.Since(start).Round(time.Second))

	// The foreground: closed-loop SET and GET of small values, each
	// latency kept with its start time.
	type sample struct {
		at time.Time
		d  time.Duration
	}
	var (
		mu      sync.Mutex
		samples []sample
		fgErrs  atomic.Int64
	)
	stop := make(chan struct{})
	var fg sync.WaitGroup
	for w := range 8 {
		fg.Add(1)
		go func() {
			defer fg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("fg:%d:%d", w, i%500)
				at := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var err error
				if i%2 == 0 {
					err = cc.Set(ctx, k, "v", 0).Err()
				} else if err = cc.Get(ctx, k).Err(); err == redis.Nil {
					err = nil
				}
				cancel()
				if err != nil {
					fgErrs.Add(1)
					continue
				}
				mu.Lock()
				samples = append(samples, sample{at, time.Since(at)})
				mu.Unlock()
			}
		}()
	}
	var stopOnce sync.Once
	stopForeground := func() { stopOnce.Do(func() { close(stop); fg.Wait() }) }
	defer stopForeground()
	waitFor(t, "15 s of foreground before the move", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(samples) > 0 && time.Since(samples[0].at) > 15*time.Second
	})

	// The gentle move, under the foreground: node 4 joins and node 1
	// leaves, so node 4 receives a replica.
	profiled := func() {}
	inst := moveReplica(t, c, 1, func() { profiled = profileNodes(t, c, 10*time.Second) })
	stopForeground()
	profiled()
	from := inst.at.Add(-inst.took)
	var before, during []time.Duration
	for _, s := range samples {
		switch {
		case s.at.After(from) && s.at.Before(inst.at):
			during = append(during, s.d)
		case s.at.Before(from) && s.at.After(from.Add(-10*time.Second)):
			before = append(before, s.d)
		}
	}
	p99b, p99d := p99(before), p99(during)
	t.Logf("under the foreground: %s at --snapshot-rate %s, %v cores a node (0: shared); foreground p99 %v before (%d ops in 10 s), %v while it streamed (%d ops); %d foreground errors",
		inst, *moveRate, *moveCPUs, p99b, len(before), p99d, len(during), fgErrs.Load())
	if len(during) > 0 && p99d > 2*p99b {
		t.Errorf("foreground p99 %v while the snapshot streamed, over twice the %v before", p99d, p99b)
	}

	// The fast move, with the machine to itself: node 5 joins and node
	// 2 leaves. A move takes the CPU the foreground leaves it (its
	// threads run at a lower priority), so its speed is measured alone.
	inst = moveReplica(t, c, 2, func() {})
	t.Logf("alone: %s at --snapshot-rate %s", inst, *moveRate)
	if n, err := parseBytes(*moveRate); err == nil && (n == 0 || n >= 100e6) && inst.rate() < 100 {
		t.Errorf("the replica moved at %.0f MB/s alone, under 100 MB/s", inst.rate())
	}
}

// moveReplica adds a node, decommissions node leave (calling started
// once it is asked) and returns the snapshot the new node installed.
func moveReplica(t *testing.T, c *launcher.Cluster, leave uint64, started func()) installed {
	t.Helper()
	nd, err := c.AddNode(c.Nodes()[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("node %d to join", nd.ID), 60*time.Second, func() bool {
		for _, n := range status(t, c.Node(3).HTTPAddr).Nodes {
			if n.ID == nd.ID && n.State == api.NodeUp {
				return true
			}
		}
		return false
	})
	resp, err := http.Post(fmt.Sprintf("http://%s/v1/nodes/%d/decommission", c.Node(3).HTTPAddr, leave), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	started()
	var inst installed
	waitFor(t, fmt.Sprintf("node %d to install the partition's snapshot", nd.ID), 5*time.Minute, func() bool {
		var ok bool
		inst, ok = installedSnapshot(t, nd.LogPath, 128<<20)
		return ok
	})
	return inst
}

// installed is a snapshot a node's log says it installed.
type installed struct {
	at    time.Time
	bytes int64
	took  time.Duration
}

// rate is the transfer's speed in MB/s.
func (in installed) rate() float64 { return float64(in.bytes) / 1e6 / max(in.took.Seconds(), 1e-3) }

func (in installed) String() string {
	return fmt.Sprintf("a snapshot of %.0f MB received in %v (%.0f MB/s)", float64(in.bytes)/1e6, in.took.Round(time.Millisecond), in.rate())
}

// installedSnapshot finds, in a node's log, a snapshot of at least min
// bytes it installed.
func installedSnapshot(t *testing.T, logPath string, min int64) (installed, bool) {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		return installed{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="installed snapshot"`) {
			continue
		}
		var in installed
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "time":
				in.at, _ = time.Parse(time.RFC3339Nano, v)
			case "bytes":
				in.bytes, _ = strconv.ParseInt(v, 10, 64)
			case "receive_ms":
				ms, _ := strconv.ParseInt(v, 10, 64)
				in.took = time.Duration(ms) * time.Millisecond
			}
		}
		if in.bytes >= min {
			return in, true
		}
	}
	return installed{}, false
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// parseBytes reads a size such as 128MiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

// profileArgs serves profiles when -move.profile asks for them.
func profileArgs() []string {
	if *moveProfile == "" {
		return nil
	}
	return []string{"--enable-pprof"}
}

// profileNodes starts a CPU profile of every node for d, when
// -move.profile is set; the function it returns waits for them.
func profileNodes(t *testing.T, c *launcher.Cluster, d time.Duration) func() {
	if *moveProfile == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, nd := range c.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", nd.HTTPAddr, int(d.Seconds()))
			res, err := http.Get(url)
			if err != nil {
				t.Logf("profile of node %d: %v", nd.ID, err)
				return
			}
			defer res.Body.Close()
			f, err := os.Create(filepath.Join(*moveProfile, fmt.Sprintf("node%d.pprof", nd.ID)))
			if err != nil {
				t.Logf("profile of node %d: %v", nd.ID, err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, res.Body); err != nil {
				t.Logf("profile of node %d: %v", nd.ID, err)
			}
		}()
	}
	return wg.Wait
}
