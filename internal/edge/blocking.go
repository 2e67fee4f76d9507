package edge

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Blocking pops (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BZPOPMIN, BZPOPMAX)
// outside MULTI. The client's connection waits here, not in a partition:
// the node reads whether any source key holds something (EXISTS on the
// partition's leader), and only then proposes the command, whose apply
// pops at most one element or answers that there was nothing (another
// waiter was first). So:
//   - each element goes to exactly one waiter: the pop is one log entry,
//     deduplicated if retried; a pop whose outcome is unknown answers the
//     client so (UNCERTAIN), never pops twice;
//   - a leader change only delays the next read or pop (the router
//     follows the new leader), and the timeout runs on this node's clock,
//     so it survives the change;
//   - a client that went away is noticed before the pop (its socket
//     reports the peer's close), so no element is popped for nobody.
//
// Invariant: a blocked connection costs one read per poll, every
// pollMin..pollMax (backing off while nothing arrives), and nothing else.
//
// The waiters of one node are served first come, first served, as Redis
// serves its blocked clients: each joins a line per source key, and only
// the first in one of its lines may propose a pop; the others wait their
// turn. Waiters on different nodes race (the first to propose after a
// push gets the element).
const (
	pollMin = 2 * time.Millisecond
	pollMax = 100 * time.Millisecond
)

func (f *Server) runBlocking(c command.Cmd, st *connState) []byte {
	if m := f.moved(st, &c); m != nil {
		return m
	}
	ms, msg := kv.BlockingArgs(c.Spec, c.Args)
	if msg != "" {
		return resp.AppendError(nil, msg)
	}
	f.blockedClients.Add(1)
	defer f.blockedClients.Add(-1)
	var deadline time.Time
	if ms > 0 {
		deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	sources := kv.BlockingSources(c.Spec, c.Args)
	probe := append([][]byte{[]byte("exists")}, sources...)
	turn := f.waitLines.join(sources)
	defer f.waitLines.leave(turn)
	unblock := make(chan bool, 1)
	if st.track != nil {
		st.track.unblock.Store(&unblock)
		defer st.track.unblock.Store(nil)
	}
	wait := pollMin
	// The first look is not cut short by the command's timeout: a
	// source that holds something is popped however short the timeout,
	// as Redis pops before it blocks.
	first := true
	for {
		// Nudges that came before this look are answered by it (serve).
		nudged := turn.take()
		out, done := f.lookAndPop(c, st, turn, probe, deadline, first)
		first = false
		if done {
			// Out of the lines before the keys it wrote are served, so a
			// chain that comes back to its sources does not wait for it.
			f.waitLines.leave(turn)
			if dst := kv.BlockingDestination(c.Spec, c.Args); dst != nil && out != nil {
				f.serveWaiters([][]byte{dst})
			}
			closeAll(nudged)
			return out
		}
		closeAll(nudged)
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return kv.BlockedReply()
		}
		d := wait
		if !deadline.IsZero() {
			d = min(d, deadline.Sub(now))
		}
		select {
		case <-f.ctx.Done():
			return resp.AppendError(nil, errShuttingDown)
		case <-time.After(d):
			wait = min(2*wait, pollMax)
		case <-turn.nudge:
			wait = pollMin
		case asError := <-unblock:
			// CLIENT UNBLOCK: answered as a timeout, or as Redis's error.
			if asError {
				return resp.AppendError(nil, "UNBLOCKED client unblocked via CLIENT UNBLOCK")
			}
			return kv.BlockedReply()
		}
		if f.isClosing() {
			return resp.AppendError(nil, errShuttingDown)
		}
		if !connAlive(st.conn) {
			return nil
		}
	}
}

// lookAndPop reads whether a source holds something and, if so and it is
// this waiter's turn, pops; done when the command has its answer (nil:
// its client left).
func (f *Server) lookAndPop(c command.Cmd, st *connState, turn *waitTurn, probe [][]byte, deadline time.Time, first bool) (out []byte, done bool) {
	// A read that fails (no leader yet, a slow partition) is "nothing
	// yet": the command waits out its own timeout, as it would for an
	// empty key; each read is bounded by what is left.
	ctx, cancel := f.waitContext(deadline, first)
	var n int64
	var perr error
	var reply []byte
	var err error
	if first {
		// A source of another type answers WRONGTYPE now, as in Redis.
		reply, err = f.readOne(ctx, c.Group, probe)
		n, perr = replyInt(reply)
	} else {
		// Once blocked, only a source of its type wakes it: a key that
		// became a string meanwhile leaves it waiting, as in Redis.
		n, reply, err = f.sourcesReady(ctx, c, probe[1:])
	}
	cancel()
	switch {
	case err != nil:
		return nil, false
	case perr != nil:
		return reply, true // an error reply to the read itself
	case n == 0 || !f.waitLines.first(turn):
		return nil, false // nothing, or another waiter here is before it
	case !connAlive(st.conn):
		return nil, true // nobody to answer: pop nothing
	}
	out = f.popOnce(c)
	if v, _, err := resp.ParseValue(out); err != nil || !v.Null {
		return out, true // popped, or an error (its outcome said)
	}
	return nil, false // another waiter (of another node) was first
}

// sourcesReady counts the sources that hold the type the command pops
// (one read of their types); reply is set when a read answered an error.
func (f *Server) sourcesReady(ctx context.Context, c command.Cmd, sources [][]byte) (int64, []byte, error) {
	want := "list"
	if strings.HasPrefix(c.Spec.Name, "bz") {
		want = "zset"
	}
	cmds := make([][][]byte, len(sources))
	for i, k := range sources {
		cmds[i] = [][]byte{[]byte("type"), k}
	}
	out, errs := f.cfg.Router.ReadMany(ctx, c.Group, cmds)
	var n int64
	for i := range cmds {
		if i >= len(out) || i >= len(errs) {
			return 0, nil, errors.New("no answer")
		}
		if errs[i] != nil {
			return 0, nil, errs[i]
		}
		if sig, _, ok := failure.SignalOf(out[i]); ok {
			return 0, nil, sig.Err()
		}
		v, _, err := resp.ParseValue(out[i])
		if err != nil || v.Kind == '-' {
			return 0, nil, errors.New("unreadable type")
		}
		if string(v.Str) == want {
			n++
		}
	}
	return n, nil, nil
}

// serveWaiters gives this node's waiters on keys their turn now, in
// order, each after the one before has looked, while they find
// something: a write's reply waits for them, so a client that pushes and
// then reads sees the waiters served, as in Redis. Bounded by the request
// timeout.
func (f *Server) serveWaiters(keys [][]byte) {
	if f.waitLines.count.Load() == 0 {
		return
	}
	deadline := time.Now().Add(f.cfg.RequestTimeout)
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		for n := f.waitLines.size(k); n > 0; n-- {
			t := f.waitLines.head(k)
			if t == nil {
				break
			}
			if !t.nudgeAndWait(deadline) {
				return
			}
			if f.waitLines.head(k) == t {
				break // it found nothing: nor would those after it
			}
		}
	}
}

const errShuttingDown = "TRYAGAIN the node is shutting down; nothing was popped"

// waitContext bounds one read of a blocked command: the request timeout,
// or (after the first) what is left of the command's own when that is
// shorter.
func (f *Server) waitContext(deadline time.Time, first bool) (context.Context, context.CancelFunc) {
	d := f.cfg.RequestTimeout
	if !deadline.IsZero() && !first {
		d = min(d, max(time.Until(deadline), pollMin))
	}
	return context.WithTimeout(f.ctx, d)
}

// popOnce proposes the blocking command once, in its non-blocking form.
func (f *Server) popOnce(c command.Cmd) []byte {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	replies, errs := f.cfg.Router.WriteMany(ctx, c.Group, [][][]byte{c.Args})
	var reply []byte
	switch {
	case len(replies) != 1 || len(errs) != 1:
		reply = resp.AppendError(nil, "ERR internal error: no answer from the partition")
	case errs[0] != nil:
		reply = ErrorReply(errs[0])
	default:
		reply = replies[0]
		if sig, _, ok := failure.SignalOf(reply); ok {
			reply = ErrorReply(sig.Err())
		}
	}
	f.measured(c.Spec, reply, time.Since(begin))
	return reply
}

func replyInt(b []byte) (int64, error) {
	v, _, err := resp.ParseValue(b)
	if err != nil {
		return 0, err
	}
	if v.Kind != ':' {
		return 0, errNotInt
	}
	return v.Int, nil
}

var errNotInt = errors.New("not an integer reply")

// waitLines are the lines of this node's blocked connections, per source
// key, in the order they blocked.
type waitLines struct {
	mu    sync.Mutex
	lines map[string][]*waitTurn
	count atomic.Int64 // waiters in the lines: writes skip serveWaiters at 0
}

// waitTurn is one blocked command's place in the lines of its sources.
type waitTurn struct {
	keys  []string
	nudge chan struct{} // serveWaiters asks for a look now (buffered 1)

	mu      sync.Mutex
	pending []chan struct{} // closed when the look that answers them ends
	gone    bool
}

// take answers the nudges so far with the look that begins.
func (t *waitTurn) take() []chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending
	t.pending = nil
	return p
}

// nudgeAndWait asks t to look now and waits until it has (false: the
// deadline passed first).
func (t *waitTurn) nudgeAndWait(deadline time.Time) bool {
	ch := make(chan struct{})
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return true
	}
	t.pending = append(t.pending, ch)
	t.mu.Unlock()
	select {
	case t.nudge <- struct{}{}:
	default: // a nudge is already waiting for it
	}
	tm := time.NewTimer(time.Until(deadline))
	defer tm.Stop()
	select {
	case <-ch:
		return true
	case <-tm.C:
		return false
	}
}

func closeAll(chs []chan struct{}) {
	for _, ch := range chs {
		close(ch)
	}
}

func (w *waitLines) join(keys [][]byte) *waitTurn {
	t := &waitTurn{nudge: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lines == nil {
		w.lines = map[string][]*waitTurn{}
	}
	for _, k := range keys {
		ks := string(k)
		if slices.Contains(t.keys, ks) {
			continue
		}
		t.keys = append(t.keys, ks)
		w.lines[ks] = append(w.lines[ks], t)
	}
	w.count.Add(1)
	return t
}

// first reports whether t is first in one of its lines.
func (w *waitLines) first(t *waitTurn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range t.keys {
		if l := w.lines[k]; len(l) > 0 && l[0] == t {
			return true
		}
	}
	return false
}

// head is the first waiter on key, nil if none.
func (w *waitLines) head(key []byte) *waitTurn {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l := w.lines[string(key)]; len(l) > 0 {
		return l[0]
	}
	return nil
}

func (w *waitLines) size(key []byte) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines[string(key)])
}

// leave takes t out of its lines (again: a no-op); nudges not yet taken
// are answered, as it will look no more.
func (w *waitLines) leave(t *waitTurn) {
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	t.gone = true
	closeAll(t.pending)
	t.pending = nil
	t.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range t.keys {
		l := slices.DeleteFunc(w.lines[k], func(x *waitTurn) bool { return x == t })
		if len(l) == 0 {
			delete(w.lines, k)
		} else {
			w.lines[k] = l
		}
	}
	w.count.Add(-1)
}

// writtenKeys are the keys of the batch's writes that did not fail.
func writtenKeys(cmds []command.Cmd, errs []error, replies [][]byte) [][]byte {
	var keys [][]byte
	for i := range cmds {
		c := &cmds[i]
		if errs[i] != nil || i >= len(replies) || len(replies[i]) == 0 || replies[i][0] == '-' || c.Spec == nil || !c.Writes() {
			continue
		}
		keys = appendKeys(keys, c)
	}
	return keys
}

func appendKeys(keys [][]byte, c *command.Cmd) [][]byte {
	for _, k := range c.Keys {
		keys = append(keys, c.Args[k])
	}
	return keys
}
