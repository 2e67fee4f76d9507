package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/storage"
	"github.com/kintsu/kintsu/internal/transport"
)

// testNode is one engine with its own database and a real gRPC transport
// on a loopback port.
type testNode struct {
	id   uint64
	dir  string
	db   *pebble.DB
	rlog *raftlog.Log
	tr   *transport.Transport
	eng  *raftstore.Engine
	ln   net.Listener
}

type cluster struct {
	t      testing.TB
	nodes  map[uint64]*testNode
	addrs  map[uint64]string
	groups []*storage.Descriptor
	tune   func(*raftstore.Config)
}

// applyKV evaluates kv commands, plus test commands: "refuse-if K" is
// refused while K exists, "version K" answers K's version, "lock K" and
// "unlock K" put and delete a lock record ("lock-many P N" and
// "unlock-many P N" N of them), "get-lock K" reads one ("part K V",
// "unpart K" and "get-part K" the same for a part), "no-locks" answers whether
// the lock table is empty (Writer.NoLocks), "cut", "uncut" and "clear"
// call the Writer's.
func applyKV(_ uint64, w *raftstore.Writer, _ *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	switch string(args[0]) {
	case "refuse-if":
		if _, ok, err := w.Get(args[1]); err != nil || ok {
			w.Refuse()
			return append(out, "-LOCKED\r\n"...), err
		}
		return append(out, "+DONE\r\n"...), nil
	case "version":
		v, err := w.Version(args[1])
		return fmt.Appendf(out, ":%d\r\n", v), err
	case "cut": // cut ID LEASE-MS
		ms, _ := strconv.Atoi(string(args[2]))
		return fmt.Appendf(out, ":%d\r\n", w.Index()), w.Cut(string(args[1]), time.Duration(ms)*time.Millisecond)
	case "uncut":
		return append(out, "+OK\r\n"...), w.Uncut(string(args[1]))
	case "lock", "unlock": // a transaction lock record on K, put (as V, or "held") or deleted
		if string(args[0]) == "lock" {
			v := []byte("held")
			if len(args) > 2 {
				v = args[2]
			}
			return append(out, "+OK\r\n"...), w.TxnPut(storage.TxnLocks, args[1], v)
		}
		return append(out, "+OK\r\n"...), w.TxnDel(storage.TxnLocks, args[1])
	case "lock-many", "unlock-many": // N lock records P0..PN-1
		n, _ := strconv.Atoi(string(args[2]))
		for i := range n {
			k := fmt.Appendf(nil, "%s%d", args[1], i)
			var err error
			if string(args[0]) == "lock-many" {
				err = w.TxnPut(storage.TxnLocks, k, k)
			} else {
				err = w.TxnDel(storage.TxnLocks, k)
			}
			if err != nil {
				return out, err
			}
		}
		return append(out, "+OK\r\n"...), nil
	case "part", "unpart": // a transaction part record K (as V)
		if string(args[0]) == "part" {
			return append(out, "+OK\r\n"...), w.TxnPut(storage.TxnParts, args[1], args[2])
		}
		return append(out, "+OK\r\n"...), w.TxnDel(storage.TxnParts, args[1])
	case "get-lock", "get-part": // K's lock or part record, as the apply sees it
		table := storage.TxnLocks
		if string(args[0]) == "get-part" {
			table = storage.TxnParts
		}
		v, ok, err := w.TxnGet(table, args[1])
		if !ok {
			return append(out, "$-1\r\n"...), err
		}
		return resp.AppendBulk(out, v), err
	case "no-locks":
		if w.NoLocks() {
			return append(out, ":1\r\n"...), nil
		}
		return append(out, ":0\r\n"...), nil
	case "clear":
		return append(out, "+OK\r\n"...), w.Clear()
	}
	return kv.Apply(w, args, out)
}

func newCluster(t testing.TB, n int, groups int, tune func(*raftstore.Config)) *cluster {
	c := &cluster{t: t, nodes: map[uint64]*testNode{}, addrs: map[uint64]string{}, tune: tune}
	var lns []net.Listener
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		c.addrs[uint64(i)] = ln.Addr().String()
	}
	for g := 0; g < groups; g++ {
		d := &storage.Descriptor{Group: uint64(g), NextID: uint64(n) + 1}
		for i := 0; i < n; i++ {
			// Rotate the preferred leader so leaders spread over nodes.
			node := uint64((g+i)%n) + 1
			d.Replicas = append(d.Replicas, storage.Replica{ID: uint64(i) + 1, Node: node})
		}
		c.groups = append(c.groups, d)
	}
	for i := 1; i <= n; i++ {
		c.start(uint64(i), t.TempDir(), lns[i-1], true)
	}
	t.Cleanup(func() {
		for id := range c.nodes {
			c.stop(id)
		}
	})
	return c
}

func (c *cluster) start(id uint64, dir string, ln net.Listener, fresh bool) {
	t := c.t
	if ln == nil {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; {
			if ln, err = net.Listen("tcp", c.addrs[id]); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // the port is released asynchronously by the kernel
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rlog, err := raftstore.OpenLog(nil, dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tr := transport.New(id, logger)
	for nid, a := range c.addrs {
		tr.SetPeer(nid, a)
	}
	cfg := raftstore.Config{NodeID: id, TickInterval: 10 * time.Millisecond, Apply: applyKV, Logger: logger}
	if c.tune != nil {
		c.tune(&cfg)
	}
	eng, err := raftstore.New(cfg, db, rlog, tr)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range c.groups {
		if !fresh {
			break
		}
		if err := eng.AddReplica(d.Group, &raftstore.Bootstrap{Desc: d}); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever else is on disk: everything on a restart, replicas added
	// by membership changes.
	if err := eng.LoadAll(); err != nil {
		t.Fatal(err)
	}
	tr.SetHandlers(eng, nil)
	tr.Serve(ln)
	eng.Start()
	c.nodes[id] = &testNode{id: id, dir: dir, db: db, rlog: rlog, tr: tr, eng: eng, ln: ln}
}

func (c *cluster) stop(id uint64) {
	n := c.nodes[id]
	if n == nil {
		return
	}
	n.eng.Stop()
	n.tr.Stop()
	n.ln.Close()
	if err := n.db.Close(); err != nil {
		c.t.Errorf("close db of node %d: %v", id, err)
	}
	if err := n.rlog.Close(); err != nil {
		c.t.Errorf("close the raft log of node %d: %v", id, err)
	}
	delete(c.nodes, id)
}

func (c *cluster) restart(id uint64, dir string) { c.start(id, dir, nil, false) }

// restartAll stops every node, then starts each again on its data.
func (c *cluster) restartAll() {
	dirs := map[uint64]string{}
	for id, n := range c.nodes {
		dirs[id] = n.dir
	}
	for id := range dirs {
		c.stop(id)
	}
	for id, dir := range dirs {
		c.restart(id, dir)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader waits until the live nodes agree on a leader of group.
func (c *cluster) leader(group uint64) *testNode {
	var l *testNode
	waitFor(c.t, fmt.Sprintf("a leader of group %d", group), 30*time.Second, func() bool {
		for _, n := range c.nodes {
			if n.eng.Leader(group) == n.id {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

var seq uint64

// settle writes to group 0 and waits until every node follows its leader
// (so every follower's connection to it is up), which it returns.
func (c *cluster) settle(t *testing.T) *testNode {
	t.Helper()
	if r, err := c.write(0, 7, "set", "k", "v"); err != nil || r != "+OK\r\n" {
		t.Fatalf("set: %q, %v", r, err)
	}
	l := c.leader(0)
	waitFor(t, "the followers to follow", 5*time.Second, func() bool {
		for _, n := range c.nodes {
			if n.eng.Leader(0) != l.id {
				return false
			}
		}
		return true
	})
	return l
}

func (c *cluster) write(group uint64, origin uint64, args ...string) (string, error) {
	seq++
	return c.writeSeq(group, origin, seq, args...)
}

// writeSeq proposes on the current leader, retrying with the same
// (origin, seq) on retryable errors as the router does.
func (c *cluster) writeSeq(group, origin, s uint64, args ...string) (string, error) {
	return c.proposeRetry(group, &raftstore.Request{Origin: origin, Seq: s, Args: toArgs(args)})
}

func (c *cluster) proposeRetry(group uint64, req *raftstore.Request) (string, error) {
	return c.proposeRetryWithin(group, req, 2*time.Second, 10*time.Second)
}

// proposeRetryWithin is proposeRetry with its bounds: each try's and the
// whole retry's (a write that applies thousands of records takes seconds
// under -race on a busy machine).
func (c *cluster) proposeRetryWithin(group uint64, req *raftstore.Request, try, total time.Duration) (string, error) {
	deadline := time.Now().Add(total)
	for {
		l := c.leader(group)
		ctx, cancel := context.WithTimeout(context.Background(), try)
		reply, err := l.eng.Propose(ctx, group, req)
		cancel()
		retry := errors.Is(err, raftstore.ErrLeaderChanged) || errors.Is(err, raftstore.ErrNotLeader) || errors.Is(err, raftstore.ErrUnknownOutcome) || errors.Is(err, raftstore.ErrBusy)
		if !retry || time.Now().After(deadline) {
			return string(reply), err
		}
	}
}

func toArgs(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// localGet reads key from node's replica without any barrier.
func localGet(t testing.TB, n *testNode, group uint64, key string) string {
	t.Helper()
	v, err := kv.Lookup([]byte("get")).Read(n.eng.Reader(group), toArgs([]string{"get", key}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func bulk(s string) string { return string(resp.AppendBulkString(nil, s)) }

func TestReplicateAndLinearizableRead(t *testing.T) {
	c := newCluster(t, 3, 4, nil)
	for g := uint64(0); g < 4; g++ {
		if r, err := c.write(g, 1, "set", "k", fmt.Sprint("v", g)); err != nil || r != "+OK\r\n" {
			t.Fatalf("group %d: set = %q, %v", g, r, err)
		}
	}
	for g := uint64(0); g < 4; g++ {
		l := c.leader(g)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.eng.ReadBarrier(ctx, g); err != nil {
			t.Fatal(err)
		}
		cancel()
		if got := localGet(t, l, g, "k"); got != bulk(fmt.Sprint("v", g)) {
			t.Fatalf("group %d leader read %q", g, got)
		}
		// Every replica applies it eventually.
		for _, n := range c.nodes {
			waitFor(t, "follower apply", 5*time.Second, func() bool { return localGet(t, n, g, "k") == bulk(fmt.Sprint("v", g)) })
		}
	}
	// A read barrier on a follower is refused with a leader hint.
	for _, n := range c.nodes {
		if n.eng.Leader(0) != n.id {
			err := n.eng.ReadBarrier(context.Background(), 0)
			var nl *raftstore.NotLeaderError
			if !errors.As(err, &nl) || nl.Leader != c.leader(0).id {
				t.Fatalf("follower read barrier: %v", err)
			}
			break
		}
	}
}

func TestFailoverKeepsWritesAndDedupes(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	const origin = 77
	r, err := c.writeSeq(0, origin, 1, "incr", "n")
	if err != nil || r != ":1\r\n" {
		t.Fatalf("incr = %q, %v", r, err)
	}
	old := c.leader(0)
	c.stop(old.id)
	// The same (origin, seq) retried on the new leader returns the first
	// reply and does not apply again.
	r, err = c.writeSeq(0, origin, 1, "incr", "n")
	if err != nil || r != ":1\r\n" {
		t.Fatalf("retried incr = %q, %v; want the original reply :1", r, err)
	}
	r, err = c.writeSeq(0, origin, 2, "incr", "n")
	if err != nil || r != ":2\r\n" {
		t.Fatalf("next incr = %q, %v", r, err)
	}
	// The stopped node comes back and catches up from its log.
	c.restart(old.id, old.dir)
	n := c.nodes[old.id]
	waitFor(t, "restarted node catches up", 10*time.Second, func() bool { return localGet(t, n, 0, "n") == bulk("2") })
}

func TestSnapshotCatchUpAfterTruncation(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) { cfg.TruncateAfter, cfg.TruncateKeep = 20, 5 })
	l := c.leader(0)
	var follower *testNode
	for _, n := range c.nodes {
		if n != l {
			follower = n
			break
		}
	}
	dir := follower.dir
	c.stop(follower.id)
	for i := 0; i < 200; i++ {
		if _, err := c.write(0, 1, "set", fmt.Sprint("k", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.restart(follower.id, dir)
	f := c.nodes[follower.id]
	waitFor(t, "follower catches up by snapshot", 15*time.Second, func() bool {
		return localGet(t, f, 0, "k199") == bulk("199")
	})
	for i := 0; i < 200; i++ {
		if got := localGet(t, f, 0, fmt.Sprint("k", i)); got != bulk(fmt.Sprint(i)) {
			t.Fatalf("k%d on caught-up follower = %q", i, got)
		}
	}
	// Status is what the loop published at the end of a cycle, which may
	// be the cycle before the one that applied the snapshot's last keys.
	waitFor(t, "key count 200 after snapshot", 5*time.Second, func() bool {
		return f.eng.Status()[0].Keys == 200
	})
}

func TestRestartAllRecoversFromDisk(t *testing.T) {
	c := newCluster(t, 3, 2, nil)
	for i := 0; i < 50; i++ {
		if _, err := c.write(uint64(i%2), 1, "set", fmt.Sprint("k", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.restartAll()
	for i := 0; i < 50; i++ {
		g := uint64(i % 2)
		l := c.leader(g)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.eng.ReadBarrier(ctx, g); err != nil {
			t.Fatal(err)
		}
		cancel()
		if got := localGet(t, l, g, fmt.Sprint("k", i)); got != bulk(fmt.Sprint(i)) {
			t.Fatalf("k%d after restart = %q", i, got)
		}
	}
}

// TestDedupeWatermark: a retry at or above the origin's watermark gets the
// original reply (also after a restart); a late copy below it is refused
// without applying; the dedupe table stays bounded.
func TestDedupeWatermark(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	const origin = 5
	propose := func(s, wm uint64, args ...string) (string, error) {
		return c.proposeRetry(0, &raftstore.Request{Origin: origin, Seq: s, Watermark: wm, Args: toArgs(args)})
	}
	const n = 300
	for s := uint64(1); s <= n; s++ {
		// The origin has answered everything below s-10.
		wm := uint64(1)
		if s > 10 {
			wm = s - 10
		}
		if r, err := propose(s, wm, "incr", "ctr"); err != nil || r != fmt.Sprintf(":%d\r\n", s) {
			t.Fatalf("seq %d: %q, %v", s, r, err)
		}
	}
	// A retry of a recent seq returns its original reply; so does one of
	// any seq the last collection kept, and older ones are refused.
	if r, err := propose(n-2, n-10, "incr", "ctr"); err != nil || r != fmt.Sprintf(":%d\r\n", n-2) {
		t.Fatalf("retry of seq %d: %q, %v", n-2, r, err)
	}
	kept := 0
	for s := uint64(n - 80); s <= n; s++ {
		r, err := propose(s, 1, "incr", "ctr")
		switch {
		case err != nil && strings.Contains(err.Error(), "already completed"):
		case err != nil || r != fmt.Sprintf(":%d\r\n", s):
			t.Fatalf("retry of seq %d: %q, %v", s, r, err)
		default:
			kept++
		}
	}
	if kept < 11 || kept > 64 {
		t.Fatalf("%d of the last 81 seqs answered retries; the watermark keeps 11 to 64", kept)
	}
	// A late copy far below the watermark is refused and does not apply.
	if _, err := propose(3, n-10, "incr", "ctr"); err == nil || !strings.Contains(err.Error(), "already completed") {
		t.Fatalf("late copy of seq 3 was not refused: %v", err)
	}
	for _, nd := range c.nodes {
		if got := localGetWait(t, nd, "ctr", fmt.Sprint(n)); got != bulk(fmt.Sprint(n)) {
			t.Fatalf("node %d ctr = %q", nd.id, got)
		}
		lo, hi := storage.DedupeSpan(0)
		it, err := nd.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		records := 0
		for ok := it.First(); ok; ok = it.Next() {
			records++
		}
		it.Close()
		if records > 2*64+2 {
			t.Fatalf("node %d keeps %d dedupe records for one origin", nd.id, records)
		}
	}
	// The state survives a restart of every node.
	dirs := map[uint64]string{}
	for id, nd := range c.nodes {
		dirs[id] = nd.dir
	}
	for id := range dirs {
		c.stop(id)
	}
	for id, dir := range dirs {
		c.restart(id, dir)
	}
	if r, err := propose(n-1, n-10, "incr", "ctr"); err != nil || r != fmt.Sprintf(":%d\r\n", n-1) {
		t.Fatalf("retry of seq %d after restart: %q, %v", n-1, r, err)
	}
	if _, err := propose(5, n-10, "incr", "ctr"); err == nil {
		t.Fatal("late copy of seq 5 applied after restart")
	}
	// Restart one replica mid-stream, keep writing, and require every
	// replica to hold exactly the same dedupe records: refusals must not
	// depend on a replica's uptime.
	var one uint64
	for id := range c.nodes {
		one = id
		break
	}
	oneDir := c.nodes[one].dir
	c.stop(one)
	for s := uint64(n + 1); s <= n+100; s++ {
		if _, err := propose(s, s-5, "incr", "ctr"); err != nil {
			t.Fatal(err)
		}
	}
	c.restart(one, oneDir)
	for s := uint64(n + 101); s <= n+200; s++ {
		if _, err := propose(s, s-5, "incr", "ctr"); err != nil {
			t.Fatal(err)
		}
	}
	var want string
	for _, nd := range c.nodes {
		localGetWait(t, nd, "ctr", fmt.Sprint(n+200))
		got := dedupeDump(t, nd)
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("dedupe records differ between replicas:\n%s\nvs\n%s", want, got)
		}
	}
}

func dedupeDump(t *testing.T, n *testNode) string {
	t.Helper()
	lo, hi := storage.DedupeSpan(0)
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var b strings.Builder
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&b, "%x=%x\n", it.Key()[9:], it.Value())
	}
	return b.String()
}

// localGetWait polls a replica until key has want (replicas apply a little
// after the leader answers).
func localGetWait(t *testing.T, n *testNode, key, want string) string {
	t.Helper()
	var got string
	waitFor(t, "replica applies "+key, 5*time.Second, func() bool {
		got = localGet(t, n, 0, key)
		return got == bulk(want)
	})
	return got
}

// TestProposeManyKeepsOrderWhenRefused: when raft refuses one chunk of a
// group's proposals (uncommitted log full), later chunks are refused too,
// so no command is applied after one before it that failed.
func TestProposeManyKeepsOrderWhenRefused(t *testing.T) {
	c := newCluster(t, 3, 1, func(cfg *raftstore.Config) {
		cfg.MaxUncommittedBytes, cfg.MaxEntryBytes = 1000, 500
	})
	big := strings.Repeat("v", 600)
	refusals := 0
	for round := 0; round < 20; round++ {
		l := c.leader(0)
		reqs := []*raftstore.Request{
			{Origin: 9, Seq: uint64(3*round + 1), Args: toArgs([]string{"set", "k", big + "A"})},
			{Origin: 9, Seq: uint64(3*round + 2), Args: toArgs([]string{"set", "k", big + "B"})},
			{Origin: 9, Seq: uint64(3*round + 3), Args: toArgs([]string{"set", "k", "c"})},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, errs := l.eng.ProposeMany(ctx, 0, reqs)
		cancel()
		failed := false
		for i, err := range errs {
			if err != nil {
				failed = true
				refusals++
			} else if failed {
				t.Fatalf("round %d: command %d applied after an earlier one failed: %v", round, i, errs)
			}
		}
	}
	if refusals == 0 {
		t.Fatal("raft never refused a chunk: the test did not exercise the refusal path")
	}
}

// TestRefusedCommandBlocksTheRestOfItsBatch: a command the state machine
// refuses is not kept for retries, the rest of its batch is not applied
// (so a retry keeps the pipeline's order), other batches are unaffected,
// and every value carries the index of the entry that wrote it.
func TestRefusedCommandBlocksTheRestOfItsBatch(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	if _, err := c.write(0, 5, "set", "lock", "x"); err != nil {
		t.Fatal(err)
	}
	l := c.leader(0)
	reqs := []*raftstore.Request{
		{Origin: 9, Seq: 1, Batch: 1, Args: toArgs([]string{"set", "a", "1"})},
		{Origin: 9, Seq: 2, Batch: 1, Args: toArgs([]string{"refuse-if", "lock"})},
		{Origin: 9, Seq: 3, Batch: 1, Args: toArgs([]string{"set", "b", "2"})},
		{Origin: 9, Seq: 4, Batch: 4, Args: toArgs([]string{"set", "c", "3"})},
		{Origin: 9, Seq: 5, Batch: 0, Args: toArgs([]string{"set", "d", "4"})},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	replies, errs := l.eng.ProposeMany(ctx, 0, reqs)
	want := []string{"+OK\r\n", "-LOCKED\r\n", string(failure.AppendSignal(nil, failure.Blocked, nil)), "+OK\r\n", "+OK\r\n"}
	for i := range reqs {
		if errs[i] != nil || string(replies[i]) != want[i] {
			t.Fatalf("request %d: %q, %v; want %q", i, replies[i], errs[i], want[i])
		}
	}
	if got := localGet(t, l, 0, "b"); got != "$-1\r\n" {
		t.Fatalf("b after its batch was blocked = %q, want nil", got)
	}
	// Unlock and retry the refused suffix with the same seqs: both apply.
	if _, err := c.write(0, 5, "del", "lock"); err != nil {
		t.Fatal(err)
	}
	replies, errs = l.eng.ProposeMany(ctx, 0, reqs[1:3])
	if errs[0] != nil || errs[1] != nil || string(replies[0]) != "+DONE\r\n" || string(replies[1]) != "+OK\r\n" {
		t.Fatalf("retry: %q %v", replies, errs)
	}
	va, _ := c.write(0, 5, "version", "a")
	vb, _ := c.write(0, 5, "version", "b")
	vm, _ := c.write(0, 5, "version", "missing")
	if va == vb || va == ":0\r\n" || vb == ":0\r\n" || vm != ":0\r\n" {
		t.Fatalf("versions a=%q b=%q missing=%q: want distinct non-zero indexes and 0", va, vb, vm)
	}
}

// TestBadInputNeverStopsTheEngine: an empty command is refused before
// raft, and peer messages raft must not take from the network are dropped.
func TestBadInputNeverStopsTheEngine(t *testing.T) {
	c := newCluster(t, 3, 1, nil)
	l := c.leader(0)
	if _, err := l.eng.Propose(context.Background(), 0, &raftstore.Request{Origin: 1, Seq: 1}); !errors.Is(err, raftstore.ErrEmptyCommand) {
		t.Fatalf("empty command: %v", err)
	}
	var follower *testNode
	for _, n := range c.nodes {
		if n != l {
			follower = n
		}
	}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(1000)), Term: new(uint64(99)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
	for _, n := range []*testNode{l, follower} {
		var self uint64
		for _, st := range n.eng.Status() {
			self = st.ReplicaID
		}
		n.eng.HandleRaft([]raftstore.Envelope{
			{Group: 0, Msg: &pb.Message{Type: pb.MsgSnap.Enum(), To: new(self), From: new(uint64(1)), Term: new(uint64(99)), Snapshot: snap}},
			{Group: 0, Msg: &pb.Message{Type: pb.MsgProp.Enum(), To: new(self), From: new(uint64(2)), Entries: []*pb.Entry{{}}}},
			{Group: 0, Msg: &pb.Message{Type: pb.MsgHup.Enum(), To: new(self), From: new(uint64(3))}},
			{Group: 0, Msg: &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(self), From: new(uint64(42)), Term: new(uint64(99))}},
			{Group: 7, Msg: &pb.Message{Type: pb.MsgApp.Enum(), To: new(self), From: new(uint64(2))}},
		})
	}
	if r, err := c.write(0, 1, "set", "after", "garbage"); err != nil || r != "+OK\r\n" {
		t.Fatalf("write after bad messages: %q, %v", r, err)
	}
	for _, n := range c.nodes {
		if err := n.eng.Err(); err != nil {
			t.Fatalf("node %d engine stopped: %v", n.id, err)
		}
	}
}
