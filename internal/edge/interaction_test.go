package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/metrics"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
)

// TestInteraction drives a real Server over loopback TCP with the scripts
// in testdata/, against the fakes of fakes_test.go. Each script gets a
// fresh server and fakes. Regenerate expected output with -rewrite.
//
// The script language:
//
//	keys K...                 each key's slot and partition (g0..g3)
//	send CONN [repeat=N]      the input's lines, one command each, written
//	                          as one pipelined batch (N times over); shows
//	                          the replies as redis-cli does (with repeat, a
//	                          run of equal lines once, counted), then each
//	                          call the batch made of the fakes after "=> ":
//	                          write, read, stale (lanes: WriteMany,
//	                          ReadMany, StaleReads), read1 (Read), txn exec,
//	                          txn run
//	raw CONN [replies=N]      the input, Go-unquoted, as raw bytes; reads
//	                          N replies (default 1)
//	eof CONN                  "closed" once the server closed CONN
//	close CONN                the client closes CONN
//	fail gN|txn ERR [only=I] [g=N] [cause=ERR]
//	                          the next call of partition N (or of the
//	                          transaction coordinator) answers ERR: for
//	                          every command, or only its I-th (from 0)
//	gate gN after=gM          the next lane of N waits until M is called:
//	                          it shows that lanes run concurrently
//	leader gN NODE            the view's leader of N (0: unknown)
//	group gN NODE...          the nodes holding N, preferred leader first
//	node ID [resp=A] [peer=A] [state=S]
//	                          add or change a node's record
//	view                      the view
//
// Connections are opened on first use. Arguments in a command line are
// split on spaces; a double-quoted argument is Go-unquoted. The fakes'
// calls between two transaction calls are listed by partition, a
// partition's own in the order they came: lanes of different partitions
// run concurrently, so only that order is the edge's to keep.
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		t.Parallel()
		h := newHarness(t)
		defer h.close()
		datadriven.RunTest(t, path, h.run)
	})
}

const (
	testPartitions = 4
	// replyTimeout bounds the wait for a reply: a missing one fails the
	// script instead of hanging it.
	replyTimeout = 5 * time.Second
	// maxBatch keeps a batch inside one read of the server's buffer, so
	// it is served as one pipeline and its lanes are the same every run.
	maxBatch = 16 << 10
)

type harness struct {
	t      *testing.T
	ln     net.Listener
	srv    *Server
	cancel context.CancelFunc
	served chan struct{}
	log    *callLog
	router *fakeRouter
	txns   *fakeTxns
	view   *fakeView
	conns  map[string]*client
	now    time.Time // the edge's clock (settle advances it)
}

type client struct {
	c      net.Conn
	buf    []byte // read but not yet parsed
	closed bool   // no more replies will come
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith is newHarness with the edge's Config changed by tune
// before the server starts.
func newHarnessWith(t *testing.T, tune func(*Config)) *harness {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &callLog{}
	store := newFakeStore(testPartitions)
	h := &harness{
		t: t, ln: ln, log: log, served: make(chan struct{}),
		router: newFakeRouter(log, store),
		txns:   &fakeTxns{log: log, store: store},
		view:   newFakeView(1, testPartitions),
		conns:  map[string]*client{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	cfg := Config{
		NodeID: 1, ClusterID: "test", RESPAddr: "10.0.0.1:7001",
		Partitions: testPartitions, Replicas: 3, RequestTimeout: replyTimeout,
		Metrics: metrics.New(), Router: h.router, Txns: h.txns, View: h.view,
		LeaderWatchEvery: -1, // the script moves leaders, and time, by hand
	}
	if tune != nil {
		tune(&cfg)
	}
	h.srv = New(ctx, cfg)
	h.now = time.Unix(1_700_000_000, 0)
	h.srv.now = func() time.Time { return h.now }
	// The node has read the cluster's users (none configured) once, as a
	// running node has: scripts then show only the reads AUTH and ACL make.
	h.srv.adopt(acl.NewTable())
	go func() {
		defer close(h.served)
		h.srv.Serve(ln)
	}()
	return h
}

func (h *harness) close() {
	for _, c := range h.conns {
		c.c.Close()
	}
	h.srv.CloseAll()
	// Serve may not have stored the listener yet when CloseAll ran.
	h.ln.Close()
	select {
	case <-h.served:
	case <-time.After(replyTimeout):
		h.t.Error("Serve did not return after CloseAll")
	}
	h.cancel()
}

func (h *harness) conn(t *testing.T, name string) *client {
	if c := h.conns[name]; c != nil {
		if c.closed {
			t.Fatalf("%s is closed: close it before using the name again", name)
		}
		return c
	}
	c, err := net.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h.conns[name] = &client{c: c}
	return h.conns[name]
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	out := h.directive(t, d)
	if calls := h.log.take(); len(calls) > 0 {
		out += "=> " + strings.Join(calls, "\n=> ") + "\n"
	}
	return out
}

// arg is the i-th positional argument of the directive.
func arg(t *testing.T, d *datadriven.TestData, i int) string {
	if i >= len(d.CmdArgs) {
		d.Fatalf(t, "%s: missing argument %d", d.Cmd, i+1)
	}
	return d.CmdArgs[i].Key
}

func groupArg(t *testing.T, d *datadriven.TestData, s string) uint64 {
	g, err := strconv.ParseUint(strings.TrimPrefix(s, "g"), 10, 64)
	if !strings.HasPrefix(s, "g") || err != nil || g >= testPartitions {
		d.Fatalf(t, "%q is not a partition (g0..g%d)", s, testPartitions-1)
	}
	return g
}

func uintArg(t *testing.T, d *datadriven.TestData, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "%q is not a number", s)
	}
	return n
}

func (h *harness) directive(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "keys":
		var b strings.Builder
		for _, a := range d.CmdArgs {
			slot := ring.Slot([]byte(a.Key))
			fmt.Fprintf(&b, "%s: slot %d g%d\n", a.Key, slot, ring.PartitionOf(slot, testPartitions))
		}
		return b.String()
	case "send":
		repeat := 1
		d.MaybeScanArgs(t, "repeat", &repeat)
		var cmds [][][]byte
		for range repeat {
			for line := range strings.SplitSeq(d.Input, "\n") {
				if args := splitCommand(t, d, line); len(args) > 0 {
					cmds = append(cmds, args)
				}
			}
		}
		var batch []byte
		for _, args := range cmds {
			batch = resp.AppendCommand(batch, args...)
		}
		if len(batch) > maxBatch {
			d.Fatalf(t, "batch of %d bytes: more than %d may be split by the network", len(batch), maxBatch)
		}
		lines := h.exchange(t, arg(t, d, 0), batch, len(cmds))
		if repeat > 1 {
			lines = collapse(lines)
		}
		return strings.Join(lines, "")
	case "raw":
		n := 1
		d.MaybeScanArgs(t, "replies", &n)
		raw, err := strconv.Unquote(`"` + strings.ReplaceAll(d.Input, `"`, `\"`) + `"`)
		if err != nil {
			d.Fatalf(t, "raw input: %v", err)
		}
		return strings.Join(h.exchange(t, arg(t, d, 0), []byte(raw), n), "")
	case "eof":
		return h.eof(t, arg(t, d, 0))
	case "close":
		name := arg(t, d, 0)
		if c := h.conns[name]; c != nil {
			c.c.Close()
			delete(h.conns, name)
		}
		return ""
	case "fail":
		f := fault{name: arg(t, d, 1), only: -1}
		d.MaybeScanArgs(t, "only", &f.only)
		d.MaybeScanArgs(t, "g", &f.group)
		d.MaybeScanArgs(t, "cause", &f.cause)
		if _, ok := faultAnswer(f.name, f.group, false, f.cause); !ok {
			d.Fatalf(t, "unknown error %q (cause %q)", f.name, f.cause)
		}
		if target := arg(t, d, 0); target == "txn" {
			h.txns.fail(f)
		} else {
			h.router.fail(groupArg(t, d, target), f)
		}
		return ""
	case "gate":
		var after string
		d.ScanArgs(t, "after", &after)
		h.router.gate(groupArg(t, d, arg(t, d, 0)), groupArg(t, d, after))
		return ""
	case "leader":
		h.view.setLeader(groupArg(t, d, arg(t, d, 0)), uintArg(t, d, arg(t, d, 1)))
		return ""
	case "away": // node N told this one it is stopping ("away N off": back)
		h.view.setAway(uintArg(t, d, arg(t, d, 0)), len(d.CmdArgs) < 2 || d.CmdArgs[1].Key != "off")
		return ""
	case "linger": // the node is stopping (Server.Linger), without the wait
		h.srv.lingering.Store(true)
		return ""
	case "settle": // time passes: a moved leadership settles (settle.go)
		h.now = h.now.Add(movedSettle)
		return ""
	case "group":
		var nodes []uint64
		for _, a := range d.CmdArgs[1:] {
			nodes = append(nodes, uintArg(t, d, a.Key))
		}
		h.view.setGroup(groupArg(t, d, arg(t, d, 0)), nodes)
		return ""
	case "node":
		var respAddr, peerAddr, state string
		d.MaybeScanArgs(t, "resp", &respAddr)
		d.MaybeScanArgs(t, "peer", &peerAddr)
		d.MaybeScanArgs(t, "state", &state)
		h.view.setNode(uintArg(t, d, arg(t, d, 0)), respAddr, peerAddr, state)
		return ""
	case "view":
		return h.view.String()
	case "level": // "level 0": the cluster's level is below this build's, and leaders know only the old scan; "level": back
		below := len(d.CmdArgs) > 0 && d.CmdArgs[0].Key == "0"
		h.view.mu.Lock()
		h.view.belowLevel = below
		h.view.mu.Unlock()
		h.router.store.mu.Lock()
		h.router.store.oldScan = below
		h.router.store.mu.Unlock()
		return ""
	}
	d.Fatalf(t, "unknown directive %q", d.Cmd)
	return ""
}

// splitCommand splits a script line into arguments.
func splitCommand(t *testing.T, d *datadriven.TestData, line string) [][]byte {
	var args [][]byte
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimLeft(line, " ") {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				d.Fatalf(t, "bad quoting in %q", line)
			}
			s, _ := strconv.Unquote(q)
			args = append(args, []byte(s))
			line = line[len(q):]
			continue
		}
		end := strings.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		args = append(args, []byte(line[:end]))
		line = line[end:]
	}
	return args
}

// exchange writes one batch in one write and reads n replies. A reply
// missing because the server closed the connection (QUIT, a protocol
// error) shows as "(closed)", bytes that are no RESP reply as "(not a
// reply: ...)".
func (h *harness) exchange(t *testing.T, name string, batch []byte, n int) []string {
	c := h.conn(t, name)
	if _, err := c.c.Write(batch); err != nil {
		t.Fatalf("%s: write: %v", name, err)
	}
	var out []string
	for range n {
		v, err := c.next()
		if err != nil {
			out = append(out, c.failed(err))
			// Closed by the server, or out of step with the stream: the
			// connection serves no more commands.
			c.closed = true
			return out
		}
		for _, line := range render(v) {
			out = append(out, timesMasked.ReplaceAllString(line, "usec=(t),usec_per_call=(t)"))
		}
	}
	if len(c.buf) > 0 {
		out = append(out, fmt.Sprintf("(unexpected bytes: %q)\n", c.buf))
	}
	return out
}

// timesMasked finds INFO commandstats' times, which depend on the
// machine: scripts show them as (t).
var timesMasked = regexp.MustCompile(`usec=[0-9]+,usec_per_call=[0-9.]+`)

// next reads one reply, waiting at most replyTimeout.
func (c *client) next() (resp.Value, error) {
	if err := c.c.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return resp.Value{}, err
	}
	for {
		v, n, err := parse3(c.buf)
		if err == nil {
			// Copy out: the buffer is reused by the next read.
			v = copyValue(v)
			c.buf = c.buf[n:]
			return v, nil
		}
		if !errors.Is(err, resp.ErrIncomplete) {
			return resp.Value{}, fmt.Errorf("%w: %q", err, c.buf)
		}
		var tmp [4096]byte
		m, rerr := c.c.Read(tmp[:])
		c.buf = append(c.buf, tmp[:m]...)
		if m == 0 && rerr != nil {
			return resp.Value{}, rerr
		}
	}
}

// failed describes why no reply came.
func (c *client) failed(err error) string {
	switch {
	case errors.Is(err, io.EOF) && len(c.buf) == 0:
		return "(closed)\n"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "(no reply)\n"
	}
	return fmt.Sprintf("(not a reply: %v)\n", err)
}

func (h *harness) eof(t *testing.T, name string) string {
	c := h.conns[name]
	switch {
	case c == nil:
		t.Fatalf("no connection %s", name)
	case c.closed:
		return "closed\n"
	}
	v, err := c.next()
	switch {
	case err == nil:
		return "unexpected reply:\n" + strings.Join(render(v), "")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "open\n"
	case errors.Is(err, io.EOF):
		c.closed = true
		return "closed\n"
	}
	return c.failed(err)
}

func copyValue(v resp.Value) resp.Value {
	v.Str = append([]byte(nil), v.Str...)
	for i := range v.Array {
		v.Array[i] = copyValue(v.Array[i])
	}
	return v
}

// render shows a reply as redis-cli does, as lines ending in newlines.
func render(v resp.Value) []string {
	if lines, ok := render3(v); ok {
		return lines
	}
	switch v.Kind {
	case '+':
		return []string{string(v.Str) + "\n"}
	case '-':
		return []string{"(error) " + string(v.Str) + "\n"}
	case ':':
		return []string{fmt.Sprintf("(integer) %d\n", v.Int)}
	case '$':
		if v.Null {
			return []string{"(nil)\n"}
		}
		return []string{strconv.Quote(string(v.Str)) + "\n"}
	}
	switch {
	case v.Null:
		return []string{"(nil)\n"}
	case len(v.Array) == 0:
		return []string{"(empty array)\n"}
	}
	width := len(strconv.Itoa(len(v.Array)))
	var out []string
	for i, e := range v.Array {
		prefix := fmt.Sprintf("%*d) ", width, i+1)
		for j, l := range render(e) {
			if j == 0 {
				l = prefix + l
			} else {
				l = strings.Repeat(" ", len(prefix)) + l
			}
			out = append(out, l)
		}
	}
	return out
}

// collapse shows a run of one reply repeated once, with its count.
func collapse(lines []string) []string {
	var out []string
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && lines[j] == lines[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, fmt.Sprintf("%s x%d\n", strings.TrimSuffix(lines[i], "\n"), j-i))
		} else {
			out = append(out, lines[i])
		}
		i = j
	}
	return out
}
