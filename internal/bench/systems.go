package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/launcher"
)

// System is one system under test, not yet started.
type System struct {
	Name  string
	start func(ctx context.Context, dir string, clients int) (*running, error)
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
	return System{Name: "kintsu", start: func(ctx context.Context, dir string, n int) (*running, error) {
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
			DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
			MaxRedirects: 8,
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
					urls = append(urls, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ni.HTTPAddr, max(1, int(d.Seconds()))))
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
	hc := &http.Client{Timeout: timeout}
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
	_, err = io.Copy(f, io.LimitReader(resp.Body, 256<<20))
	return errors.Join(err, f.Close())
}

// waitBalanced polls /v1/status until every partition has a leader and no
// node leads two more partitions than another.
func waitBalanced(ctx context.Context, url string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
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
			if led && hi-lo <= 1 {
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
	return System{Name: "etcd", start: func(ctx context.Context, dir string, n int) (*running, error) {
		const members = 3
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
			}, filepath.Join(md, "etcd.log"))
			if err != nil {
				return nil, errors.Join(err, stopAll())
			}
			procs = append(procs, p)
		}
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		hc := &http.Client{Timeout: 2 * time.Second}
		for i := 1; i <= members; i++ {
			if err := waitHTTP(rctx, hc, fmt.Sprintf("http://127.0.0.1:%d/health", basePort+i), `"health":"true"`, procs[i-1]); err != nil {
				return nil, errors.Join(err, stopAll())
			}
			conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", basePort+i), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, errors.Join(err, closeConns(), stopAll())
			}
			conns = append(conns, conn)
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
			var buf [4096]byte
			k, _ := resp.Body.Read(buf[:])
			resp.Body.Close()
			if strings.Contains(string(buf[:k]), want) {
				return nil
			}
			last = strings.TrimSpace(string(buf[:k]))
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
	return System{Name: "redis-aof-" + fsync, start: func(ctx context.Context, dir string, n int) (*running, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p, err := startProc("redis-server", binary, []string{
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", fsync, "--save", "",
			"--protected-mode", "yes", "--daemonize", "no",
		}, filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		rc := redis.NewClient(&redis.Options{
			Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: n, MinIdleConns: n,
			DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
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
		return &running{
			pids:    func() []int { return []int{p.pid()} },
			clients: repeat(respClient{rc}, n),
			stop:    func() error { return errors.Join(rc.Close(), p.stop()) },
		}, nil
	}}
}

func repeat(c Client, n int) []Client {
	cs := make([]Client, n)
	for i := range cs {
		cs[i] = c
	}
	return cs
}
