package edge

import (
	"cmp"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/acl"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/pubsub"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
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
)

// Server serves RESP clients.
type Server struct {
	cfg    Config
	ctx    context.Context // ends when the node stops
	limits resp.Limits
	lim    *limiter // per-node bounds (limits.go)
	ids    atomic.Int64
	// scripts are the bodies of the scripts this node was given (EVALSHA).
	scripts scriptCache
	// scans are the SCAN walks under way on this node.
	scans scanWalks
	// pubsub holds this node's connections' subscriptions.
	pubsub *pubsub.Registry
	stats  *stats          // INFO's counters (info.go)
	config configOverrides // CONFIG SET's no-op parameters (config.go)
	// blockedClients counts the connections waiting in a blocking
	// command (INFO's blocked_clients).
	blockedClients atomic.Int64
	slowlog        *slowlog       // SLOWLOG's (slowlog.go)
	latency        latencyMonitor // LATENCY's events (latency.go)
	// lingering: the node is stopping and leads nothing; every
	// connection is redirected as a cluster client's is (Linger).
	lingering atomic.Bool
	waitLines waitLines // the blocked connections' order (blocking.go)
	users     users     // the cluster's users as this node knows them (auth.go)
	functions functions // the cluster's function libraries as this node knows them
	// configVersion is the version of the cluster's settings this node
	// applied (config.go); configMu orders their applications.
	configVersion atomic.Uint64
	configMu      sync.Mutex
	// notifyFlags are notify-keyspace-events' classes; notifyOut carries
	// their events to the other nodes (notify.go).
	notifyFlags atomic.Int32
	notifyOut   notifyQueue

	mu      sync.Mutex
	ln      net.Listener          // guarded by mu
	conns   map[net.Conn]struct{} // guarded by mu
	closing bool                  // guarded by mu
	active  sync.WaitGroup        // connections being served
	// retired: the node was removed from the cluster (Retire); every
	// connection answers its next read with errNodeRemoved and closes.
	retired atomic.Bool
	// leaders holds back redirects while a partition's leader moves
	// (settle.go); now is its clock (tests replace it).
	leaders   leaderWatch
	slotsSeen slotWatch
	now       func() time.Time
	// slots is the cluster's initial equal ranges, used only while the
	// view has no slot table (slotTable).
	slots *ring.SlotTable
}

// New makes the edge of a node; ctx ends when the node stops.
func New(ctx context.Context, cfg Config) *Server {
	f := &Server{cfg: cfg, ctx: ctx, pubsub: pubsub.NewRegistry(), stats: newStats(), slowlog: newSlowlog(), limits: respLimits(cfg.Limits), lim: newLimiter(cfg.Limits), conns: map[net.Conn]struct{}{}, now: time.Now}
	if cfg.Partitions > 0 {
		f.slots = ring.EqualSlotTable(cfg.Partitions)
	}
	if cfg.View != nil {
		f.leaders.prime(cfg.View)
		if every := cmp.Or(cfg.LeaderWatchEvery, leaderWatchEvery(cfg.Partitions)); every > 0 {
			go f.watchLeaders(ctx, every)
		}
	}
	return f
}

// partitionOf maps a key to its partition.
func (f *Server) partitionOf(key []byte) uint64 {
	return f.slotTable().GroupOf(ring.Slot(key))
}

// slotTable is the current map's slot table, or the equal ranges the
// cluster began with when the view has none.
func (f *Server) slotTable() *ring.SlotTable {
	if f.cfg.View != nil {
		if t := f.cfg.View.Slots(); t != nil {
			return t
		}
	}
	return f.slots
}

// Serve accepts clients on ln until StopAccepting or CloseAll.
func (f *Server) Serve(ln net.Listener) {
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
		case !f.makeRoom(len(f.conns)):
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

// StopAccepting closes the listener; open connections go on.
func (f *Server) StopAccepting() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	if f.ln != nil {
		f.ln.Close()
	}
}

// Linger keeps serving for up to d (or ctx), returning early once no
// client is connected: a stopping node that no longer leads anything
// answers every request for a key with MOVED to the key's leader, on
// every connection, so cluster clients — whose pooled connections never
// asked for the topology themselves — learn the new leaders before the
// node stops listening; a plain client would lose its connection next
// anyway. Commands without keys are still served.
func (f *Server) Linger(ctx context.Context, d time.Duration) {
	f.lingering.Store(true)
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for f.connCount() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
		}
	}
}

// Drain waits for connections to finish their current pipelines: each
// connection closes itself after answering once closing is set.
func (f *Server) Drain(ctx context.Context) {
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

// Retire takes a node removed from the cluster off the client path: no
// new connections, and each open one is told why (errNodeRemoved) at its
// next read, idle ones at once, before it closes. Connections still busy
// after grace are closed without a word.
func (f *Server) Retire(grace time.Duration) {
	f.retired.Store(true)
	f.StopAccepting()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.SetReadDeadline(time.Now()) // wake idle readers
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	f.CloseAll()
}

// sayRetired answers errNodeRemoved once the node is retired; true if
// it did (the caller closes the connection).
func (f *Server) sayRetired(c net.Conn, wr *resp.Writer) bool {
	if !f.retired.Load() {
		return false
	}
	wr.WriteRaw(resp.AppendError(nil, errNodeRemoved))
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = wr.Flush()
	return true
}

// CloseAll closes the listener and every connection, and waits until
// their handlers have returned.
func (f *Server) CloseAll() {
	f.StopAccepting()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.active.Wait()
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
	auth                   authState
	// budget bounds the replies the running chunk builds (limits.go).
	budget *failure.ReplyBudget
	// conn is the client's connection, for a blocking command to see
	// whether its client is still there (blocking.go).
	conn  net.Conn
	track *tracked // its limits' accounting (limits.go)
	// sub is the connection's pub/sub writer, from its first
	// (P|S)SUBSCRIBE or UNSUBSCRIBE on (pubsub.go).
	sub *subscriber
	// proto is the protocol the connection speaks: 2, or 3 after HELLO 3
	// (resp3.go).
	proto int
	// wrote: keys a transaction or script of the batch wrote, whose
	// blocked waiters are served before the replies go (blocking.go).
	wrote [][]byte
	// replies: CLIENT REPLY's mode (silence); replyChanged: a CLIENT
	// REPLY ran in this batch.
	replies      replyMode
	replyChanged bool
}

// replyMode is CLIENT REPLY's: on, off, or skip the next command's.
type replyMode uint8

const (
	repliesOn replyMode = iota
	repliesOff
	repliesSkip
)

// silence drops the replies CLIENT REPLY OFF or SKIP silences, each by
// the mode in force when its command came (a CLIENT REPLY in the batch
// changes it for those after). Pub/Sub's messages and confirmations go
// their own way and are never silenced, as in Redis.
func silence(cmds []command.Cmd, replies [][]byte, mode replyMode) replyMode {
	for i := range replies {
		if replies[i] == nil {
			continue
		}
		c := &cmds[i]
		if c.Spec != nil && c.Spec.Name == "client" && len(c.Args) == 3 && lower(c.Args[1]) == "reply" {
			switch lower(c.Args[2]) {
			case "on":
				mode = repliesOn
			case "off":
				mode = repliesOff
			case "skip":
				mode = repliesSkip
			}
			continue // its own reply is OK (ON), nothing (OFF, SKIP) or an error
		}
		switch mode {
		case repliesOff:
			replies[i] = []byte{}
		case repliesSkip:
			replies[i] = []byte{}
			mode = repliesOn
		}
	}
	return mode
}

func (f *Server) handle(c net.Conn) {
	st := &connState{id: f.ids.Add(1), local: c.LocalAddr(), conn: c, proto: 2}
	cl := f.register(c, st.id)
	st.track = cl
	defer func() {
		if st.sub != nil {
			f.pubsub.Forget(st.sub)
			st.sub.finish()
		}
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.Close()
		f.unregister(cl)
		f.active.Done()
	}()
	defer f.forget(st)
	if !f.admit(c, st) {
		f.stats.rejected.Add(1)
		return
	}
	f.stats.connections.Add(1)
	tc := &timedConn{Conn: c, cl: cl, partial: f.lim.get().ClientReadTimeout}
	lim := f.limits
	lim.Buffer = func(n int) error { return f.queryBuffer(cl, n) }
	rd := resp.NewReader(tc, lim)
	wr := resp.NewWriter(c)
	for {
		// Armed before the closing check, so Drain's wake-up is not lost.
		f.awaitCommand(tc, rd.InCommand())
		if f.sayRetired(c, wr) || f.isClosing() {
			return
		}
		args, err := rd.ReadCommand()
		cl.idleSince.Store(0)
		// Removed while this read waited (the reader's own deadlines can
		// outlast Retire's wake-up): what it read is not served.
		if f.sayRetired(c, wr) {
			return
		}
		if f.tooLarge(wr, err, st) {
			continue // dropped whole: the connection reads on
		}
		if err != nil {
			if !f.sayRetired(c, wr) {
				f.readFailed(tc, wr, err)
			}
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
		f.stats.commands.Add(int64(len(batch)))
		for start := 0; start < len(batch) && !st.quit; start += execChunk {
			if !f.runChunk(batch[start:min(start+execChunk, len(batch))], st, cl, c, wr) {
				return
			}
		}
		if st.quit {
			return
		}
		if f.tooLarge(wr, pending, st) {
			continue
		}
		if pending != nil {
			f.protocolError(wr, pending)
			return
		}
	}
}

// tooLarge answers a command the reader dropped for an argument over the
// value limit (resp.TooLargeError), in its place among the replies: the
// client gets an error, not a closed connection, and goes on. As any
// command refused while queued, it spoils a MULTI (EXEC then aborts), and
// CLIENT REPLY OFF or SKIP silences its reply.
func (f *Server) tooLarge(wr *resp.Writer, err error, st *connState) bool {
	var tl *resp.TooLargeError
	if !errors.As(err, &tl) {
		return false
	}
	if st.multi.on {
		st.multi.dirty = true
	}
	switch st.replies {
	case repliesOff:
	case repliesSkip:
		st.replies = repliesOn
	default:
		wr.WriteRaw(resp.AppendError(nil, "ERR "+tl.Error()))
	}
	_ = wr.Flush()
	return true
}

// protocolError answers malformed input as Redis does, then the caller
// closes the connection.
func (f *Server) protocolError(wr *resp.Writer, err error) {
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

// decode is the edge's one lookup of a command: its spec, arity, keys and
// their partitions.
func (f *Server) decode(args [][]byte) (command.Cmd, error) {
	return command.Decode(args, f.partitionOf)
}

// exec runs a pipelined batch and returns the replies in order. Every
// command is decoded once, then passes the same gates: refused if it did
// not decode, queued if the connection is in MULTI, redirected (-MOVED)
// for a cluster-aware client, then run. Data commands between other
// commands run as lanes, one per partition: lanes run concurrently, each
// lane in order. Connection commands, transaction commands (MULTI ...
// EXEC, WATCH) and commands whose keys span partitions run one at a time,
// in their place.
func (f *Server) exec(batch [][][]byte, st *connState) [][]byte {
	cmds := make([]command.Cmd, len(batch))
	errs := make([]error, len(batch))
	for i, args := range batch {
		cmds[i], errs[i] = f.decode(args)
	}
	proto, mode := st.proto, st.replies
	replies := f.execRound(batch, cmds, errs, st)
	if mode != repliesOn || st.replyChanged {
		st.replies, st.replyChanged = silence(cmds, replies, mode), false
	}
	f.notifyBatch(cmds, replies)
	if f.waitLines.count.Load() > 0 || len(st.wrote) > 0 {
		f.serveWaiters(append(st.wrote, writtenKeys(cmds, errs, replies)...))
		st.wrote = nil
	}
	if proto == 3 || st.proto == 3 {
		replies3(cmds, replies, proto)
	}
	// INFO's counters: each command once, in the round that answers it
	// (by its one lookup, the decode's).
	for i, r := range replies {
		if r != nil {
			var name []byte
			if len(batch[i]) > 0 {
				name = batch[i][0]
			}
			f.stats.count(cmds[i].Spec, name, st.auth.user != "", r)
		}
	}
	return replies
}

func (f *Server) execRound(batch [][][]byte, cmds []command.Cmd, errs []error, st *connState) [][]byte {
	replies := make([][]byte, len(batch))
	// CLIENT LIST's cmd and idle: once a batch, for its last command.
	if last := len(batch) - 1; last >= 0 && errs[last] == nil {
		st.noteCommand(acl.FullName(cmds[last].Spec, cmds[last].Args))
	}
	if st.proto == 2 && f.subscribed(st) {
		for i := range cmds {
			if errs[i] == nil && !allowedSubscribed(cmds[i].Spec) {
				errs[i] = &limitError{errSubscribedMode(cmds[i].Spec.Name)}
			}
		}
	}
	control := func(i int) bool { return errs[i] == nil && cmds[i].Spec.Is(command.TxnControl) }
	checked := make([]bool, len(batch))
	for i := 0; i < len(batch); {
		// Authentication and ACLs: after decode, before MULTI queues the
		// command, in order, so a pipelined AUTH counts for what follows.
		if bye := f.gate(cmds, errs, checked, i, st); bye != nil {
			return append(replies[:i], bye...)
		}
		if st.multi.on || control(i) {
			replies[i] = f.txnCommand(&cmds[i], errs[i], st)
			i++
			if st.quit {
				return replies[:i]
			}
			continue
		}
		lanes := map[uint64]*lane{}
		var order []*lane
		j := i
		for ; j < len(batch); j++ {
			if bye := f.gate(cmds, errs, checked, j, st); bye != nil {
				return append(replies[:i], bye...)
			}
			if errs[j] != nil {
				replies[j] = ErrorReply(errs[j])
				continue
			}
			c := &cmds[j]
			if c.Spec.Flags&(command.TxnControl|command.Conn|command.Blocking) != 0 || c.Cross {
				break
			}
			if st.clusterAware || f.lingering.Load() {
				if m := f.moved(st, c); m != nil {
					replies[j] = m
					continue
				}
			}
			l := lanes[c.Group]
			if l == nil {
				l = &lane{group: c.Group}
				lanes[c.Group] = l
				order = append(order, l)
			}
			l.idx = append(l.idx, j)
			l.write = l.write || c.Writes()
		}
		if len(order) == 1 {
			f.runLane(cmds, order[0], replies, st)
		} else if len(order) > 1 {
			var wg sync.WaitGroup
			for _, l := range order {
				wg.Add(1)
				go func() { defer wg.Done(); f.runLane(cmds, l, replies, st) }()
			}
			wg.Wait()
		}
		if notRun(replies[i:j]) {
			return replies // the reply budget cut a lane: the rest runs after a write
		}
		switch {
		case j >= len(batch) || control(j):
		case isSubControl(cmds[j].Spec) && j > 0:
			// (j > 0, not j > i: a MULTI or cross-partition command
			// earlier in this call has a reply not yet written either.)
			// Its confirmations are queued behind the replies before it,
			// so those are written first (pubsub.go).
			return replies
		case isSubControl(cmds[j].Spec):
			replies[j] = f.connCommand(&cmds[j], st)
			return replies // what follows runs in the next round
		case cmds[j].Cross && !cmds[j].Spec.Is(command.Conn):
			// (A script whose keys span partitions is the edge's own:
			// crossscript.go.)
			begin := time.Now()
			replies[j] = f.runCross(cmds[j])
			f.slowlog.record(cmds[j].Args, time.Since(begin), st)
			j++
		case cmds[j].Spec.Is(command.Blocking) && j > 0:
			// The replies before a blocking command leave first (Redis
			// answers them at once); it runs as the next round's first.
			return replies
		case cmds[j].Spec.Is(command.Blocking):
			replies[j] = f.runBlocking(cmds[j], st)
			j++
			if replies[j-1] == nil { // its client went away while it waited
				st.quit = true
				return replies[:j-1]
			}
		default:
			begin := time.Now()
			replies[j] = f.connCommand(&cmds[j], st)
			f.stats.observe(cmds[j].Spec.Name, time.Since(begin))
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
func (f *Server) runCross(c command.Cmd) []byte {
	if c.Spec.Name == "pfcount" {
		return f.pfcountCross(c)
	}
	if c.Spec.Merge == command.MergeNone {
		// A command that cannot be cut into per-partition shares (SMOVE,
		// SINTERSTORE...) runs as an optimistic transaction
		// (crossmove.go); one without a plan answers as Redis Cluster.
		if reply := f.runCrossMove(c); reply != nil {
			return reply
		}
		return resp.AppendError(nil, kv.ErrCrossSlot)
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(commandCap(f.ctx), f.cfg.RequestTimeout)
	reply, err := f.cfg.Txns.Run(ctx, c)
	// A share refused because a split moved its keys away: nothing was
	// applied; the transaction is planned again by a fresh map.
	for attempt, since := 0, begin; isWrongGroup(err) && attempt < 5 && ctx.Err() == nil; attempt++ {
		f.cfg.View.RefreshMap(ctx, since)
		since = time.Now()
		reply, err = f.cfg.Txns.Run(ctx, c)
	}
	cancel()
	if err != nil {
		reply = ErrorReply(err)
	}
	f.measured(c.Spec, reply, time.Since(begin))
	return reply
}

// reroute runs again a command its partition refused because a split
// moved one of its keys away (failure.WrongGroup: nothing applied): the
// cluster map is read afresh (once for every command that met a refusal
// since since), and the command goes to its keys' partition by the new
// map, a few times while the map catches up. A command whose keys the
// split put in two partitions answers TRYAGAIN, as Redis Cluster answers
// a multi-key command during resharding; a client retries it.
func (f *Server) reroute(ctx context.Context, c *command.Cmd, write bool, since time.Time) ([]byte, error) {
	var err error = &failure.WrongGroupError{}
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		f.cfg.View.RefreshMap(ctx, since)
		since = time.Now()
		group, ok := f.groupOfKeys(c)
		if !ok {
			return nil, err
		}
		var reply []byte
		if write {
			out, errs := f.cfg.Router.WriteMany(ctx, group, [][][]byte{c.Args})
			reply, err = out[0], errs[0]
		} else {
			reply, err = f.cfg.Router.Read(ctx, group, c.Args)
		}
		if sig, _, isSig := failure.SignalOf(reply); isSig && err == nil {
			err = sig.Err()
		}
		var wrong *failure.WrongGroupError
		if !errors.As(err, &wrong) {
			return reply, err
		}
		// The map may not show the split yet: wait a little for it.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return nil, err
}

func isWrongGroup(err error) bool {
	var wrong *failure.WrongGroupError
	return errors.As(err, &wrong)
}

// groupOfKeys is the partition of c's keys by the current map; false if
// they span partitions.
func (f *Server) groupOfKeys(c *command.Cmd) (uint64, bool) {
	if len(c.Keys) == 0 {
		return c.Group, true
	}
	g := f.partitionOf(c.Args[c.Keys[0]])
	for _, k := range c.Keys[1:] {
		if f.partitionOf(c.Args[k]) != g {
			return 0, false
		}
	}
	return g, true
}

// readOne serves one read the edge makes itself (WATCH's versions,
// DBSIZE's key counts). A signal becomes its error, as in runLane, so it
// never reaches a client raw.
func (f *Server) readOne(ctx context.Context, group uint64, args [][]byte) ([]byte, error) {
	reply, err := f.cfg.Router.Read(ctx, group, args)
	if sig, _, ok := failure.SignalOf(reply); ok && err == nil {
		return nil, sig.Err()
	}
	return reply, err
}

// runLane runs one partition's commands of a batch, in order. A lane of
// writes is proposed as one batch through the raft log. A lane of reads
// shares one ReadIndex, or, for a connection that said READONLY, reads
// the local replica if there is one. A lane that mixes them runs its runs
// of writes and of reads in turn (runSplit), so reads never build their
// replies inside the log's apply, beyond the reply budget.
func (f *Server) runLane(batch []command.Cmd, l *lane, replies [][]byte, st *connState) {
	if f.runSplit(batch, l, replies, st) {
		return // reads and writes mixed: in turns (limits.go)
	}
	idx := l.idx
	cmds := make([][][]byte, len(idx))
	for i, k := range idx {
		cmds[i] = batch[k].Args
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(failure.WithReplyBudget(f.ctx, st.budget), f.cfg.RequestTimeout)
	var out [][]byte
	var errs []error
	switch {
	case l.write:
		out, errs = f.cfg.Router.WriteMany(ctx, l.group, cmds)
	case st.readonly && f.cfg.View.HasReplica(l.group):
		out, errs = f.cfg.Router.StaleReads(ctx, l.group, cmds)
	default:
		out, errs = f.cfg.Router.ReadMany(ctx, l.group, cmds)
	}
	for i, reply := range out {
		if sig, _, ok := failure.SignalOf(reply); ok && errs[i] == nil {
			errs[i] = sig.Err() // never raw to a client
		}
		var wrong *failure.WrongGroupError
		if errors.As(errs[i], &wrong) {
			out[i], errs[i] = f.reroute(ctx, &batch[idx[i]], l.write, begin)
		}
	}
	cancel()
	took := time.Since(begin)
	for i, reply := range out {
		if errors.Is(errs[i], failure.ErrNotRun) {
			continue // left nil: runs again after the replies before it are written
		}
		if errs[i] != nil {
			reply = ErrorReply(errs[i])
		}
		replies[idx[i]] = reply
		f.measured(batch[idx[i]].Spec, reply, took)
		f.slowlog.record(batch[idx[i]].Args, took, st)
	}
}

// pfcountCross answers PFCOUNT over keys of several partitions: their
// values are read in one read-only transaction (one consistent cut) and
// merged here, as Redis merges them.
func (f *Server) pfcountCross(c command.Cmd) []byte {
	gets := make([]command.Cmd, 0, len(c.Args)-1)
	for _, k := range c.Args[1:] {
		g, err := f.decode([][]byte{[]byte("get"), k})
		if err != nil {
			return ErrorReply(err)
		}
		gets = append(gets, g)
	}
	ctx, cancel := context.WithTimeout(commandCap(f.ctx), f.cfg.RequestTimeout)
	defer cancel()
	reply, err := f.cfg.Txns.Exec(ctx, gets, nil)
	if err != nil {
		return ErrorReply(err)
	}
	v, _, perr := resp.ParseValue(reply)
	if perr != nil || v.Kind != '*' || len(v.Array) != len(gets) {
		return reply
	}
	values := make([][]byte, len(v.Array))
	for i, e := range v.Array {
		switch {
		case e.Kind == '-':
			return resp.AppendError(nil, string(e.Str))
		case !e.Null:
			values[i] = e.Str
		}
	}
	n, msg := kv.PFCountValues(values)
	if msg != "" {
		return resp.AppendError(nil, msg)
	}
	return resp.AppendInt(nil, n)
}
