package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/resp"
)

// Replies a client may get from a transaction besides its results.

// Coordinator runs transactions for one node's clients: one-phase commit
// when every key is in one partition, two-phase commit otherwise.
type Coordinator struct {
	cfg      Config
	cl       Cluster
	resolver *Resolver
	counter  atomic.Uint64
	stats    stats
}

// nullArray is EXEC's reply when a watched key changed.
var nullArray = resp.AppendNullArray(nil)

// stats count the coordinator's transactions by how they ended.
type stats struct {
	committed, watchFailed, failed, gaveUp, conflicts atomic.Uint64
}

// Stats are a coordinator's transactions since it started, by how they
// ended (one each), and the conflicts met on the way (each a retry).
type Stats struct {
	Committed   uint64 // applied, all of it (or, read-only, answered)
	WatchFailed uint64 // a watched key had changed: nothing applied (EXEC's null reply)
	Failed      uint64 // answered with an error (the reply says whether anything applied), or out of time
	GaveUp      uint64 // conflicts until the attempts ran out: nothing applied
	Conflicts   uint64 // attempts that met other transactions' locks and were retried
}

// Stats reads the coordinator's counters.
func (c *Coordinator) Stats() Stats {
	return Stats{
		Committed: c.stats.committed.Load(), WatchFailed: c.stats.watchFailed.Load(),
		Failed: c.stats.failed.Load(), GaveUp: c.stats.gaveUp.Load(), Conflicts: c.stats.conflicts.Load(),
	}
}

// NewCoordinator returns a coordinator over cl.
func NewCoordinator(cfg Config, cl Cluster) *Coordinator {
	cfg.ensureDefaults()
	return &Coordinator{cfg: cfg, cl: cl, resolver: NewResolver(cfg, cl)}
}

// Resolver is the coordinator's resolver, shared with plain reads and
// writes that meet locks and with the sweeper.
func (c *Coordinator) Resolver() *Resolver { return c.resolver }

// Exec runs cmds (decoded data commands) atomically, after checking that
// every watched key still has its version, and returns the EXEC reply: the
// array of the commands' replies, a null array when a watched key changed,
// or an error saying whether anything may have been applied.
func (c *Coordinator) Exec(ctx context.Context, cmds []command.Cmd, watches []Watch) ([]byte, error) {
	p, err := makePlan(cmds, watches, c.cfg.Partition)
	if err != nil {
		return nil, err
	}
	return c.run(ctx, p)
}

// Run executes one command that spans partitions (MSET, MGET, DEL, ...)
// atomically and returns its own reply.
func (c *Coordinator) Run(ctx context.Context, cmd command.Cmd) ([]byte, error) {
	reply, err := c.Exec(ctx, []command.Cmd{cmd}, nil)
	if err != nil {
		return nil, err
	}
	if elems, ok := SplitArray(reply); ok && len(elems) == 1 {
		return elems[0], nil
	}
	return reply, nil
}

// rePrepares bounds how often one attempt prepares participants again
// after clearing the locks it met (see twoPhase).
const rePrepares = 5

// outcome of one attempt.
type outcome int

const (
	done     outcome = iota // reply is final
	conflict                // met other transactions: back off, retry
)

func (c *Coordinator) run(ctx context.Context, p *plan) ([]byte, error) {
	if len(p.groups) == 0 { // MULTI, EXEC: nothing to run, nothing watched
		return resp.AppendArrayHeader(nil, 0), nil
	}
	prio := uint64(c.cfg.Now().UnixNano())
	for attempt := 1; ; attempt++ {
		var reply []byte
		var oc outcome
		var err error
		switch {
		case len(p.groups) == 1:
			reply, oc, err = c.onePhase(ctx, p)
		case p.readOnly && attempt <= c.cfg.OptimisticReads:
			reply, oc, err = c.readOptimistic(ctx, p)
		default:
			reply, oc, err = c.twoPhase(ctx, p, prio)
		}
		if oc == done {
			switch {
			case err != nil:
				c.stats.failed.Add(1)
			case bytes.Equal(reply, nullArray):
				c.stats.watchFailed.Add(1)
			default:
				c.stats.committed.Add(1)
			}
			return reply, err
		}
		if !c.backoff(ctx, attempt) {
			if ctx.Err() != nil {
				c.stats.failed.Add(1) // out of time, not of attempts
			} else {
				c.stats.gaveUp.Add(1)
			}
			return nil, &GaveUpError{Attempts: attempt}
		}
		c.stats.conflicts.Add(1)
	}
}

// backoff waits before attempt+1 after a conflict; false when there is to
// be none.
func (c *Coordinator) backoff(ctx context.Context, attempt int) bool {
	if attempt >= c.cfg.MaxAttempts || ctx.Err() != nil {
		return false
	}
	// Randomized, growing backoff: 1ms .. ~64ms.
	d := time.Duration(float64(time.Millisecond<<min(attempt-1, 6)) * (0.5 + c.cfg.Rand()))
	return c.cfg.Sleep(ctx, d)
}

// onePhase runs a single-partition transaction as one log entry.
func (c *Coordinator) onePhase(ctx context.Context, p *plan) ([]byte, outcome, error) {
	g := p.groups[0]
	reply, err := c.cl.Write(ctx, g, exec1Args(p.watches[g], p.cmds[g]))
	if err != nil {
		return nil, done, err
	}
	if holders, ok := ParseLocked(reply); ok {
		for _, h := range holders {
			c.resolver.Push(ctx, g, h, false)
		}
		return nil, conflict, nil
	}
	v, _, perr := resp.ParseValue(reply)
	if perr != nil || v.Kind != '*' {
		return nil, done, &InternalError{Msg: "malformed reply"}
	}
	if v.Null {
		return reply, done, nil
	}
	elems, _ := SplitArray(reply)
	out, err := p.merge(map[uint64][][]byte{g: elems})
	return out, done, err
}

// readOptimistic is one lock-free attempt at a read-only transaction over
// several partitions: it reads every share (its keys' versions, its
// commands' replies over committed values, and who holds write locks on
// its keys), then reads every share again, then checks that every lock
// holder it met is still undecided or aborted.
//
// Why that is a consistent cut: every first read ended before any second
// one began. When a key's version is the same in both reads, no
// transaction's intents were applied to it in between; a transaction that
// committed in between still held its lock at the second read, and was
// met. Every holder met was found undecided (or aborted) after all the
// reads, so none of them had committed while the reads ran, and the
// committed values were the current ones. Hence at any moment between the
// rounds every value read was current at once. The reader is ordered
// before the undecided holders, which is why it need not wait for them:
// nothing is locked or written, so readers and writers never hold each
// other up. Only when writers keep changing the keys does the caller fall
// back to shared locks (twoPhase), where age gives the reader its turn.
func (c *Coordinator) readOptimistic(ctx context.Context, p *plan) ([]byte, outcome, error) {
	seen := map[ID]holding{}
	first, _, reply, err := c.snapRound(ctx, p, seen)
	if reply != nil || err != nil {
		return reply, done, err
	}
	second, results, reply, err := c.snapRound(ctx, p, seen)
	if reply != nil || err != nil {
		return reply, done, err
	}
	for i := range second {
		if !bytes.Equal(second[i], first[i]) {
			return nil, conflict, nil
		}
	}
	for _, m := range seen {
		rec, err := c.resolver.ReadRecord(ctx, m.h)
		if err != nil || rec.Status == Committed || rec.Status == Missing {
			// Committed (or gone, or unknown): the values read may be
			// stale. Apply its intents where it was met, and read again.
			if err == nil && rec.Status == Committed {
				_, _ = c.cl.Write(ctx, m.group, resolveArgs(m.h.ID, Committed))
			}
			return nil, conflict, nil
		}
	}
	out, err := p.merge(results)
	return out, done, err
}

// snapRound reads every share once (txn.snap) and returns, per
// participant in plan order, its keys' versions, and per partition its
// commands' replies; the write-lock holders it met are added to seen.
// A reply (a watched key changed) or an error (a partition could not be
// read, an answer was malformed) ends the transaction.
func (c *Coordinator) snapRound(ctx context.Context, p *plan, seen map[ID]holding) (versions [][]byte, results map[uint64][][]byte, reply []byte, err error) {
	replies := make([][]byte, len(p.groups))
	errs := make([]error, len(p.groups))
	c.parallel(len(p.groups), func(i int) {
		g := p.groups[i]
		replies[i], errs[i] = c.cl.Read(ctx, g, snapArgs(p.watches[g], p.cmds[g]))
	})
	versions = make([][]byte, len(p.groups))
	results = map[uint64][][]byte{}
	for i, r := range replies {
		g := p.groups[i]
		if errs[i] != nil {
			return nil, nil, nil, &AbortedError{Group: g, Cause: errs[i]}
		}
		if failure.WatchFailed.Is(r) {
			return nil, nil, resp.AppendNullArray(nil), nil
		}
		parts, good := SplitArray(r)
		var elems [][]byte
		var holders []Ref
		var err error
		if good && len(parts) == 3 {
			elems, good = SplitArray(parts[1])
			v, _, perr := resp.ParseValue(parts[2])
			if perr == nil && v.Kind == '$' {
				holders, err = decodeRefs(v.Str)
			}
		}
		if !good || len(parts) != 3 || len(elems) != len(p.cmds[g]) || err != nil {
			return nil, nil, nil, &InternalError{Msg: "malformed snapshot read: " + string(bytes.TrimSpace(r))}
		}
		for _, h := range holders {
			seen[h.ID] = holding{h, g}
		}
		versions[i], results[g] = parts[0], elems
	}
	return versions, results, nil, nil
}

// parallel runs f(0..n-1) concurrently, or in order when the
// configuration says Sequential, and waits for all.
func (c *Coordinator) parallel(n int, f func(i int)) { inParallel(c.cfg.Sequential, n, f) }

// inParallel runs f(0..n-1) concurrently, or in order when sequential,
// and waits for all.
func inParallel(sequential bool, n int, f func(i int)) {
	if sequential {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// prepared is one participant's answer to PREPARE.
type prepared struct {
	replies [][]byte // on success
	holders []Ref    // conflict
	watch   bool     // a watched key changed
	err     error    // wraps ErrNotApplied or ErrUnknown, and the cause
}

func (c *Coordinator) prepareOne(ctx context.Context, g uint64, pr *prepare) prepared {
	reply, err := c.cl.Write(ctx, g, prepareArgs(pr))
	if err != nil {
		return prepared{err: err}
	}
	if hs, ok := ParseLocked(reply); ok {
		return prepared{holders: hs}
	}
	if failure.WatchFailed.Is(reply) {
		return prepared{watch: true}
	}
	elems, ok := SplitArray(reply)
	if !ok || len(elems) != len(pr.cmds) {
		return prepared{err: fmt.Errorf("%w: %w", ErrUnknown, &InternalError{Msg: "prepare answered " + string(bytes.TrimSpace(reply))})}
	}
	return prepared{replies: elems}
}

// twoPhase runs one attempt of a transaction over several partitions.
//
// Invariants, in the order the protocol establishes them:
//  1. The record is created, PENDING, in the same entry as the record
//     partition's locks; every other PREPARE is sent after that, so a lock
//     never exists without its record having existed.
//  2. Only this coordinator moves the record to COMMITTED, and only after
//     every participant answered PREPARE with success.
//  3. The client learns the transaction committed only after the record
//     says so; it learns "nothing was applied" only when no COMMIT was sent
//     or the record was seen ABORTED.
//  4. Parts are resolved only from a decided record, and the record is
//     deleted only after every part is resolved.
func (c *Coordinator) twoPhase(ctx context.Context, p *plan, prio uint64) ([]byte, outcome, error) {
	id := NewID(c.cfg.Origin, c.counter.Add(1))
	recGroup := p.groups[0]
	ref := Ref{ID: id, Group: recGroup, Priority: prio}
	rec := &Record{Status: Pending, Priority: prio, Participants: p.groups, ReadOnly: p.readOnly}
	share := func(g uint64) *prepare {
		pr := &prepare{ref: ref, watches: p.watches[g], cmds: p.cmds[g]}
		if g == recGroup {
			pr.create = rec
		}
		return pr
	}
	results := make([]prepared, len(p.groups))
	started := false // the record exists: its partition prepared
	var replies map[uint64][][]byte
	var holders []holding
	var watch, vetoed, pushed bool
	var failed *prepared
	var failedGroup uint64
	todo := []int{0}
	for round := 0; ; round++ {
		if !started {
			results[0] = c.prepareOne(ctx, recGroup, share(recGroup))
			if r := results[0]; r.err == nil && r.holders == nil && !r.watch {
				started = true
				stop := c.heartbeat(ctx, ref)
				defer stop()
				todo = todo[:0]
				for i := 1; i < len(p.groups); i++ {
					todo = append(todo, i)
				}
			} else {
				todo = nil
			}
		}
		if started {
			c.parallel(len(todo), func(j int) {
				i := todo[j]
				results[i] = c.prepareOne(ctx, p.groups[i], share(p.groups[i]))
			})
		}
		replies, holders, watch, vetoed, pushed, failed = map[uint64][][]byte{}, nil, false, false, false, nil
		todo = todo[:0]
		asked := results
		if !started {
			asked = results[:1]
		}
		for i, r := range asked {
			g := p.groups[i]
			switch {
			case r.err != nil:
				if failed == nil {
					failed, failedGroup = &results[i], g
				}
			case r.holders != nil:
				todo = append(todo, i)
				for _, h := range r.holders {
					holders = append(holders, holding{h, g})
				}
			case r.watch:
				watch = true
			default:
				replies[g] = r.replies
				if p.msetnx && string(r.replies[0]) != ":1\r\n" {
					vetoed = true
				}
			}
		}
		if holders == nil || watch || vetoed || failed != nil || round >= rePrepares {
			break
		}
		// Wound-wait: when every holder met could be cleared (younger ones
		// wounded, decided ones resolved), prepare those participants again
		// while keeping what is held, rather than letting go of everything;
		// so wide transactions are not starved by streams of narrow ones.
		// When younger holders were cleared but older live ones remain,
		// prepare again too: the participant's leader lets a PREPARE wait
		// there for older holders only (route's lock waits), and it could
		// not while a younger one stood in the way. Waiting only for older
		// transactions keeps the wait-for graph free of cycles. When only
		// older live holders stood in the way, the participant already
		// waited for them as long as it would: give up the locks and back
		// off.
		pushed = true
		released, rest, waitable := c.push(ctx, ref, holders)
		if rest > 0 && (!waitable || released == 0) {
			break
		}
	}
	allPrepared := len(replies) == len(p.groups)
	if allPrepared && !vetoed {
		c.cfg.Failpoint(api.FailAfterPrepare)
		if p.readOnly {
			// If the record is still PENDING, nobody has wounded or expired
			// this transaction, and only that lets anyone else release its
			// locks: every lock was held from its PREPARE until now, so at
			// the last PREPARE all were held at once and the reads are one
			// consistent cut. Release; there is nothing to decide.
			rec, err := c.resolver.ReadRecord(ctx, ref)
			c.abandon(id, recGroup, p.groups)
			if err != nil || rec.Status != Pending {
				return nil, conflict, nil
			}
			out, err := p.merge(replies)
			return out, done, err
		}
		return c.decide(ctx, p, ref, replies)
	}
	// No COMMIT will be sent: the attempt is over and applied nothing.
	// Abort the record (unless it never came to be) and release what was
	// prepared, in the background.
	if started || errors.Is(results[0].err, ErrUnknown) {
		if holders != nil && !vetoed && !watch {
			// About to retry: release this attempt's locks first, or the
			// retry would meet them.
			c.release(id, recGroup, p.groups)
		} else {
			c.abandon(id, recGroup, p.groups)
		}
	}
	switch {
	case vetoed:
		// MSETNX: some key exists, so the whole command answers 0. Shares
		// that met a lock or failed in the same round never answered: the
		// reply must not be assembled from them.
		return resp.AppendInt(resp.AppendArrayHeader(nil, 1), 0), done, nil
	case watch:
		return resp.AppendNullArray(nil), done, nil
	case holders != nil:
		if !pushed {
			_, _, _ = c.push(ctx, ref, holders)
		}
		return nil, conflict, nil
	}
	aborted := &AbortedError{Group: failedGroup}
	if failed != nil {
		aborted.Cause = failed.err
	}
	return nil, done, aborted
}

// holding is a lock holder met in a partition.
type holding struct {
	h     Ref
	group uint64
}

// push deals with the holders an attempt met: younger ones are wounded
// (aborted), decided or expired ones resolved where they were met; live
// older ones are left alone, so the oldest transaction always progresses.
// It reports how many holdings it released, how many it did not, and
// whether each of those is an older transaction that is alive (worth
// waiting for) rather than one it failed to reach or resolve.
func (c *Coordinator) push(ctx context.Context, self Ref, holders []holding) (released, rest int, waitable bool) {
	waitable = true
	decided := map[ID]Status{}
	for _, m := range holders {
		st, ok := decided[m.h.ID]
		if !ok {
			var err error
			if st, err = c.resolver.Decide(ctx, m.h, self.Older(m.h)); err != nil {
				st, waitable = 0, false
			}
			decided[m.h.ID] = st
		}
		if st == Pending || st == 0 {
			rest++
			waitable = waitable && st == Pending && m.h.Older(self)
			continue
		}
		if _, err := c.cl.Write(ctx, m.group, resolveArgs(m.h.ID, st)); err != nil {
			rest++
			waitable = false
			continue
		}
		released++
	}
	return released, rest, waitable
}

// decide flips the record to COMMITTED and answers the client from the
// prepared replies, or finds out that the transaction was aborted (by an
// older transaction or by someone who saw it expire).
func (c *Coordinator) decide(ctx context.Context, p *plan, ref Ref, replies map[uint64][][]byte) ([]byte, outcome, error) {
	reply, err := c.cl.Write(ctx, ref.Group, commitArgs(ref.ID))
	st, ok := parseStatus(reply)
	if err != nil || !ok {
		// The COMMIT may or may not have applied: ask the record, and if it
		// is still pending, abort it ourselves.
		st = c.settle(ctx, ref)
	}
	switch st {
	case Committed:
		c.cfg.Failpoint(api.FailAfterDecision)
		c.finish(ref.ID, ref.Group, Committed, p.groups)
		out, err := p.merge(replies)
		return out, done, err
	case Aborted, Missing:
		c.finish(ref.ID, ref.Group, Aborted, p.groups)
		return nil, conflict, nil
	}
	return nil, done, &DecisionUnknownError{Group: ref.Group}
}

// settle learns the final status of our own record after an uncertain
// COMMIT, aborting it if it is still pending. 0 when unreachable.
func (c *Coordinator) settle(ctx context.Context, ref Ref) Status {
	// The client's deadline may be what made COMMIT uncertain: settling
	// gets a short deadline of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	for {
		rec, err := c.resolver.ReadRecord(ctx, ref)
		if err == nil && rec.Status != Pending {
			return rec.Status
		}
		if err == nil {
			reply, werr := c.cl.Write(ctx, ref.Group, abortArgs(ref.ID, 0, true))
			if st, ok := parseStatus(reply); werr == nil && ok && st != Pending {
				return st
			}
		}
		if !c.cfg.Sleep(ctx, 10*time.Millisecond) {
			return 0
		}
	}
}

// settleTimeout bounds the search for an uncertain COMMIT's outcome.
const settleTimeout = 2 * time.Second

// cleanupTimeout bounds background resolution; the sweeper takes over
// whatever it leaves.
const cleanupTimeout = 10 * time.Second

// finish resolves every part of a decided transaction and deletes its
// record, in the background.
func (c *Coordinator) finish(id ID, recGroup uint64, st Status, groups []uint64) {
	c.cfg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		c.resolver.Finish(ctx, id, recGroup, Record{Status: st, Participants: groups})
	})
}

// abandon aborts our own pending record, then finishes it, in the
// background.
func (c *Coordinator) abandon(id ID, recGroup uint64, groups []uint64) {
	c.cfg.Go(func() { c.release(id, recGroup, groups) })
}

// release aborts our own pending record and finishes it.
func (c *Coordinator) release(id ID, recGroup uint64, groups []uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	reply, err := c.cl.Write(ctx, recGroup, abortArgs(id, 0, true))
	st, ok := parseStatus(reply)
	if err != nil || !ok {
		return // the sweeper will find the record when it expires
	}
	if st == Missing {
		st = Aborted // never created: parts can only be late, and aborted
	}
	c.resolver.Finish(ctx, id, recGroup, Record{Status: st, Participants: groups})
}

// heartbeat keeps ref's record alive while the attempt runs.
func (c *Coordinator) heartbeat(ctx context.Context, ref Ref) (stop func()) {
	if c.cfg.Heartbeat < 0 {
		return func() {}
	}
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for hb := uint64(1); c.cfg.Sleep(hctx, c.cfg.Heartbeat); hb++ {
			reply, err := c.cl.Write(hctx, ref.Group, heartbeatArgs(ref.ID, hb))
			if st, ok := parseStatus(reply); err == nil && ok && st != Pending {
				return
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
