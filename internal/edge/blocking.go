package edge

import (
	"context"
	"errors"
	"slices"
	"sync"
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
	wait := pollMin
	// The first look is not cut short by the command's timeout: a
	// source that holds something is popped however short the timeout,
	// as Redis pops before it blocks.
	first := true
	for {
		// A read that fails (no leader yet, a slow partition) is
		// "nothing yet": the command waits out its own timeout, as it
		// would for an empty key; each read is bounded by what is left.
		ctx, cancel := f.waitContext(deadline, first)
		first = false
		reply, err := f.readOne(ctx, c.Group, probe)
		cancel()
		if n, perr := replyInt(reply); err == nil && perr == nil && n > 0 && !f.waitLines.first(turn) {
			wait = pollMin // another waiter here is before it: its turn comes soon
		} else if err == nil && perr == nil && n > 0 {
			if !connAlive(st.conn) {
				return nil // nobody to answer: pop nothing
			}
			out := f.popOnce(c)
			if v, _, err := resp.ParseValue(out); err != nil || !v.Null {
				return out // popped, or an error (its outcome said)
			}
			wait = pollMin // another waiter was first: look again soon
		} else if err == nil && perr != nil {
			return reply // an error reply to the read itself
		}
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
		}
		if f.isClosing() {
			return resp.AppendError(nil, errShuttingDown)
		}
		if !connAlive(st.conn) {
			return nil
		}
		wait = min(2*wait, pollMax)
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
	f.cfg.Metrics.Requests.WithLabelValues(c.Spec.Name, outcomeLabel(reply)).Inc()
	f.cfg.Metrics.RequestLatency.Observe(time.Since(begin).Seconds())
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
}

type waitTurn struct{ keys []string }

func (w *waitLines) join(keys [][]byte) *waitTurn {
	t := &waitTurn{}
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

func (w *waitLines) leave(t *waitTurn) {
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
}
