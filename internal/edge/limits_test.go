package edge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/metrics"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// bigRouter serves GET of values of any size and SET, drawing reads on the
// connection's reply budget as route.Router does; produced counts the
// reply bytes it built.
type bigRouter struct {
	mu       sync.Mutex
	data     map[string][]byte
	produced atomic.Int64
}

func (r *bigRouter) serve(ctx context.Context, cmds [][][]byte) ([][]byte, []error) {
	b := failure.ReplyBudgetOf(ctx)
	replies := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	for i, args := range cmds {
		if i > 0 && !b.CanStart() {
			errs[i] = failure.ErrNotRun
			continue
		}
		r.mu.Lock()
		switch strings.ToLower(string(args[0])) {
		case "set":
			r.data[string(args[1])] = args[2]
			replies[i] = resp.AppendSimple(nil, "OK")
		case "get":
			replies[i] = resp.AppendBulk(nil, r.data[string(args[1])])
		default:
			replies[i] = resp.AppendInt(nil, 1)
		}
		r.mu.Unlock()
		b.Draw(len(replies[i]))
		r.produced.Add(int64(len(replies[i])))
	}
	return replies, errs
}

func (r *bigRouter) WriteMany(ctx context.Context, _ uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve(context.Background(), cmds) // writes are not budgeted
}
func (r *bigRouter) ReadMany(ctx context.Context, _ uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve(ctx, cmds)
}
func (r *bigRouter) StaleReads(ctx context.Context, _ uint64, cmds [][][]byte) ([][]byte, []error) {
	return r.serve(ctx, cmds)
}
func (r *bigRouter) Read(ctx context.Context, _ uint64, args [][]byte) ([]byte, error) {
	out, errs := r.serve(ctx, [][][]byte{args})
	return out[0], errs[0]
}

type limitsNode struct {
	srv    *Server
	router *bigRouter
	ln     net.Listener
	m      *metrics.Metrics
}

func newLimitsNode(t *testing.T, lim Limits) *limitsNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &limitsNode{router: &bigRouter{data: map[string][]byte{}}, ln: ln, m: metrics.New()}
	ctx, cancel := context.WithCancel(context.Background())
	n.srv = New(ctx, Config{
		NodeID: 1, ClusterID: "test", RESPAddr: "127.0.0.1:7001", Partitions: testPartitions, Replicas: 3,
		RequestTimeout: replyTimeout, Metrics: n.m, Router: n.router, View: newFakeView(1, testPartitions),
		Limits: lim,
	})
	n.srv.adopt(acl.NewTable()) // the node knows its users: none, no password
	served := make(chan struct{})
	go func() { defer close(served); n.srv.Serve(ln) }()
	t.Cleanup(func() {
		n.srv.CloseAll()
		ln.Close()
		<-served
		cancel()
	})
	return n
}

func (n *limitsNode) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", n.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReaderSize(c, 1<<20)
}

func (n *limitsNode) closed(reason string) float64 {
	return value(n.m.ClientsClosed.WithLabelValues(reason))
}

// value reads a counter or a gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// roundTrip sends one command and reads its reply (one line, or a bulk).
func roundTrip(t *testing.T, c net.Conn, rd *bufio.Reader, args ...string) string {
	t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	_ = c.SetDeadline(time.Now().Add(replyTimeout))
	if _, err := c.Write(resp.AppendCommand(nil, bs...)); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return readReply(t, rd)
}

func readReply(t *testing.T, rd *bufio.Reader) string {
	t.Helper()
	line, err := rd.ReadString('\n')
	if err != nil {
		return "closed: " + err.Error()
	}
	if line[0] == '$' && line != "$-1\r\n" {
		var n int
		fmt.Sscanf(line, "$%d", &n)
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "closed: " + err.Error()
		}
		return fmt.Sprintf("bulk %d", n)
	}
	return strings.TrimRight(line, "\r\n")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertClosed reads from c until the node closes it.
func assertClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("%s: still open after 5s", what)
			}
			return
		}
	}
}

func pipelineGets(n int, key string) []byte {
	var b []byte
	for range n {
		b = resp.AppendCommand(b, []byte("GET"), []byte(key))
	}
	return b
}

// TestPipelinedBigReadsAreBounded (audit R-M3): 128 pipelined GETs of a
// big value from a client that reads nothing made the edge build every
// reply before writing one; so did the same GETs behind a write to their
// partition, carried through the log. Now the edge holds about
// replyChunkBytes, another client is served meanwhile, and the slow client
// still gets every reply, in order, once it reads.
func TestPipelinedBigReadsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []byte
	}{
		{"reads", resp.AppendCommand(nil, []byte("GET"), []byte("big"))},
		{"behind a write", resp.AppendCommand(nil, []byte("SET"), []byte("{big}x"), []byte("1"))},
	} {
		t.Run(tc.name, func(t *testing.T) { testBigReadsBounded(t, tc.first) })
	}
}

func testBigReadsBounded(t *testing.T, first []byte) {
	const value = 1 << 20
	n := newLimitsNode(t, Limits{})
	n.router.data["big"] = bytes.Repeat([]byte{'v'}, value)
	slow, slowRd := n.dial(t)
	if _, err := slow.Write(append(first, pipelineGets(127, "big")...)); err != nil {
		t.Fatal(err)
	}
	// Replies held means a write to the client is under way (and blocks
	// once its socket is full).
	waitFor(t, "replies to be held for the client", func() bool { return n.srv.lim.held.Load() > 0 })
	other, otherRd := n.dial(t)
	for range 3 {
		if got := roundTrip(t, other, otherRd, "PING"); got != "+PONG" {
			t.Fatalf("another client's PING: %q", got)
		}
	}
	// The writes to the slow client are blocked on its full socket: what
	// was built is what the kernel took plus at most a round or two, far
	// from 128 values.
	if p := n.router.produced.Load(); p > 40*value {
		t.Fatalf("built %d MiB of replies for a client that reads nothing (bound ~ %d MiB + socket buffers)", p>>20, replyChunkBytes>>20)
	}
	if h := n.srv.lim.held.Load(); h > replyChunkBytes+2*value {
		t.Fatalf("edge holds %d bytes of replies, over %d", h, replyChunkBytes+2*value)
	}
	if got := readReply(t, slowRd); got != "+OK" && got != fmt.Sprintf("bulk %d", value) {
		t.Fatalf("first reply: %q", got)
	}
	for i := range 127 {
		if got := readReply(t, slowRd); got != fmt.Sprintf("bulk %d", value) {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	if got := roundTrip(t, slow, slowRd, "PING"); got != "+PONG" {
		t.Fatalf("slow client after its replies: %q", got)
	}
	waitFor(t, "the held replies to be released", func() bool { return n.srv.lim.held.Load() == 0 })
}

// TestOutputBufferSoftLimitDisconnects: a client whose unwritten replies
// stay over the soft limit for the soft time is closed and counted; the
// node goes on serving.
func TestOutputBufferSoftLimitDisconnects(t *testing.T) {
	n := newLimitsNode(t, Limits{OutputSoft: 1 << 20, OutputSoftTime: 200 * time.Millisecond})
	n.router.data["big"] = bytes.Repeat([]byte{'v'}, 1<<20)
	slow, _ := n.dial(t)
	if _, err := slow.Write(pipelineGets(128, "big")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow client to be closed", func() bool { return n.closed(closedOutputSoft) == 1 })
	assertClosed(t, slow, "slow client")
	c, rd := n.dial(t)
	if got := roundTrip(t, c, rd, "GET", "big"); got != "bulk 1048576" {
		t.Fatalf("another client: %q", got)
	}
}

// TestOutputBufferHardLimitDisconnects: a reply over the hard limit closes
// the client at once.
func TestOutputBufferHardLimitDisconnects(t *testing.T) {
	n := newLimitsNode(t, Limits{OutputHard: 512 << 10})
	n.router.data["big"] = bytes.Repeat([]byte{'v'}, 1<<20)
	c, rd := n.dial(t)
	if got := roundTrip(t, c, rd, "GET", "big"); !strings.HasPrefix(got, "closed") {
		t.Fatalf("GET over the hard limit: %q", got)
	}
	if got := n.closed(closedOutputHard); got != 1 {
		t.Fatalf("closed by hard limit: %v", got)
	}
}

// TestReplyBudgetOfTheNode (maxmemory-clients): several clients that do
// not read their replies together stay under the node's budget: the
// biggest holders are closed, the others and new clients are served.
func TestReplyBudgetOfTheNode(t *testing.T) {
	const budget = 12 << 20
	n := newLimitsNode(t, Limits{ReplyBudget: budget})
	n.router.data["big"] = bytes.Repeat([]byte{'v'}, 1<<20)
	for range 4 {
		c, _ := n.dial(t)
		if _, err := c.Write(pipelineGets(128, "big")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a client to be shed", func() bool { return n.closed(closedReplyNode) >= 1 })
	waitFor(t, "the node's replies under budget", func() bool { return n.srv.lim.held.Load() <= budget })
	c, rd := n.dial(t)
	if got := roundTrip(t, c, rd, "PING"); got != "+PONG" {
		t.Fatalf("new client: %q", got)
	}
}

// TestIdleAndPartialCommandTimeouts (audit R-M4, slowloris): an idle
// client is closed after IdleTimeout, one that started a command and
// stalls after ClientReadTimeout; a client that keeps talking is not.
func TestIdleAndPartialCommandTimeouts(t *testing.T) {
	n := newLimitsNode(t, Limits{ClientReadTimeout: 200 * time.Millisecond})
	stalled, _ := n.dial(t)
	if _, err := stalled.Write([]byte("*2\r\n$3\r\nGET\r\n$3\r\nbi")); err != nil {
		t.Fatal(err)
	}
	idle, idleRd := n.dial(t)
	assertClosed(t, stalled, "half-sent command")
	if got := n.closed(closedReadSlow); got != 1 {
		t.Fatalf("closed by read timeout: %v", got)
	}
	// No idle timeout configured: the idle client lives on.
	if got := roundTrip(t, idle, idleRd, "PING"); got != "+PONG" {
		t.Fatalf("idle client without timeout: %q", got)
	}

	n2 := newLimitsNode(t, Limits{IdleTimeout: 200 * time.Millisecond})
	idle2, _ := n2.dial(t)
	assertClosed(t, idle2, "idle client")
	if got := n2.closed(closedIdle); got != 1 {
		t.Fatalf("closed by idle timeout: %v", got)
	}
}

// TestMaxClients: maxclients is configurable; when full a new client is
// refused with Redis's error, unless a connection has been idle long
// enough to give way.
func TestMaxClients(t *testing.T) {
	n := newLimitsNode(t, Limits{MaxClients: 2})
	a, ard := n.dial(t)
	b, brd := n.dial(t)
	roundTrip(t, a, ard, "PING")
	roundTrip(t, b, brd, "PING")
	c, crd := n.dial(t)
	if got := readReply(t, crd); got != "-ERR max number of clients reached" {
		// Both were idle for evictIdleAfter already: not expected this fast.
		t.Fatalf("third client: %q", got)
	}
	c.Close()
	// Once a client has idled evictIdleAfter, a newcomer takes its place.
	waitFor(t, "an idle client to give way", func() bool {
		d, drd := n.dial(t)
		defer d.Close()
		return roundTrip(t, d, drd, "PING") == "+PONG"
	})
	if got := n.closed(closedMaxClients); got < 1 {
		t.Fatalf("evicted: %v", got)
	}
}

// TestMaxmemoryNoEviction: over maxmemory, writes that may grow memory get
// Redis's OOM error; reads and deletes still run; below it writes run.
func TestMaxmemoryNoEviction(t *testing.T) {
	var used atomic.Uint64
	used.Store(2000)
	n := newLimitsNode(t, Limits{MaxMemory: 1000, UsedMemory: used.Load})
	c, rd := n.dial(t)
	if got := roundTrip(t, c, rd, "SET", "k", "v"); got != "-OOM command not allowed when used memory > 'maxmemory'." {
		t.Fatalf("SET over maxmemory: %q", got)
	}
	if got := roundTrip(t, c, rd, "DEL", "k"); got != ":1" {
		t.Fatalf("DEL over maxmemory: %q", got)
	}
	if got := roundTrip(t, c, rd, "GET", "k"); got != "$-1" && !strings.HasPrefix(got, "bulk") {
		t.Fatalf("GET over maxmemory: %q", got)
	}
	if got := roundTrip(t, c, rd, "CONFIG", "GET", "maxmemory"); got != "*2" {
		t.Fatalf("CONFIG GET maxmemory: %q", got)
	}
	if got := readReply(t, rd) + " " + readReply(t, rd); got != "bulk 9 bulk 4" {
		t.Fatalf("CONFIG GET maxmemory values: %q", got)
	}
	used.Store(10)
	waitFor(t, "writes to run again", func() bool { return roundTrip(t, c, rd, "SET", "k", "v") == "+OK" })
	// A transaction queued below maxmemory is checked again at EXEC.
	for _, cmd := range [][]string{{"MULTI"}, {"SET", "k", "w"}} {
		roundTrip(t, c, rd, cmd...)
	}
	used.Store(2000)
	n.srv.lim.memAt.Store(0) // the next check samples the memory again
	if got := roundTrip(t, c, rd, "EXEC"); got != "-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'." {
		t.Fatalf("EXEC over maxmemory: %q", got)
	}
	// A script with flags that may write is refused before it runs (one
	// without runs, its writes refused: script.Step.DenyOOM).
	if got := roundTrip(t, c, rd, "EVAL", "#!lua\nreturn 1", "0"); got != "-OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'" {
		t.Fatalf("EVAL with flags over maxmemory: %q", got)
	}
}

// TestQueryBufferBudget (audit R-M5): large half-received commands of all
// connections together draw on one budget; one that finds no room is
// refused and closed, while the first is unharmed.
func TestQueryBufferBudget(t *testing.T) {
	n := newLimitsNode(t, Limits{QueryBudget: 1 << 20})
	val := bytes.Repeat([]byte{'x'}, 900<<10)
	cmd := resp.AppendCommand(nil, []byte("SET"), []byte("a"), val)
	a, ard := n.dial(t)
	if _, err := a.Write(cmd[:len(cmd)-10]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first buffer to be counted", func() bool { return value(n.m.ClientQuery) > 512<<10 })
	b, brd := n.dial(t)
	_ = b.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = b.Write(cmd[:len(cmd)-10])
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readReply(t, brd); !strings.HasPrefix(got, "-ERR command refused: the node's 1048576 bytes for incoming commands are in use") {
		t.Fatalf("second big command: %q", got)
	}
	assertClosed(t, b, "refused client")
	if _, err := a.Write(cmd[len(cmd)-10:]); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readReply(t, ard); got != "+OK" {
		t.Fatalf("first big command: %q", got)
	}
	waitFor(t, "the budget to be returned", func() bool { return value(n.m.ClientQuery) == 0 })
}
