package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Per-node bounds on what clients can make a node hold: connections, their
// idle and half-sent commands, the bytes of commands being received, the
// bytes of replies not yet written, and the memory writes may grow.
//
// Invariants:
//   - A connection builds at most replyChunkBytes of replies (plus the
//     last reply of each partition's lane running at the time) before it
//     writes them: reads beyond it wait (failure.ErrNotRun) until the
//     replies before them are written. So 128 pipelined GETs of a 16 MiB
//     value hold about one value at a time, not 2 GiB.
//   - A connection whose unwritten replies pass OutputHard, or stay above
//     OutputSoft for longer than OutputSoftTime, is closed; so is the
//     biggest holder when all connections together pass ReplyBudget. The
//     node itself is never refused memory for it.
//   - Buffers of large, partially received commands draw on one node-wide
//     QueryBudget; a command that cannot get room within queryWait is
//     refused and its connection closed.
//   - A connection waiting between commands longer than IdleTimeout, or
//     taking longer than ClientReadTimeout to send a command it started,
//     is closed.
//   - When MaxClients are connected, a new client takes the place of the
//     one idle the longest (idle at least evictIdleAfter), else it is
//     refused with Redis's error.
//   - A command that may grow memory (denyOOM) is refused with Redis's
//     -OOM error while the node's used memory is over MaxMemory.

// Limits are the edge's per-node bounds; a zero field is off (unlimited),
// except MaxClients (default defaultMaxClients).
type Limits struct {
	MaxClients        int           // maxclients
	IdleTimeout       time.Duration // timeout: idle clients are closed
	ClientReadTimeout time.Duration // a started command must arrive within it
	// QueryBufferLimit bounds one command's bytes (client-query-buffer-limit).
	QueryBufferLimit int
	// QueryBudget bounds the buffers of large partially received commands
	// of all connections together.
	QueryBudget int64
	// client-output-buffer-limit normal <OutputHard> <OutputSoft> <OutputSoftTime>.
	OutputHard, OutputSoft int64
	OutputSoftTime         time.Duration
	// ReplyBudget bounds the unwritten replies of all connections together
	// (Redis 7's maxmemory-clients).
	ReplyBudget int64
	// MaxMemory: denyOOM commands are refused while UsedMemory() exceeds it.
	MaxMemory  uint64
	UsedMemory func() uint64
}

const (
	defaultMaxClients = 10000
	// replyChunkBytes of replies a connection builds before writing them.
	replyChunkBytes = 8 << 20
	// queryWait is how long a large command waits for room in QueryBudget.
	queryWait = time.Second
	// smallQueryBuffer: reader buffers up to this size are not counted in
	// QueryBudget (every connection has one).
	smallQueryBuffer = 64 << 10
	// evictIdleAfter: when full, only a connection idle this long gives
	// way to a new one.
	evictIdleAfter = time.Second
	// memSampleEvery bounds how stale the used-memory figure may be.
	memSampleEvery = 100 * time.Millisecond
)

// Reasons a limit closed a connection (the metric's label).
const (
	closedOutputHard = "output-buffer-hard"
	closedOutputSoft = "output-buffer-soft"
	closedReplyNode  = "maxmemory-clients"
	closedQuery      = "query-buffer"
	closedIdle       = "idle-timeout"
	closedReadSlow   = "read-timeout"
	closedMaxClients = "maxclients-evicted"
	closedWrite      = "write-timeout"
)

// limitError is a refusal worded by this file.
type limitError struct{ text string }

func (e *limitError) Error() string { return e.text }

var errOOM = &limitError{"OOM command not allowed when used memory > 'maxmemory'."}

// tracked is what the limits know of one connection.
type tracked struct {
	conn net.Conn
	id   int64
	// held: bytes of replies built and not yet written.
	held atomic.Int64
	// idleSince: unix nanoseconds since it has waited between commands
	// with nothing buffered; 0 while it sends or runs a command.
	idleSince atomic.Int64
	// closedBy names the limit that closed it, once.
	closedBy atomic.Pointer[string]
	// query: bytes of its reader's buffer drawn on QueryBudget (written
	// by its own goroutine only).
	query atomic.Int64

	// What CLIENT LIST shows of it (client.go), written by its own
	// goroutine, read by any.
	created time.Time
	name    atomic.Pointer[string]
	lastCmd atomic.Pointer[string]
	lastAt  atomic.Int64 // unix nanoseconds of its last command
	user    atomic.Pointer[string]
	noEvict atomic.Bool
	inMulti atomic.Bool
	sub     atomic.Pointer[subscriber]
	proto   atomic.Int32 // 3 after HELLO 3; 0 (shown as 2) before
	// unblock, while it waits in a blocking command, takes CLIENT
	// UNBLOCK's word (true: ERROR) (blocking.go).
	unblock atomic.Pointer[chan bool]
}

// limiter is the node-wide state of the limits.
type limiter struct {
	// cur is the limits in force: CONFIG SET swaps in a changed copy.
	cur atomic.Pointer[Limits]

	mu      sync.Mutex
	clients map[*tracked]struct{} // guarded by mu

	held atomic.Int64 // unwritten reply bytes of all clients

	qmu   sync.Mutex
	qused int64         // guarded by qmu
	qfree chan struct{} // guarded by qmu; closed when room is returned

	memAt   atomic.Int64 // unix nanoseconds of the last sample
	memUsed atomic.Uint64
}

// get is the limits in force.
func (l *limiter) get() *Limits { return l.cur.Load() }

func newLimiter(lim Limits) *limiter {
	if lim.MaxClients <= 0 {
		lim.MaxClients = defaultMaxClients
	}
	l := &limiter{clients: map[*tracked]struct{}{}, qfree: make(chan struct{})}
	l.cur.Store(&lim)
	return l
}

// respLimits are the reader's limits under a QueryBufferLimit.
func respLimits(lim Limits) resp.Limits {
	l := resp.DefaultLimits()
	if lim.QueryBufferLimit > 0 {
		l.MaxCommandLen = lim.QueryBufferLimit
		l.MaxBulkLen = min(l.MaxBulkLen, lim.QueryBufferLimit)
	}
	return l
}

// makeRoom makes room for a new connection when MaxClients are connected:
// false if no connection may give way. Called with f.mu held (n is the
// count of connections).
func (f *Server) makeRoom(n int) bool {
	if n < f.lim.get().MaxClients {
		return true
	}
	var victim *tracked
	oldest := time.Now().Add(-evictIdleAfter).UnixNano()
	f.lim.mu.Lock()
	for cl := range f.lim.clients {
		if at := cl.idleSince.Load(); at > 0 && at <= oldest {
			victim, oldest = cl, at
		}
	}
	f.lim.mu.Unlock()
	if victim == nil {
		return false
	}
	f.closeClient(victim, closedMaxClients)
	return true
}

func (f *Server) register(c net.Conn, id int64) *tracked {
	cl := &tracked{conn: c, id: id, created: time.Now()}
	cl.lastAt.Store(cl.created.UnixNano())
	cl.idleSince.Store(time.Now().UnixNano())
	f.lim.mu.Lock()
	f.lim.clients[cl] = struct{}{}
	f.lim.mu.Unlock()
	return cl
}

// unregister returns what a finished connection held.
func (f *Server) unregister(cl *tracked) {
	f.lim.mu.Lock()
	delete(f.lim.clients, cl)
	f.lim.mu.Unlock()
	f.releaseReplies(cl, cl.held.Load())
	_ = f.queryBuffer(cl, 0)
}

// closeClient closes cl's connection for the limit named by reason, once;
// its handler sees the closed connection and returns.
func (f *Server) closeClient(cl *tracked, reason string) {
	if !cl.closedBy.CompareAndSwap(nil, &reason) {
		return
	}
	f.cfg.Metrics.ClientsClosed.WithLabelValues(reason).Inc()
	f.logger().Info("client closed by a limit", "reason", reason, "client", cl.id,
		"addr", cl.conn.RemoteAddr().String(), "reply_bytes", cl.held.Load(), "query_bytes", cl.query.Load())
	_ = cl.conn.Close()
}

func (f *Server) logger() *slog.Logger {
	if f.cfg.Logger != nil {
		return f.cfg.Logger
	}
	return slog.Default()
}

// holdReplies counts n new bytes of cl's replies and enforces the hard
// limit and the node's budget: false if cl must close.
func (f *Server) holdReplies(cl *tracked, n int64) bool {
	held := cl.held.Add(n)
	total := f.lim.held.Add(n)
	f.cfg.Metrics.ClientReply.Set(float64(total))
	if h := f.lim.get().OutputHard; h > 0 && held > h {
		f.closeClient(cl, closedOutputHard)
		return false
	}
	if b := f.lim.get().ReplyBudget; b > 0 && total > b {
		f.shedReplies(total - b)
	}
	return cl.closedBy.Load() == nil
}

func (f *Server) releaseReplies(cl *tracked, n int64) {
	if n == 0 {
		return
	}
	cl.held.Add(-n)
	f.cfg.Metrics.ClientReply.Set(float64(f.lim.held.Add(-n)))
}

// shedReplies closes the connections holding the most reply bytes until
// at least over bytes are on their way to be freed.
func (f *Server) shedReplies(over int64) {
	f.lim.mu.Lock()
	all := make([]*tracked, 0, len(f.lim.clients))
	for cl := range f.lim.clients {
		if cl.held.Load() > 0 && cl.closedBy.Load() == nil {
			all = append(all, cl)
		}
	}
	f.lim.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].held.Load() > all[j].held.Load() })
	for _, cl := range all {
		if over <= 0 {
			return
		}
		over -= cl.held.Load()
		f.closeClient(cl, closedReplyNode)
	}
}

// queryBuffer is the reader's Buffer hook: it draws cl's large buffer on
// the node's QueryBudget, waiting up to queryWait for room.
func (f *Server) queryBuffer(cl *tracked, n int) error {
	want := int64(n)
	if n <= smallQueryBuffer {
		want = 0
	}
	delta := want - cl.query.Load()
	if delta == 0 || f.lim.get().QueryBudget <= 0 {
		cl.query.Store(want)
		return nil
	}
	deadline := time.Now().Add(queryWait)
	for {
		f.lim.qmu.Lock()
		if delta < 0 || f.lim.qused+delta <= f.lim.get().QueryBudget {
			f.lim.qused += delta
			f.cfg.Metrics.ClientQuery.Set(float64(f.lim.qused))
			if delta < 0 {
				close(f.lim.qfree)
				f.lim.qfree = make(chan struct{})
			}
			f.lim.qmu.Unlock()
			cl.query.Store(want)
			return nil
		}
		free := f.lim.qfree
		f.lim.qmu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return &limitError{fmt.Sprintf("ERR command refused: the node's %d bytes for incoming commands are in use (query buffer budget); retry later", f.lim.get().QueryBudget)}
		}
		t := time.NewTimer(wait)
		select {
		case <-free:
		case <-t.C:
		case <-f.ctx.Done():
		}
		t.Stop()
		if f.ctx.Err() != nil {
			return f.ctx.Err()
		}
	}
}

// denyOOM refuses a command that may grow memory while the node is over
// MaxMemory (Redis's denyoom commands and -OOM reply).
func (f *Server) denyOOM(c *command.Cmd) error {
	if !kv.DenyOOM(c.Spec) || !f.overMemory() {
		return nil
	}
	return errOOM
}

// overMemory reports whether the node is over MaxMemory (sampled every
// memSampleEvery).
func (f *Server) overMemory() bool {
	l := f.lim.get()
	if l.MaxMemory == 0 || l.UsedMemory == nil {
		return false
	}
	now := time.Now().UnixNano()
	if at := f.lim.memAt.Load(); now-at > int64(memSampleEvery) && f.lim.memAt.CompareAndSwap(at, now) {
		f.lim.memUsed.Store(l.UsedMemory())
	}
	return f.lim.memUsed.Load() > l.MaxMemory
}

// timedConn sets a connection's read deadlines: IdleTimeout while it
// waits between commands, ClientReadTimeout from the first byte of a
// command until the command is whole.
type timedConn struct {
	net.Conn
	cl      *tracked
	partial time.Duration
	started bool // a command has begun arriving
}

func (t *timedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 && !t.started {
		t.started = true
		t.cl.idleSince.Store(0)
		// The idle deadline no longer applies: the command's own does.
		var deadline time.Time
		if t.partial > 0 {
			deadline = time.Now().Add(t.partial)
		}
		_ = t.Conn.SetReadDeadline(deadline)
	}
	return n, err
}

// awaitCommand arms the read deadline for the next command: the partial
// command's if one is partly read (resp.Reader.InCommand), else the idle
// one.
func (f *Server) awaitCommand(t *timedConn, inCommand bool) {
	now := time.Now()
	var deadline time.Time
	if inCommand {
		t.started = true
		t.cl.idleSince.Store(0)
		if d := f.lim.get().ClientReadTimeout; d > 0 {
			deadline = now.Add(d)
		}
	} else {
		t.started = false
		t.cl.idleSince.Store(now.UnixNano())
		if d := f.lim.get().IdleTimeout; d > 0 {
			deadline = now.Add(d)
		}
	}
	_ = t.Conn.SetReadDeadline(deadline)
}

// readFailed ends a connection whose next command could not be read:
// a protocol error or a refused query buffer is answered first; a timeout
// is counted by its kind.
func (f *Server) readFailed(t *timedConn, wr *resp.Writer, err error) {
	var le *limitError
	var ne net.Error
	switch {
	case errors.As(err, &le):
		wr.WriteRaw(resp.AppendError(nil, le.text))
		_ = t.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = wr.Flush()
		f.closeClient(t.cl, closedQuery)
	case errors.As(err, &ne) && ne.Timeout() && !f.isClosing():
		if t.started {
			f.closeClient(t.cl, closedReadSlow)
		} else {
			f.closeClient(t.cl, closedIdle)
		}
	default:
		f.protocolError(wr, err)
	}
}

func (f *Server) isClosing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closing
}

// runChunk runs a chunk of a pipeline and writes its replies, in order,
// holding at most about replyChunkBytes of them at a time: exec leaves
// the reads that did not fit unrun (nil replies, after a lane was cut by
// the reply budget), and they run again once the replies before them are
// written. False when the connection must close.
func (f *Server) runChunk(chunk [][][]byte, st *connState, cl *tracked, conn net.Conn, wr *resp.Writer) bool {
	replies := make([][]byte, len(chunk))
	todo := make([]int, len(chunk))
	for i := range todo {
		todo[i] = i
	}
	next := 0 // replies[:next] are written
	for len(todo) > 0 {
		cmds := make([][][]byte, len(todo))
		for k, i := range todo {
			cmds[k] = chunk[i]
		}
		st.budget = failure.NewReplyBudget(replyChunkBytes)
		out := f.exec(cmds, st)
		st.budget = nil
		var built int64
		var again []int
		for k, i := range todo {
			if k >= len(out) {
				break // QUIT: nothing after it runs
			}
			if out[k] == nil {
				again = append(again, i)
				continue
			}
			replies[i] = out[k]
			built += int64(len(out[k]))
		}
		if !f.holdReplies(cl, built) {
			return false
		}
		if st.sub != nil {
			// A subscribed connection's frames all go through its
			// writer, in order (pubsub.go), which holds them itself.
			ok := true
			for next < len(replies) && replies[next] != nil && ok {
				ok = st.sub.enqueue(replies[next])
				replies[next] = nil
				next++
			}
			f.releaseReplies(cl, built)
			if !ok {
				return false
			}
			if st.quit {
				return true
			}
			todo = again
			continue
		}
		var flushed int64
		f.armWrite(cl, conn)
		for next < len(replies) && replies[next] != nil {
			wr.WriteRaw(replies[next])
			flushed += int64(len(replies[next]))
			replies[next] = nil
			next++
		}
		err := wr.Flush()
		if err != nil {
			f.writeFailed(cl, err) // before the release: it reads what was held
		}
		f.releaseReplies(cl, flushed)
		if err != nil {
			return false
		}
		if st.quit {
			return true
		}
		todo = again
	}
	return true
}

// armWrite sets the deadline for writing cl's replies: OutputSoftTime
// while they are over the soft limit, else writeTimeout.
func (f *Server) armWrite(cl *tracked, conn net.Conn) {
	d := writeTimeout
	if s := f.lim.get().OutputSoft; s > 0 && cl.held.Load() > s {
		d = min(d, f.lim.get().OutputSoftTime)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(d))
}

func (f *Server) writeFailed(cl *tracked, err error) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return
	}
	if s := f.lim.get().OutputSoft; s > 0 && cl.held.Load() > s {
		f.closeClient(cl, closedOutputSoft)
	} else {
		f.closeClient(cl, closedWrite)
	}
}

// runSplit runs a lane that mixes writes and reads in turns, in order:
// each run of writes through the log, each run of reads after a ReadIndex
// under the connection's reply budget. Reads carried through the log
// would build their replies on every replica, beyond any budget (SET x;
// GET big x127 would hold 2 GiB); a read served after the writes before
// it were acknowledged sees them just the same. A run of reads cut by the
// budget leaves it and everything after it unrun. False when the lane
// does not mix.
func (f *Server) runSplit(batch []command.Cmd, l *lane, replies [][]byte, st *connState) bool {
	if !l.write {
		return false
	}
	reads := 0
	for _, k := range l.idx {
		if !batch[k].Writes() {
			reads++
		}
	}
	if reads == 0 {
		return false
	}
	linear := *st
	linear.readonly = false // after its own writes a client reads its writes
	for start := 0; start < len(l.idx); {
		write := batch[l.idx[start]].Writes()
		end := start + 1
		for end < len(l.idx) && batch[l.idx[end]].Writes() == write {
			end++
		}
		f.runLane(batch, &lane{group: l.group, idx: l.idx[start:end], write: write}, replies, &linear)
		if notRun(pick(replies, l.idx[start:end])) {
			return true
		}
		start = end
	}
	return true
}

func pick(replies [][]byte, idx []int) [][]byte {
	out := make([][]byte, len(idx))
	for i, k := range idx {
		out[i] = replies[k]
	}
	return out
}

// maxCommandReply bounds the replies one command builds across the
// partitions it reads (a cross-partition MGET, a transaction's reads):
// the largest reply one node may send another.
const maxCommandReply = 120 << 20

// commandCap returns ctx carrying a fresh cap for one command's replies.
func commandCap(ctx context.Context) context.Context {
	return failure.WithReplyCap(ctx, failure.NewReplyCap(maxCommandReply))
}

// notRun reports whether exec left some of replies unrun (see runChunk).
func notRun(replies [][]byte) bool {
	for _, r := range replies {
		if r == nil {
			return true
		}
	}
	return false
}

// memoryInfo is INFO's Memory section, in Redis's field names.
func (f *Server) memoryInfo() string {
	l := f.lim.get()
	var used uint64
	if l.UsedMemory != nil {
		used = l.UsedMemory()
	}
	// No Lua VM outlives its run (package script), so the VMs hold
	// nothing between runs; the scripts' cache is the node's bodies.
	n, bytes := f.scripts.size()
	return fmt.Sprintf("# Memory\r\nused_memory:%d\r\nmaxmemory:%d\r\nmaxmemory_policy:noeviction\r\nmem_clients_normal:%d\r\nmaxmemory_clients:%d\r\nmaxclients:%d\r\nused_memory_lua:0\r\nused_memory_vm_eval:0\r\nused_memory_scripts_eval:%d\r\nnumber_of_cached_scripts:%d\r\n\r\n",
		used, l.MaxMemory, f.lim.held.Load(), l.ReplyBudget, l.MaxClients, bytes, n)
}

// limitConfig is what CONFIG GET reports of the limits, in Redis's names
// and units.
func (f *Server) limitConfig() [][2]string {
	l := f.lim.get()
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	return [][2]string{
		{"maxclients", strconv.Itoa(l.MaxClients)},
		{"timeout", secs(l.IdleTimeout)},
		{"client-read-timeout", secs(l.ClientReadTimeout)},
		{"client-query-buffer-limit", strconv.Itoa(respLimits(*l).MaxCommandLen)},
		{"client-output-buffer-limit", fmt.Sprintf("normal %d %d %s", l.OutputHard, l.OutputSoft, secs(l.OutputSoftTime))},
		{"maxmemory-clients", i64(l.ReplyBudget)},
		{"maxmemory", strconv.FormatUint(l.MaxMemory, 10)},
		{"maxmemory-policy", "noeviction"},
	}
}
