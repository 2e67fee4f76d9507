package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Front-end limits.
const (
	// maxPipeline and maxPipelineBytes bound the commands read ahead from
	// one connection before replies are written.
	maxPipeline      = 1024
	maxPipelineBytes = 32 << 20
	// execChunk commands run and are answered at a time, bounding the
	// replies a connection holds.
	execChunk = 128
	// writeTimeout bounds how long a client that does not read its replies
	// can hold them in memory.
	writeTimeout = time.Minute
	// maxClients bounds open client connections (Redis's maxclients).
	maxClients = 10000
)

// frontend serves RESP clients.
type frontend struct {
	n      *Node
	limits resp.Limits
	ids    atomic.Int64

	mu      sync.Mutex
	ln      net.Listener          // guarded by mu
	conns   map[net.Conn]struct{} // guarded by mu
	closing bool                  // guarded by mu
	active  sync.WaitGroup        // connections being served
}

func newFrontend(n *Node) *frontend {
	return &frontend{n: n, limits: resp.DefaultLimits(), conns: map[net.Conn]struct{}{}}
}

func (f *frontend) serve(ln net.Listener) {
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		switch {
		case f.closing:
			f.mu.Unlock()
			c.Close()
			continue
		case len(f.conns) >= maxClients:
			f.mu.Unlock()
			_, _ = c.Write(resp.AppendError(nil, "ERR max number of clients reached"))
			c.Close()
			continue
		}
		f.conns[c] = struct{}{}
		f.active.Add(1)
		f.mu.Unlock()
		go f.handle(c)
	}
}

func (f *frontend) stopAccepting() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	if f.ln != nil {
		f.ln.Close()
	}
}

// drain waits for connections to finish their current pipelines: each
// connection closes itself after answering once closing is set.
func (f *frontend) drain(ctx context.Context) {
	f.mu.Lock()
	for c := range f.conns {
		// Wake readers blocked on an idle connection; busy ones finish
		// their batch first because replies are written before the next read.
		_ = c.SetReadDeadline(time.Now())
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (f *frontend) closeAll() {
	f.stopAccepting()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
}

// connState is what a connection remembers between commands.
type connState struct {
	id    int64
	name  []byte
	quit  bool
	multi multiState
	local net.Addr // this end of the connection: names the node to the client
	// clusterAware: the client speaks the cluster protocol and follows
	// -MOVED (see cluster.go); readonly: it accepts stale follower reads.
	clusterAware, readonly bool
}

func (f *frontend) handle(c net.Conn) {
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.Close()
		f.active.Done()
	}()
	st := &connState{id: f.ids.Add(1), local: c.LocalAddr()}
	rd := resp.NewReader(c, f.limits)
	wr := resp.NewWriter(c)
	for {
		args, err := rd.ReadCommand()
		if err != nil {
			f.protocolError(wr, err)
			return
		}
		batch := [][][]byte{cloneArgs(args)}
		size := argsSize(args)
		var pending error
		// Take whatever complete commands are already buffered, without
		// waiting for more bytes, so replies are never held back.
		for len(batch) < maxPipeline && size < maxPipelineBytes {
			args, ok, err := rd.TryReadCommand()
			if err != nil {
				pending = err
				break
			}
			if !ok {
				break
			}
			batch = append(batch, cloneArgs(args))
			size += argsSize(args)
		}
		for start := 0; start < len(batch) && !st.quit; start += execChunk {
			for _, reply := range f.exec(batch[start:min(start+execChunk, len(batch))], st) {
				wr.WriteRaw(reply)
			}
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := wr.Flush(); err != nil {
				return
			}
		}
		if st.quit {
			return
		}
		if pending != nil {
			f.protocolError(wr, pending)
			return
		}
		f.mu.Lock()
		closing := f.closing
		f.mu.Unlock()
		if closing {
			return
		}
	}
}

// protocolError answers malformed input as Redis does, then the caller
// closes the connection.
func (f *frontend) protocolError(wr *resp.Writer, err error) {
	var pe *resp.ProtocolError
	if errors.As(err, &pe) {
		wr.WriteRaw(resp.AppendError(nil, "ERR "+pe.Error()))
		_ = wr.Flush()
	}
}

func argsSize(args [][]byte) int {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	return n
}

func cloneArgs(args [][]byte) [][]byte {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(args))
	for i, a := range args {
		start := len(buf)
		buf = append(buf, a...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// lane is one partition's data commands of a batch, in order.
type lane struct {
	group uint64
	idx   []int // positions in the batch
	write bool  // some command writes: the lane goes through the log
}

// routed is a data command ready to run on a partition, or (cross) on
// several as one transaction.
type routed struct {
	cmd   *kv.Command
	group uint64
	cross bool
}

// classify resolves a data command's partition, or returns the reply for
// a command that cannot be routed. ok=false means a connection command.
func (f *frontend) classify(args [][]byte) (r routed, reply []byte, ok bool) {
	c := kv.Lookup(args[0])
	if c == nil {
		if isConnCommand(args[0]) {
			return routed{}, nil, false
		}
		return routed{}, resp.AppendError(nil, kv.UnknownCommand(args)), true
	}
	if !c.CheckArity(args) {
		return routed{}, resp.AppendError(nil, kv.WrongArity(c.Name)), true
	}
	group, cross := f.partitionsOf(c, args)
	return routed{cmd: c, group: group, cross: cross}, nil, true
}

// exec runs a pipelined batch and returns the replies in order. Data
// commands between other commands run as lanes, one per partition: lanes
// run concurrently, each lane in order. Connection commands, transaction
// commands (MULTI ... EXEC, WATCH) and commands whose keys span partitions
// run one at a time, in their place.
func (f *frontend) exec(batch [][][]byte, st *connState) [][]byte {
	replies := make([][]byte, len(batch))
	for i := 0; i < len(batch); {
		if st.multi.on || isTxnControl(batch[i][0]) {
			replies[i] = f.txnCommand(batch[i], st)
			i++
			if st.quit {
				return replies[:i]
			}
			continue
		}
		lanes := map[uint64]*lane{}
		var order []*lane
		j := i
		var alone *routed // a cross-partition command ending the run of lanes
		for ; j < len(batch); j++ {
			if isTxnControl(batch[j][0]) {
				break
			}
			r, reply, ok := f.classify(batch[j])
			if !ok {
				break
			}
			if reply != nil {
				replies[j] = reply
				continue
			}
			if !r.cross && st.clusterAware {
				if m := f.moved(st, r.cmd, batch[j], r.group); m != nil {
					replies[j] = m
					continue
				}
			}
			if r.cross {
				alone = &r
				break
			}
			l := lanes[r.group]
			if l == nil {
				l = &lane{group: r.group}
				lanes[r.group] = l
				order = append(order, l)
			}
			l.idx = append(l.idx, j)
			l.write = l.write || r.cmd.Write
		}
		if len(order) == 1 {
			f.runLane(batch, order[0], replies, st.readonly)
		} else if len(order) > 1 {
			var wg sync.WaitGroup
			for _, l := range order {
				wg.Add(1)
				go func() { defer wg.Done(); f.runLane(batch, l, replies, st.readonly) }()
			}
			wg.Wait()
		}
		switch {
		case j >= len(batch) || isTxnControl(batch[j][0]):
		case alone != nil:
			replies[j] = f.runCross(batch[j], alone.cmd)
			j++
		default:
			replies[j] = f.connCommand(batch[j], st)
			j++
			if st.quit {
				return replies[:j]
			}
		}
		i = j
	}
	return replies
}

// runCross runs a multi-key command whose keys span partitions as one
// transaction.
func (f *frontend) runCross(args [][]byte, c *kv.Command) []byte {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(f.n.ctx, f.n.cfg.RequestTimeout)
	reply := f.n.txns.Run(ctx, args)
	cancel()
	f.n.metrics.Requests.WithLabelValues(c.Name, outcomeLabel(reply)).Inc()
	f.n.metrics.RequestLatency.Observe(time.Since(begin).Seconds())
	return reply
}

// runLane runs one partition's commands of a batch, in order. A lane with
// any write is proposed whole, reads included, as one batch through the
// raft log: a read applied from the log is linearizable and sees every
// command before it. A lane of reads shares one ReadIndex, or, for a
// connection that said READONLY, reads the local replica if there is one.
func (f *frontend) runLane(batch [][][]byte, l *lane, replies [][]byte, stale bool) {
	idx := l.idx
	cmds := make([][][]byte, len(idx))
	for i, k := range idx {
		cmds[i] = batch[k]
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(f.n.ctx, f.n.cfg.RequestTimeout)
	var out [][]byte
	switch {
	case l.write:
		out = f.n.router.writeMany(ctx, l.group, cmds)
	case stale && f.n.eng.HasGroup(l.group):
		out = f.n.router.staleReads(ctx, l.group, cmds)
	default:
		out = f.n.router.readMany(ctx, l.group, cmds)
	}
	cancel()
	elapsed := time.Since(begin).Seconds()
	for i, reply := range out {
		replies[idx[i]] = reply
		outcome := "ok"
		if len(reply) > 0 && reply[0] == '-' {
			outcome = "error"
		}
		f.n.metrics.Requests.WithLabelValues(lowerName(cmds[i][0]), outcome).Inc()
		f.n.metrics.RequestLatency.Observe(elapsed)
	}
}

// lowerName is the metric label of a data command.
func lowerName(name []byte) string {
	if c := kv.Lookup(name); c != nil {
		return c.Name
	}
	return "unknown"
}
