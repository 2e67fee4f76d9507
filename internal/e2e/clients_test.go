package e2e

import (
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
)

func run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func hostPort(t *testing.T, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// TestRedisCLI: redis-cli sets and gets through every node.
func TestRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli")
	c := startCluster(t, 3)
	for _, w := range c.Nodes() {
		h, p := hostPort(t, w.RESPAddr)
		if out := run(t, 10*time.Second, cli, "-h", h, "-p", p, "set", "cli-key", w.RESPAddr); strings.TrimSpace(out) != "OK" {
			t.Fatalf("redis-cli set via %s: %q", w.RESPAddr, out)
		}
		for _, r := range c.Nodes() {
			h, p := hostPort(t, r.RESPAddr)
			if out := run(t, 10*time.Second, cli, "-h", h, "-p", p, "get", "cli-key"); strings.TrimSpace(out) != w.RESPAddr {
				t.Fatalf("redis-cli get via %s after set via %s: %q", r.RESPAddr, w.RESPAddr, out)
			}
		}
	}
	h, p := hostPort(t, c.Nodes()[0].RESPAddr)
	if out := run(t, 10*time.Second, cli, "-h", h, "-p", p, "ping"); strings.TrimSpace(out) != "PONG" {
		t.Fatalf("ping: %q", out)
	}
	// redis-cli prints server errors as "(error) ..." only on a tty; here
	// it prints the text.
	if out := run(t, 10*time.Second, cli, "-h", h, "-p", p, "incr", "cli-key"); !strings.Contains(out, "ERR value is not an integer") {
		t.Fatalf("incr of a non-number: %q", out)
	}
}

// TestRedisCLITransaction: the acceptance example of cross-partition
// transactions, typed into redis-cli: MULTI, SET a 1, SET b 2, INCR c,
// EXEC with a, b and c in three partitions answers three replies, and
// every node then shows all three effects.
func TestRedisCLITransaction(t *testing.T) {
	cli := needTool(t, "redis-cli")
	parts := map[int]bool{}
	for _, k := range []string{"a", "b", "c"} {
		parts[ring.PartitionOf(ring.Slot([]byte(k)), partitions)] = true
	}
	if len(parts) != 3 {
		t.Fatalf("a, b and c are not in three partitions of %d", partitions)
	}
	c := startCluster(t, 3)
	h, p := hostPort(t, c.Nodes()[0].RESPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "-h", h, "-p", p)
	cmd.Stdin = strings.NewReader("MULTI\nSET a 1\nSET b 2\nINCR c\nEXEC\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	if got, want := strings.Fields(string(out)), []string{"OK", "QUEUED", "QUEUED", "QUEUED", "OK", "OK", "1"}; !slices.Equal(got, want) {
		t.Fatalf("redis-cli transaction printed %q, want %q", got, want)
	}
	for _, n := range c.Nodes() {
		h, p := hostPort(t, n.RESPAddr)
		if got := strings.Fields(run(t, 10*time.Second, cli, "-h", h, "-p", p, "mget", "a", "b", "c")); !slices.Equal(got, []string{"1", "2", "1"}) {
			t.Fatalf("MGET a b c via %s = %q", n.RESPAddr, got)
		}
	}
}

// TestRedisBenchmark: redis-benchmark completes against a node with no
// errors. (The documented throughput run is in docs/benchmarks.md; this
// only checks that the tool works.)
func TestRedisBenchmark(t *testing.T) {
	bench := needTool(t, "redis-benchmark")
	c := startCluster(t, 3)
	h, p := hostPort(t, c.Nodes()[1].RESPAddr)
	out := run(t, 5*time.Minute, bench, "-h", h, "-p", p, "-t", "set,get", "-n", "10000", "-c", "50", "--csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], `"SET"`) || !strings.HasPrefix(lines[2], `"GET"`) {
		t.Fatalf("unexpected redis-benchmark output:\n%s", out)
	}
	if strings.Contains(out, "ERR") || strings.Contains(out, "Error") {
		t.Fatalf("redis-benchmark reported errors:\n%s", out)
	}
	t.Logf("redis-benchmark:\n%s", out)
}

const pythonScript = `
import sys, redis
host, port = sys.argv[1], int(sys.argv[2])
r = redis.Redis(host=host, port=port)
assert r.ping()
assert r.set("py-key", "py-value")
assert r.get("py-key") == b"py-value", r.get("py-key")
assert r.incr("py-counter") == 1
assert r.incrby("py-counter", 9) == 10
assert r.append("py-s", "ab") == 2
assert r.mset({"{py}a": "1", "{py}b": "2"})
assert r.mget("{py}a", "{py}b", "{py}c") == [b"1", b"2", None]
assert r.delete("py-key") == 1
assert r.get("py-key") is None
try:
    r.incr("py-s")
    raise SystemExit("incr of a non-number did not fail")
except redis.ResponseError as e:
    assert "not an integer" in str(e), e
p = r.pipeline(transaction=False)
for i in range(100):
    p.incr("py-pipe")
assert p.execute() == list(range(1, 101))
# The data types, as applications use them: hash sessions, a queue, a
# leaderboard, tags.
assert r.hset("py:session", mapping={"user": "ada", "visits": "1"}) == 2
assert r.hincrby("py:session", "visits", 2) == 3
assert r.hgetall("py:session") == {b"user": b"ada", b"visits": b"3"}
assert r.rpush("py:queue", "job1", "job2", "job3") == 3
assert r.lpop("py:queue") == b"job1"
assert r.lrange("py:queue", 0, -1) == [b"job2", b"job3"]
r.zadd("py:board", {"ada": 30, "bob": 10, "cy": 20})
assert r.zincrby("py:board", 25, "bob") == 35.0
assert r.zrevrange("py:board", 0, 1, withscores=True) == [(b"bob", 35.0), (b"ada", 30.0)]
assert r.zrank("py:board", "cy") == 0
assert r.sadd("py:tags", "a", "b", "a") == 2
assert r.smembers("py:tags") == {b"a", b"b"}
assert r.type("py:board") == b"zset"
assert sorted(r.hscan_iter("py:session")) == [(b"user", b"ada"), (b"visits", b"3")]
try:
    r.lpush("py:session", "x")
    raise SystemExit("LPUSH on a hash did not fail")
except redis.ResponseError as e:
    assert "WRONGTYPE" in str(e), e
# Through the cluster-aware client: keys spread over every partition.
from redis.cluster import RedisCluster
rc = RedisCluster(host=host, port=port)
for i in range(50):
    rc.zadd("py:lb:%d" % i, {"m%d" % i: i})
    rc.rpush("py:q:%d" % i, i)
    rc.hset("py:h:%d" % i, "f", i)
assert all(rc.zscore("py:lb:%d" % i, "m%d" % i) == i for i in range(50))
assert all(rc.lpop("py:q:%d" % i) == str(i).encode() for i in range(50))
assert all(rc.hget("py:h:%d" % i, "f") == str(i).encode() for i in range(50))
# Locks and scripts (redis-py's Lock runs EVALSHA), through both clients.
for cl in (r, rc):
    lock = cl.lock("py:lock", timeout=5)
    assert lock.acquire(blocking=False)
    assert not cl.lock("py:lock").acquire(blocking=False)
    assert lock.extend(5)
    assert 5000 < cl.pttl("py:lock") <= 10000, cl.pttl("py:lock")
    lock.release()
    assert cl.get("py:lock") is None
    try:
        lock.release()
        raise SystemExit("releasing a released lock did not fail")
    except redis.exceptions.LockError:
        pass
    bump = cl.register_script("local n = redis.call('incrby', KEYS[1], ARGV[1]); redis.call('rpush', KEYS[2], n); return n")
    assert bump(keys=["{py}n", "{py}log"], args=[5]) == 5
    assert bump(keys=["{py}n", "{py}log"], args=[5]) == 10
    cl.delete("{py}n", "{py}log")
    try:
        cl.eval("return redis.call('incr', KEYS[1])", 1, "py:lb:1")
        raise SystemExit("a script's error did not reach the client")
    except redis.ResponseError as e:
        assert "WRONGTYPE" in str(e), e
print("python redis ok")
`

// TestPythonRedis: Debian's python3-redis, default options.
func TestPythonRedis(t *testing.T) {
	py := needTool(t, "python3")
	if err := exec.Command(py, "-c", "import redis").Run(); err != nil {
		// Debian's python3-redis serves Debian's own /usr/bin/python3.
		if _, statErr := exec.LookPath("/usr/bin/python3"); statErr == nil && exec.Command("/usr/bin/python3", "-c", "import redis").Run() == nil {
			py = "/usr/bin/python3"
		} else {
			needTool(t, "python3-redis (the redis module)")
		}
	}
	c := startCluster(t, 3)
	h, p := hostPort(t, c.Nodes()[2].RESPAddr)
	if out := run(t, time.Minute, py, "-c", pythonScript, h, p); !strings.Contains(out, "python redis ok") {
		t.Fatalf("python: %s", out)
	}
}
