package route

import (
	"context"
	"errors"

	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/txn"
)

// Bounds on the replies of reads, so that no batch of reads can build more
// memory than its caller can hold or a frame can carry.
//
// Invariants:
//   - A forwarded answer never exceeds maxForwardReply plus its framing:
//     the serving node stops a batch before a reply would take it over
//     (the rest are answered codeNotRun and asked for again), and refuses a
//     single larger reply with codeTooLarge. So a big reply is a clear error
//     or a second call, never a frame the transport drops (which looked
//     like an unreachable leader, and cost the request deadline).
//   - A forwarded batch stops once forwardBatchBytes of replies are built:
//     a peer's call costs the serving node a bounded amount of memory.
//   - No single read builds a reply over maxForwardReply, on any node:
//     the values it loads are counted as it loads them (cappedReader) and
//     the read is refused once they pass it, so one MGET of a big key
//     repeated cannot build gigabytes, and a read has the same answer
//     whichever node receives it.
//   - Reads served for the edge draw on the connection's ReplyBudget
//     (failure.ReplyBudgetOf): once it is spent the rest are ErrNotRun.
const (
	// maxForwardReply is the largest answer a forwarded read batch
	// carries: the transport's frame limit (128 MiB) less room for the
	// framing of the outcomes.
	maxForwardReply = 120 << 20
	// forwardBatchBytes: a forwarded read batch stops once its replies
	// reach this many bytes; the caller asks again for the rest.
	forwardBatchBytes = 16 << 20
)

// Outcome codes of the bounded reads (forward.go has the others).
const (
	codeNotRun   byte = 7 // not served: the batch's reply budget is spent; ask again
	codeTooLarge byte = 8 // payload: uvarint reply size; refused, nothing was applied
)

// readCap is what one round of reads may build.
type readCap struct {
	budget *failure.ReplyBudget // the edge connection's, for local reads
	cmd    *failure.ReplyCap    // the command's, across all its reads
	batch  int                  // stop once the replies reach this many bytes (0: no limit)
	single int                  // a larger reply is refused (0: no limit)
}

// forwardCap bounds the reads this node serves for a peer.
var forwardCap = readCap{batch: forwardBatchBytes, single: maxForwardReply}

// capReads serves n reads in order under lim: read(i) evaluates the i-th.
// The first read always runs, so a round always makes progress; a read
// error fails the round.
func capReads(n int, lim readCap, read func(i int) ([]byte, error)) ([]outcome, error) {
	outs := make([]outcome, n)
	total := 0
	for i := range outs {
		if i > 0 && (!lim.budget.CanStart() || (lim.batch > 0 && total >= lim.batch)) {
			for j := i; j < n; j++ {
				outs[j] = outcome{code: codeNotRun}
			}
			break
		}
		if lim.cmd != nil && lim.cmd.Left() == 0 {
			outs[i] = outcome{code: codeTooLarge, hint: uint64(lim.cmd.Limit())}
			continue
		}
		reply, err := read(i)
		var tooLarge *failure.ReplyTooLargeError
		if errors.As(err, &tooLarge) {
			outs[i] = outcome{code: codeTooLarge, hint: uint64(tooLarge.Bytes)}
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case lim.single > 0 && len(reply) > lim.single:
			outs[i] = outcome{code: codeTooLarge, hint: uint64(len(reply))}
			continue
		case lim.single > 0 && i > 0 && total+len(reply) > lim.single:
			// Would not fit in this answer: the next call carries it.
			for j := i; j < n; j++ {
				outs[j] = outcome{code: codeNotRun}
			}
			return outs, nil
		}
		if lim.cmd.Spend(len(reply)) != nil {
			outs[i] = outcome{code: codeTooLarge, hint: uint64(len(reply))}
			continue
		}
		total += len(reply)
		lim.budget.Draw(len(reply))
		outs[i] = outcome{code: codeOK, reply: reply}
	}
	return outs, nil
}

// splitOutcomes turns the outcomes of served reads into replies and
// errors, for the paths that do not forward (stale reads).
func splitOutcomes(outs []outcome) ([][]byte, []error) {
	replies := make([][]byte, len(outs))
	errs := make([]error, len(outs))
	for i, o := range outs {
		switch o.code {
		case codeOK:
			replies[i] = o.reply
		case codeTooLarge:
			errs[i] = &failure.ReplyTooLargeError{Bytes: int(o.hint), Limit: maxForwardReply}
		default:
			errs[i] = failure.ErrNotRun
		}
	}
	return replies, errs
}

// localCap is the bound on reads served here for ctx's connection.
func localCap(ctx context.Context) readCap {
	return readCap{budget: failure.ReplyBudgetOf(ctx), cmd: failure.ReplyCapOf(ctx)}
}

// loadLimit is how many bytes of values one read may load under lim.
func (lim readCap) loadLimit() int {
	return min(maxForwardReply, lim.cmd.Left())
}

// errReplyCap stops a read whose values pass maxForwardReply.
var errReplyCap = errors.New("reply over the largest forwardable size")

// cappedReader counts the bytes of the values a read loads, and fails the
// read once they pass the cap: the reply is at least as big.
type cappedReader struct {
	txn.Reader
	left int
	read int
}

// Ranged and Owns pass the partition's range through (txn.Owner): the
// cap must not hide from the state machine that a split moved a key.
func (c *cappedReader) Ranged() bool {
	o, ok := c.Reader.(txn.Owner)
	return ok && o.Ranged()
}

func (c *cappedReader) Owns(key []byte) bool {
	o, ok := c.Reader.(txn.Owner)
	return !ok || o.Owns(key)
}

func (c *cappedReader) OwnsSlots(lo, hi uint16) bool {
	o, ok := c.Reader.(kv.SlotOwner)
	return !ok || o.OwnsSlots(lo, hi)
}

func (c *cappedReader) Get(key []byte) ([]byte, bool, error) {
	v, ok, err := c.Reader.Get(key)
	c.left -= len(v)
	c.read += len(v)
	if err == nil && c.left < 0 {
		return nil, false, errReplyCap
	}
	return v, ok, err
}

// GetSub counts a collection's sub-key value as Get counts a value.
func (c *cappedReader) GetSub(key []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	v, ok, err := c.Reader.GetSub(key, ver, sub)
	c.left -= len(v)
	c.read += len(v)
	if err == nil && c.left < 0 {
		return nil, false, errReplyCap
	}
	return v, ok, err
}

// ScanSub counts every sub-key and value the scan hands on, and stops it
// once they pass the cap: HGETALL of a huge hash is refused, not built.
func (c *cappedReader) ScanSub(key []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	over := false
	err := c.Reader.ScanSub(key, ver, from, reverse, func(sub, v []byte) bool {
		c.left -= len(sub) + len(v)
		c.read += len(sub) + len(v)
		if c.left < 0 {
			over = true
			return false
		}
		return fn(sub, v)
	})
	if err == nil && over {
		return errReplyCap
	}
	return err
}

var errNoKeyScan = errors.New("route: this reader cannot list keys")

// ScanKeys passes a key scan on (kv.KeyScanner) uncounted: what a scan
// reads is not what it answers (KEYS with a pattern keeps few), and KEYS
// bounds its own answer (kv.MaxKeysReply).
func (c *cappedReader) ScanKeys(from []byte, fn func(k, stored []byte) bool) error {
	ks, ok := c.Reader.(kv.KeyScanner)
	if !ok {
		return errNoKeyScan
	}
	return ks.ScanKeys(from, fn)
}

// Seed passes the reader's entropy on (kv.Seeder), if it has any.
func (c *cappedReader) Seed() uint64 {
	if s, ok := c.Reader.(kv.Seeder); ok {
		return s.Seed()
	}
	return 0
}
