package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
)

// System is one system under test, not yet started.
type System struct {
	Name  string
	start func(ctx context.Context, dir string, l Load) (*running, error)
}

// running is a started system: its server processes, a client per
// worker, and how to stop it all.
type running struct {
	pids    func() []int
	clients []Client
	stop    func() error
	// profile, where the system offers it, writes a CPU profile of each
	// server process over the next d to files named prefix-<node>.pprof.
	profile func(ctx context.Context, d time.Duration, prefix string) error
}

// readyTimeout bounds each system's start-up.
const readyTimeout = 150 * time.Second

// Kintsu is a 3-node cluster of binary on loopback from basePort (see
// package launcher), measured once every node is ready and leadership is
// balanced, so no election or leader move lands in a measurement.
//
// With profile, the nodes serve pprof and each workload leaves a CPU
// profile of every node.
func Kintsu(binary string, basePort int, extraArgs []string, profile bool) System {
	if profile {
		extraArgs = append(slices.Clone(extraArgs), "--enable-pprof")
	}
	return System{Name: "kintsu", start: func(ctx context.Context, dir string, l Load) (*running, error) {
		n := l.Clients
		c, err := launcher.Start(launcher.Options{Binary: binary, Dir: dir, BasePort: basePort, ExtraArgs: extraArgs})
		if err != nil {
			return nil, err
		}
		stop := func() error { return c.StopAll(10 * time.Second) }
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := c.WaitReady(rctx); err != nil {
			return nil, errors.Join(err, stop())
		}
		if err := waitBalanced(rctx, "http://"+c.Node(1).HTTPAddr+"/v1/status"); err != nil {
			return nil, errors.Join(err, stop())
		}
		var addrs []string
		for _, ni := range c.Nodes() {
			addrs = append(addrs, ni.RESPAddr)
		}
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, PoolSize: n, MinIdleConns: n / len(addrs),
			DialTimeout: 2 * time.Second, ReadTimeout: l.Timeout, WriteTimeout: l.Timeout,
			ContextTimeoutEnabled: true, MaxRedirects: 8,
		})
		if err := cc.Ping(rctx).Err(); err != nil {
			return nil, errors.Join(fmt.Errorf("bench: kintsu: %w", err), cc.Close(), stop())
		}
		pids := func() []int {
			var ps []int
			for _, ni := range c.Nodes() {
				ps = append(ps, c.PID(ni.ID))
			}
			return ps
		}
		r := &running{pids: pids, clients: repeat(respClient{cc}, n), stop: func() error { return errors.Join(cc.Close(), stop()) }}
		if profile {
			r.profile = func(ctx context.Context, d time.Duration, prefix string) error {
				var urls, files []string
				for _, ni := range c.Nodes() {
					urls = append(urls, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ni.HTTPAddr, int(max(time.Second, d.Round(time.Second)).Seconds())))
					files = append(files, fmt.Sprintf("%s-node%d.pprof", prefix, ni.ID))
				}
				return fetchAll(ctx, d+10*time.Second, urls, files)
			}
		}
		return r, nil
	}}
}

// fetchAll downloads each url into its file, all at once, within timeout.
func fetchAll(ctx context.Context, timeout time.Duration, urls, files []string) error {
	hc := &http.Client{Timeout: timeout, Transport: noKeepAlive()}
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetchTo(ctx, hc, urls[i], files[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fetchTo(ctx context.Context, hc *http.Client, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.LimitReader(resp.Body, maxProfile))
	if err = errors.Join(err, f.Close()); err != nil {
		_ = os.Remove(file) // no partial profile left behind
	}
	return err
}

// waitBalanced polls /v1/status until every partition has a leader and no
// node leads two more partitions than another.
func waitBalanced(ctx context.Context, url string) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: noKeepAlive()}
	last := "no answer"
	for {
		if s, err := fetchStatus(ctx, hc, url); err == nil {
			counts := map[uint64]int{}
			for _, n := range s.Nodes {
				counts[n.ID] = 0
			}
			led := true
			for _, p := range s.Partitions {
				led = led && p.Leader != 0
				counts[p.Leader]++
			}
			lo, hi := len(s.Partitions), 0
			for _, c := range counts {
				lo, hi = min(lo, c), max(hi, c)
			}
			if led && len(s.Partitions) > 0 && hi-lo <= 1 {
				return nil
			}
			last = fmt.Sprintf("partitions led per node %v", counts)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: kintsu's leadership not balanced in time (%s)", last)
		case <-time.After(500 * time.Millisecond): // polling the nodes' own balancing
		}
	}
}

func fetchStatus(ctx context.Context, hc *http.Client, url string) (*api.StatusJSON, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var s api.StatusJSON
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 8<<20)).Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Etcd is a 3-member etcd cluster of binary on loopback: member i serves
// clients on basePort+i and peers on basePort+10+i. Each worker talks to
// one member, round robin, over one gRPC connection per member, as etcd's
// own client multiplexes its requests.
func Etcd(binary string, basePort int) System {
	return System{Name: "etcd", start: func(ctx context.Context, dir string, l Load) (*running, error) {
		const members = 3
		n := l.Clients
		var ports []int
		for i := 1; i <= members; i++ {
			ports = append(ports, basePort+i, basePort+10+i)
		}
		if err := portsFree(ports...); err != nil {
			return nil, err
		}
		var initial []string
		for i := 1; i <= members; i++ {
			initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, basePort+10+i))
		}
		var procs []*proc
		stopAll := func() error {
			var errs []error
			for _, p := range procs {
				errs = append(errs, p.stop())
			}
			return errors.Join(errs...)
		}
		var conns []*grpc.ClientConn
		closeConns := func() error {
			var errs []error
			for _, c := range conns {
				errs = append(errs, c.Close())
			}
			return errors.Join(errs...)
		}
		for i := 1; i <= members; i++ {
			client := fmt.Sprintf("http://127.0.0.1:%d", basePort+i)
			peer := fmt.Sprintf("http://127.0.0.1:%d", basePort+10+i)
			md := filepath.Join(dir, fmt.Sprintf("m%d", i))
			if err := os.MkdirAll(md, 0o755); err != nil {
				return nil, errors.Join(err, stopAll())
			}
			p, err := startProc(fmt.Sprintf("etcd m%d", i), binary, []string{
				"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(md, "data"),
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
				"--initial-cluster-token", "kintsu-bench", "--log-level", "warn",
				// Keep the MVCC history short, as a deployment would:
				// five workloads of overwrites would otherwise grow it
				// toward the backend quota.
				"--auto-compaction-mode", "revision", "--auto-compaction-retention", "10000",
			}, filepath.Join(md, "etcd.log"))
			if err != nil {
				return nil, errors.Join(err, stopAll())
			}
			procs = append(procs, p)
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		hc := &http.Client{Timeout: 2 * time.Second, Transport: noKeepAlive()}
		for i := 1; i <= members; i++ {
			if err := waitHTTP(rctx, hc, fmt.Sprintf("http://127.0.0.1:%d/health", basePort+i), `"health":"true"`, procs[i-1]); err != nil {
				return nil, errors.Join(err, stopAll())
			}
			conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", basePort+i), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, errors.Join(err, closeConns(), stopAll())
			}
			conns = append(conns, conn)
			// Dial now, not inside the first measured requests.
			if _, err := pb.NewKVClient(conn).Range(rctx, &pb.RangeRequest{Key: []byte("kintsu-bench")}); err != nil {
				return nil, errors.Join(fmt.Errorf("bench: etcd m%d: %w", i, err), closeConns(), stopAll())
			}
		}
		// Our members answered, not leftovers of an earlier run: a member
		// that lost its ports to one has exited by now.
		for _, p := range procs {
			if p.exited() {
				return nil, errors.Join(fmt.Errorf("bench: %s exited during start-up (see its log)", p.name), closeConns(), stopAll())
			}
		}
		cs := make([]Client, n)
		for i := range cs {
			cs[i] = newEtcdClient(conns[i%len(conns)])
		}
		pids := func() []int {
			var ps []int
			for _, p := range procs {
				ps = append(ps, p.pid())
			}
			return ps
		}
		return &running{pids: pids, clients: cs, stop: func() error { return errors.Join(closeConns(), stopAll()) }}, nil
	}}
}

// waitHTTP polls url until its body holds want, failing early if p exits.
func waitHTTP(ctx context.Context, hc *http.Client, url, want string, p *proc) error {
	last := "no answer"
	for {
		if p.exited() {
			return fmt.Errorf("bench: %s exited during start-up (see its log)", p.name)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return nil
			}
			last = strings.TrimSpace(string(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s not healthy in time (%s)", p.name, last)
		case <-time.After(200 * time.Millisecond): // polling its health endpoint
		}
	}
}

// Redis is a single redis-server on port with its append-only file synced
// as fsync says: "everysec" (Redis's default once AOF is on) or "always"
// (every write synced before its reply, as Kintsu and etcd do).
func Redis(binary string, port int, fsync string) System {
	return System{Name: "redis-aof-" + fsync, start: func(ctx context.Context, dir string, l Load) (*running, error) {
		n := l.Clients
		if err := portsFree(port); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p, err := startProc("redis-server", binary, []string{
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", fsync, "--save", "",
			"--protected-mode", "yes", "--daemonize", "no",
			// No AOF rewrite: its forked child's CPU would escape the
			// accounting, and a rewrite mid-workload is not what is measured.
			"--auto-aof-rewrite-percentage", "0",
		}, filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		rc := redis.NewClient(&redis.Options{
			Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: n, MinIdleConns: n,
			DialTimeout: 2 * time.Second, ReadTimeout: l.Timeout, WriteTimeout: l.Timeout,
			ContextTimeoutEnabled: true,
		})
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		for rc.Ping(rctx).Err() != nil {
			if p.exited() || rctx.Err() != nil {
				return nil, errors.Join(fmt.Errorf("bench: redis-server did not start (see %s)", filepath.Join(dir, "redis.log")), rc.Close(), p.stop())
			}
			select {
			case <-rctx.Done():
			case <-time.After(100 * time.Millisecond): // polling its port
			}
		}
		// The server that answered is ours, not a leftover on the port.
		info, err := rc.Info(rctx, "server").Result()
		if err != nil || !strings.Contains(info, fmt.Sprintf("process_id:%d\r\n", p.pid())) {
			return nil, errors.Join(fmt.Errorf("bench: another redis-server answers on port %d", port), err, rc.Close(), p.stop())
		}
		return &running{
			pids:    func() []int { return []int{p.pid()} },
			clients: repeat(respClient{rc}, n),
			stop:    func() error { return errors.Join(rc.Close(), p.stop()) },
		}, nil
	}}
}

// maxProfile bounds a downloaded CPU profile.
const maxProfile = 256 << 20

// noKeepAlive: the run's few HTTP probes leave no idle connection (or its
// goroutines) behind.
func noKeepAlive() *http.Transport { return &http.Transport{DisableKeepAlives: true} }

// portsFree fails on the first port that cannot be listened on: a peer
// started on a busy port would exit, and the run would measure whatever
// holds the port.
func portsFree(ports ...int) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return fmt.Errorf("bench: port %d is busy (a leftover server?): %w", p, err)
		}
		l.Close()
	}
	return nil
}

func repeat(c Client, n int) []Client {
	cs := make([]Client, n)
	for i := range cs {
		cs[i] = c
	}
	return cs
}
