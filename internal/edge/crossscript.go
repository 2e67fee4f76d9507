package edge

import (
	"context"
	"errors"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/script"
	"github.com/kintsu/kintsu/internal/txn"
)

// A script (EVAL, FCALL...) whose declared keys live in several
// partitions runs on this node against copies of its keys and commits
// what it wrote as one transaction (package script, cross.go), as a
// cross-partition command does (crossmove.go):
//
//  1. read every declared key's version, then its value and expiry, on
//     its partition (the partitions in parallel);
//  2. run the script against the copies;
//  3. commit the final image of every key it wrote (RESTORE ... REPLACE
//     ABSTTL, or DEL when it ends absent) in one transaction watching
//     every declared key at the version read; a script that wrote
//     nothing commits the watches alone, so what it read was current at
//     one moment;
//  4. a read-only script (EVAL_RO, FCALL_RO, no-writes), or one that wrote
//     nothing but met a change, reads its keys instead as one read-only
//     transaction (a snapshot: shared locks after the optimistic tries,
//     so writers cannot starve it) and needs no commit;
//  5. if a key changed meanwhile, start again after a pause, until the
//     request's deadline (then TRYAGAIN: nothing was applied).
//
// The reply is the script's, sent only once its writes are committed.

// runCrossScript runs step, whose keys span partitions.
func (f *Server) runCrossScript(st *connState, step script.Step) []byte {
	rules, err := f.scriptRules(st)
	if err != nil {
		return ErrorReply(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	keys := uniqueKeys(step.Keys)
	snapshot := step.ReadOnly
	for attempt := 0; ; attempt++ {
		round := commandCap(ctx) // each round its own reply budget
		if snapshot {
			if reply, done := f.runCrossReadOnly(round, rules, step, keys); done {
				return reply
			}
			snapshot = false // it wrote after all: run as a writer
		}
		states, err := f.readKeys(round, keys, true)
		if errors.Is(err, errKeyRaced) {
			if !crossPause(ctx, attempt) {
				return resp.AppendError(nil, errCrossBusy)
			}
			continue
		}
		if err != nil {
			return ErrorReply(err)
		}
		images := make([]script.Image, len(states))
		watches := make([]txn.Watch, len(states))
		for i, s := range states {
			images[i] = script.Image{Key: s.key, Payload: s.payload, ExpireAt: s.expireAt}
			watches[i] = s.watch()
		}
		o, err := script.RunOver(script.Params{User: rules, Timeout: runTime(ctx)}, step, images, scriptNow(images))
		if err != nil {
			return ErrorReply(err)
		}
		if o.Halted {
			return o.Reply
		}
		writes := make([][][]byte, len(o.Writes))
		for i, im := range o.Writes {
			writes[i] = [][]byte{[]byte("del"), im.Key}
			if im.Payload != nil {
				writes[i] = keyState{payload: im.Payload, expireAt: im.ExpireAt}.restoreArgs(im.Key)
			}
		}
		if reply := unrestorable(writes); reply != nil {
			return reply
		}
		cmds := make([]command.Cmd, len(writes))
		for i, args := range writes {
			if cmds[i], err = f.decode(args); err != nil {
				return ErrorReply(err)
			}
		}
		reply, err := f.cfg.Txns.Exec(round, cmds, watches)
		if err != nil {
			return ErrorReply(err)
		}
		if string(reply) == "*-1\r\n" {
			// A script that wrote nothing needs no commit of its own: it
			// reads a snapshot next time, which cannot be starved.
			snapshot = len(cmds) == 0
			if !crossPause(ctx, attempt) {
				return resp.AppendError(nil, errCrossBusy)
			}
			continue
		}
		elems, ok := txn.SplitArray(reply)
		if !ok {
			return reply // the transaction's error: nothing was applied
		}
		for _, e := range elems {
			if len(e) > 0 && e[0] == '-' {
				return e // a copy its partition would not restore
			}
		}
		return o.Reply
	}
}

// runCrossReadOnly runs a script that is not expected to write over a
// snapshot of its keys: a read-only transaction of their DUMPs and
// expiries, whose values held at one moment (txn's optimistic reads,
// falling back to shared locks, so writers cannot starve it). done is
// false when the script wrote after all, and nothing was applied.
func (f *Server) runCrossReadOnly(ctx context.Context, rules string, step script.Step, keys [][]byte) (reply []byte, done bool) {
	cmds := make([]command.Cmd, 0, 2*len(keys))
	for _, k := range keys {
		for _, name := range []string{"dump", "pexpiretime"} {
			c, err := f.decode([][]byte{[]byte(name), k})
			if err != nil {
				return ErrorReply(err), true
			}
			cmds = append(cmds, c)
		}
	}
	out, err := f.cfg.Txns.Exec(ctx, cmds, nil)
	if err != nil {
		return ErrorReply(err), true
	}
	elems, ok := txn.SplitArray(out)
	if !ok || len(elems) != len(cmds) {
		return out, true // the transaction's error
	}
	images := make([]script.Image, len(keys))
	for i, k := range keys {
		images[i] = script.Image{Key: k, ExpireAt: -1}
		d, _, err1 := resp.ParseValue(elems[2*i])
		e, _, err2 := resp.ParseValue(elems[2*i+1])
		if err1 != nil || err2 != nil || d.Kind != '$' || e.Kind != ':' {
			return resp.AppendError(nil, "ERR unreadable copy of a script's key"), true
		}
		if !d.Null {
			images[i].Payload, images[i].ExpireAt = d.Str, e.Int
		}
	}
	o, err := script.RunOver(script.Params{User: rules, Timeout: runTime(ctx)}, step, images, scriptNow(images))
	switch {
	case err != nil:
		return ErrorReply(err), true
	case o.Halted || len(o.Writes) == 0:
		return o.Reply, true
	}
	return nil, false
}

// scriptNow is the time a script over images runs at: this node's clock,
// but never past the expiry of a key its partition served as live. The
// partitions judge expiry by their own clocks; a node whose clock runs
// ahead must not see a key expired that its partition still holds (a
// lock a script would then take over while its watch still passed).
func scriptNow(images []script.Image) int64 {
	now := time.Now().UnixMilli()
	for _, im := range images {
		if im.Payload != nil && im.ExpireAt > 0 {
			now = min(now, im.ExpireAt-1)
		}
	}
	return now
}

// runTime is how long a run may take: half of what remains of the
// request, leaving the rest to commit what it did.
func runTime(ctx context.Context) time.Duration {
	d := script.MaxRunTime
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

func uniqueKeys(keys [][]byte) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	for _, k := range keys {
		if !seen[string(k)] {
			seen[string(k)] = true
			out = append(out, k)
		}
	}
	return out
}
