package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/txn"
)

// Commands whose keys span partitions and whose work cannot be cut into
// per-partition shares (RENAME, COPY, SMOVE, LMOVE, the STORE forms of
// set and sorted-set algebra, PFMERGE, BITOP...) run as an optimistic
// transaction, as a client would with WATCH:
//
//  1. read what the command needs of the keys outside the partition
//     where it writes: each key's version first, then its whole value (a
//     DUMP payload) and expiry, on that key's partition;
//  2. run the writes as one transaction (txn.Coordinator.Exec) that
//     applies only if none of those keys has another version by then.
//     Values of other partitions are brought in as temporary keys of
//     the destination's partition (RESTORE), the command itself runs
//     there on them, and the temporary keys are deleted, all in the one
//     transaction, so no client ever sees them;
//  3. if a key changed meanwhile, start again, backing off, until the
//     request's deadline (then TRYAGAIN: nothing was applied).
//
// So such a command is atomic and isolated like any transaction, and a
// crash at any point leaves it applied whole or not at all.

// errCrossBusy answers a command that met a concurrent write in every
// round.
const errCrossBusy = "TRYAGAIN the keys kept changing; nothing was applied"

// crossPlan is what a cross-partition command needs: its writes as one
// transaction and the versions they depend on, or its answer without one.
type crossPlan struct {
	cmds    [][][]byte
	watches []txn.Watch
	pick    int    // which reply of the transaction answers the command
	answer  []byte // the reply, when no transaction is needed
}

// crossMover plans one round of a command.
type crossMover func(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error)

var crossMovers = map[string]crossMover{
	"rename":      planRename(false),
	"renamenx":    planRename(true),
	"copy":        planCopy,
	"smove":       planSmove,
	"lmove":       planLmove,
	"rpoplpush":   planLmove,
	"sinterstore": planViaTemps,
	"sunionstore": planViaTemps,
	"sdiffstore":  planViaTemps,
	"zunionstore": planViaTemps,
	"zinterstore": planViaTemps,
	"zdiffstore":  planViaTemps,
	"zrangestore": planViaTemps,
	"pfmerge":     planViaTemps,
	"bitop":       planViaTemps,
}

// runCrossMove runs c (keys in several partitions) by its plan; nil when
// c has none.
func (f *Server) runCrossMove(c command.Cmd) []byte {
	plan := crossMovers[c.Spec.Name]
	if plan == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		round := commandCap(ctx) // each round its own reply budget
		p, err := plan(f, round, &c)
		if errors.Is(err, errKeyRaced) {
			if !crossPause(ctx, attempt) {
				return resp.AppendError(nil, errCrossBusy)
			}
			continue
		}
		if err != nil {
			return ErrorReply(err)
		}
		if p.answer != nil {
			return p.answer
		}
		if reply := unrestorable(p.cmds); reply != nil {
			return reply
		}
		cmds := make([]command.Cmd, len(p.cmds))
		for i, args := range p.cmds {
			if cmds[i], err = f.decode(args); err != nil {
				return ErrorReply(err)
			}
		}
		reply, err := f.cfg.Txns.Exec(round, cmds, p.watches)
		if err != nil {
			return ErrorReply(err)
		}
		if string(reply) == "*-1\r\n" {
			if !crossPause(ctx, attempt) {
				return resp.AppendError(nil, errCrossBusy)
			}
			continue
		}
		elems, ok := txn.SplitArray(reply)
		if !ok || p.pick >= len(elems) {
			return reply // an error
		}
		return elems[p.pick]
	}
}

// crossPause waits after a round that met a concurrent write: a random
// pause that grows with attempt, so contending rounds spread out. False
// when the request's deadline comes first.
func crossPause(ctx context.Context, attempt int) bool {
	return clock.Sleep(ctx, time.Duration(mrand.Int64N(int64(time.Millisecond)<<min(attempt, 6))))
}

// keyState is what a plan read of one key: its version (for the
// transaction's check), whether it exists, its type, its value as a DUMP
// payload and its expiry (Unix ms, -1 without).
type keyState struct {
	key      []byte
	version  uint64
	typ      string
	payload  []byte // nil: absent
	expireAt int64
}

// readKey reads key's state on its partition: the version first, so a
// write between the reads can only fail the transaction's check, never
// pass it with a stale value. dump: read the value too.
func (f *Server) readKey(ctx context.Context, key []byte, dump bool) (keyState, error) {
	sts, err := f.readKeys(ctx, [][]byte{key}, dump)
	if err != nil {
		return keyState{}, err
	}
	return sts[0], nil
}

// readKeys reads the state of keys as readKey does, with one read per
// partition, the partitions in parallel.
func (f *Server) readKeys(ctx context.Context, keys [][]byte, dump bool) ([]keyState, error) {
	per := 2
	if dump {
		per = 4
	}
	byGroup := map[uint64][]int{}
	for i, k := range keys {
		g := f.partitionOf(k)
		byGroup[g] = append(byGroup[g], i)
	}
	sts := make([]keyState, len(keys))
	errc := make(chan error, len(byGroup))
	for g, idx := range byGroup {
		go func() {
			cmds := make([][][]byte, 0, per*len(idx))
			for _, i := range idx {
				cmds = append(cmds, txn.VersionArgs(keys[i]), [][]byte{[]byte("type"), keys[i]})
				if dump {
					cmds = append(cmds, [][]byte{[]byte("dump"), keys[i]}, [][]byte{[]byte("pexpiretime"), keys[i]})
				}
			}
			out, errs := f.cfg.Router.ReadMany(ctx, g, cmds)
			for n, i := range idx {
				st, err := keyStateOf(keys[i], out, errs, n*per, dump)
				if err != nil {
					errc <- err
					return
				}
				sts[i] = st
			}
			errc <- nil
		}()
	}
	var first error
	for range byGroup {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return sts, first
}

// keyStateOf reads one key's replies, from at, out of a partition's
// answers.
func keyStateOf(key []byte, out [][]byte, errs []error, at int, dump bool) (keyState, error) {
	st := keyState{key: key, expireAt: -1}
	n := 2
	if dump {
		n = 4
	}
	vals := make([]resp.Value, n)
	for i := range n {
		j := at + i
		if j >= len(out) || j >= len(errs) {
			return st, errors.New("no answer from the partition")
		}
		if errs[j] != nil {
			return st, errs[j]
		}
		if sig, _, ok := failure.SignalOf(out[j]); ok {
			return st, sig.Err()
		}
		v, _, err := resp.ParseValue(out[j])
		if err != nil {
			return st, errors.New("unreadable reply")
		}
		if v.Kind == '-' {
			return st, errors.New(string(v.Str))
		}
		vals[i] = v
	}
	st.version, st.typ = uint64(vals[0].Int), string(vals[1].Str)
	if dump && !vals[2].Null {
		st.payload, st.expireAt = vals[2].Str, vals[3].Int
	}
	if st.version == 0 && (st.typ != "none" || st.payload != nil) {
		// Absent when its version was read, present after: a write came
		// between the reads. Its watch (absent) could pass again if the
		// key went away before the commit, with this value used.
		return st, errKeyRaced
	}
	return st, nil
}

// errKeyRaced: a key changed between the reads of one round; the round
// starts again.
var errKeyRaced = errors.New("a key changed while it was read")

// unrestorable is the error answering a round whose RESTOREs a partition
// would refuse (a value grown past what RESTORE decodes), or nil: such a
// RESTORE would fail alone while the rest of the transaction applied.
func unrestorable(cmds [][][]byte) []byte {
	for _, c := range cmds {
		if len(c) > 3 && strings.EqualFold(string(c[0]), "restore") && !kv.Restorable(c[3]) {
			return resp.AppendError(nil, fmt.Sprintf("ERR the value of '%s' is too large to move between partitions; nothing was applied", c[1]))
		}
	}
	return nil
}

func (k keyState) watch() txn.Watch { return txn.Watch{Key: k.key, Version: k.version} }

// restoreArgs rebuilds k's value at key, with its expiry.
func (k keyState) restoreArgs(key []byte) [][]byte {
	ttl := "0"
	if k.expireAt > 0 {
		ttl = strconv.FormatInt(k.expireAt, 10)
	}
	return [][]byte{[]byte("restore"), key, []byte(ttl), k.payload, []byte("replace"), []byte("absttl")}
}

func wrongType() []byte { return resp.AppendError(nil, kv.ErrWrongType) }

// planRename: RENAME src dst (RENAMENX: only if dst is absent).
func planRename(nx bool) crossMover {
	return func(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error) {
		src, dst := c.Args[1], c.Args[2]
		s, err := f.readKey(ctx, src, true)
		if err != nil {
			return crossPlan{}, err
		}
		if s.payload == nil {
			return crossPlan{answer: resp.AppendError(nil, "ERR no such key")}, nil
		}
		p := crossPlan{watches: []txn.Watch{s.watch()}}
		if nx {
			d, err := f.readKey(ctx, dst, false)
			if err != nil {
				return crossPlan{}, err
			}
			if d.typ != "none" {
				return crossPlan{answer: resp.AppendInt(nil, 0)}, nil
			}
			p.watches = append(p.watches, d.watch())
		}
		p.cmds = [][][]byte{{[]byte("del"), src}, s.restoreArgs(dst)}
		p.pick = 1 // RESTORE's OK
		if nx {
			p.cmds = append(p.cmds, [][]byte{[]byte("exists"), dst}) // its 1
			p.pick = 2
		}
		return p, nil
	}
}

// planCopy: COPY src dst [DB 0] [REPLACE].
func planCopy(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error) {
	replace := false
	for i := 3; i < len(c.Args); i++ {
		switch {
		case strings.EqualFold(string(c.Args[i]), "replace"):
			replace = true
		case strings.EqualFold(string(c.Args[i]), "db") && i+1 < len(c.Args):
			if string(c.Args[i+1]) != "0" {
				return crossPlan{answer: resp.AppendError(nil, "ERR DB index is out of range")}, nil
			}
			i++
		default:
			return crossPlan{answer: resp.AppendError(nil, kv.ErrSyntax)}, nil
		}
	}
	src, dst := c.Args[1], c.Args[2]
	s, err := f.readKey(ctx, src, true)
	if err != nil {
		return crossPlan{}, err
	}
	if s.payload == nil {
		return crossPlan{answer: resp.AppendInt(nil, 0)}, nil
	}
	d, err := f.readKey(ctx, dst, false)
	if err != nil {
		return crossPlan{}, err
	}
	if d.typ != "none" && !replace {
		return crossPlan{answer: resp.AppendInt(nil, 0)}, nil
	}
	return crossPlan{
		cmds:    [][][]byte{s.restoreArgs(dst), {[]byte("exists"), dst}},
		watches: []txn.Watch{s.watch(), d.watch()},
		pick:    1,
	}, nil
}

// planSmove: SMOVE src dst member.
func planSmove(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error) {
	src, dst, m := c.Args[1], c.Args[2], c.Args[3]
	s, err := f.readKey(ctx, src, false)
	if err != nil {
		return crossPlan{}, err
	}
	d, err := f.readKey(ctx, dst, false)
	if err != nil {
		return crossPlan{}, err
	}
	switch {
	case s.typ == "none":
		return crossPlan{answer: resp.AppendInt(nil, 0)}, nil
	case s.typ != "set" || d.typ != "none" && d.typ != "set":
		return crossPlan{answer: wrongType()}, nil
	}
	in, err := f.readOne(ctx, f.partitionOf(src), [][]byte{[]byte("sismember"), src, m})
	if err != nil {
		return crossPlan{}, err
	}
	if string(in) != ":1\r\n" {
		return crossPlan{answer: resp.AppendInt(nil, 0)}, nil
	}
	return crossPlan{
		cmds:    [][][]byte{{[]byte("srem"), src, m}, {[]byte("sadd"), dst, m}},
		watches: []txn.Watch{s.watch(), d.watch()},
		pick:    0, // SREM's 1
	}, nil
}

// planLmove: LMOVE src dst LEFT|RIGHT LEFT|RIGHT, RPOPLPUSH src dst.
func planLmove(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error) {
	src, dst := c.Args[1], c.Args[2]
	from, to := "right", "left"
	if c.Spec.Name == "lmove" {
		from, to = strings.ToLower(string(c.Args[3])), strings.ToLower(string(c.Args[4]))
		if from != "left" && from != "right" || to != "left" && to != "right" {
			return crossPlan{answer: resp.AppendError(nil, kv.ErrSyntax)}, nil
		}
	}
	s, err := f.readKey(ctx, src, false)
	if err != nil {
		return crossPlan{}, err
	}
	d, err := f.readKey(ctx, dst, false)
	if err != nil {
		return crossPlan{}, err
	}
	switch {
	case s.typ == "none":
		return crossPlan{answer: resp.AppendNull(nil)}, nil
	case s.typ != "list" || d.typ != "none" && d.typ != "list":
		return crossPlan{answer: wrongType()}, nil
	}
	idx := "0"
	if from == "right" {
		idx = "-1"
	}
	elem, err := f.readOne(ctx, f.partitionOf(src), [][]byte{[]byte("lindex"), src, []byte(idx)})
	if err != nil {
		return crossPlan{}, err
	}
	v, _, perr := resp.ParseValue(elem)
	if perr != nil || v.Kind != '$' || v.Null {
		return crossPlan{answer: resp.AppendNull(nil)}, nil
	}
	pop, push := "lpop", "lpush"
	if from == "right" {
		pop = "rpop"
	}
	if to == "right" {
		push = "rpush"
	}
	return crossPlan{
		cmds:    [][][]byte{{[]byte(pop), src}, {[]byte(push), dst, v.Str}},
		watches: []txn.Watch{s.watch(), d.watch()},
		pick:    0, // the popped element
	}, nil
}

// planViaTemps runs a command that writes one key (its first) from
// others: the sources outside the destination's partition are copied in
// as temporary keys of that partition, the command runs there on them,
// and the copies are deleted, in one transaction watching the sources.
func planViaTemps(f *Server, ctx context.Context, c *command.Cmd) (crossPlan, error) {
	dstPos := 1
	if c.Spec.Name == "bitop" {
		dstPos = 2
	}
	dst := c.Args[dstPos]
	group := f.partitionOf(dst)
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return crossPlan{}, err
	}
	args := append([][]byte(nil), c.Args...)
	p := crossPlan{}
	var temps [][]byte
	for n, i := range c.Spec.AppendKeys(nil, c.Args) {
		if i == dstPos || f.partitionOf(c.Args[i]) == group {
			continue
		}
		s, err := f.readKey(ctx, c.Args[i], true)
		if err != nil {
			return crossPlan{}, err
		}
		tmp := tempKey(dst, nonce, n)
		if f.partitionOf(tmp) != group {
			return crossPlan{answer: resp.AppendError(nil, kv.ErrCrossSlot)}, nil
		}
		p.watches = append(p.watches, s.watch())
		if s.payload != nil {
			p.cmds = append(p.cmds, s.restoreArgs(tmp))
		}
		temps = append(temps, tmp)
		args[i] = tmp
	}
	p.pick = len(p.cmds)
	p.cmds = append(p.cmds, args)
	if len(temps) > 0 {
		p.cmds = append(p.cmds, append([][]byte{[]byte("del")}, temps...))
	}
	return p, nil
}

// tempKey names a temporary key of dst's partition: dst's hash tag (or
// dst itself) in braces, so it hashes as dst does, then a name no client
// uses.
func tempKey(dst, nonce []byte, n int) []byte {
	tag := dst
	if i := strings.IndexByte(string(dst), '{'); i >= 0 {
		if j := strings.IndexByte(string(dst[i+1:]), '}'); j > 0 {
			tag = dst[i+1 : i+1+j]
		}
	}
	out := append([]byte("{"), tag...)
	out = append(out, "}\x00kintsu.tmp."...)
	out = append(out, hex.EncodeToString(nonce)...)
	return strconv.AppendInt(append(out, '.'), int64(n), 10)
}
