package server

import (
	"context"
	"fmt"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/txn"
)

// Transaction limits per connection: what MULTI may queue and how many
// keys WATCH may hold. Past them the command is refused (and, inside
// MULTI, EXEC answers EXECABORT), so a client cannot grow a node's memory
// without bound.
const (
	maxQueued      = 10000
	maxQueuedBytes = 16 << 20
	maxWatched     = 10000
)

// Redis's own replies for transaction misuse.
const (
	errNestedMulti = "ERR MULTI calls can not be nested"
	errExecNoMulti = "ERR EXEC without MULTI"
	errDiscardNo   = "ERR DISCARD without MULTI"
	errWatchInMult = "ERR WATCH inside MULTI is not allowed"
	errExecAbort   = "EXECABORT Transaction discarded because of previous errors."
)

// multiState is a connection's transaction in the making.
type multiState struct {
	on      bool
	queued  [][][]byte
	bytes   int
	dirty   bool        // a command was refused while queuing
	watches []txn.Watch // in WATCH order
	watched map[string]bool
}

func (m *multiState) reset() {
	m.on, m.queued, m.bytes, m.dirty = false, nil, 0, false
}

func (m *multiState) unwatch() { m.watches, m.watched = nil, nil }

// isTxnControl reports whether args is one of the commands that drive a
// transaction rather than join it.
func isTxnControl(name []byte) bool {
	switch lower(name) {
	case "multi", "exec", "discard", "watch", "unwatch":
		return true
	}
	return false
}

// txnCommand handles a command of a connection in MULTI, or a command that
// drives transactions.
func (f *frontend) txnCommand(args [][]byte, st *connState) []byte {
	m := &st.multi
	name := lower(args[0])
	switch name {
	case "multi":
		if len(args) != 1 {
			return errArity(args)
		}
		if m.on {
			return resp.AppendError(nil, errNestedMulti)
		}
		m.on = true
		return resp.AppendSimple(nil, "OK")
	case "exec":
		if len(args) != 1 {
			m.dirty = m.dirty || m.on
			return errArity(args)
		}
		if !m.on {
			return resp.AppendError(nil, errExecNoMulti)
		}
		return f.execMulti(st)
	case "discard":
		if len(args) != 1 {
			m.dirty = m.dirty || m.on
			return errArity(args)
		}
		if !m.on {
			return resp.AppendError(nil, errDiscardNo)
		}
		m.reset()
		m.unwatch()
		return resp.AppendSimple(nil, "OK")
	case "watch":
		if m.on {
			return resp.AppendError(nil, errWatchInMult)
		}
		if len(args) < 2 {
			return errArity(args)
		}
		return f.watch(args[1:], st)
	case "unwatch":
		if !m.on {
			if len(args) != 1 {
				return errArity(args)
			}
			m.unwatch()
			return resp.AppendSimple(nil, "OK")
		}
	case "quit":
		return f.connCommand(args, st)
	}
	return f.queue(args, st)
}

// queue adds a command to the connection's transaction, or refuses it (and
// then EXEC will refuse the whole transaction), as Redis does.
func (f *frontend) queue(args [][]byte, st *connState) []byte {
	m := &st.multi
	refuse := func(reply []byte) []byte {
		m.dirty = true
		return reply
	}
	c := kv.Lookup(args[0])
	switch {
	case c == nil && !isConnCommand(args[0]) && lower(args[0]) != "unwatch":
		return refuse(resp.AppendError(nil, kv.UnknownCommand(args)))
	case c != nil && !c.CheckArity(args):
		return refuse(resp.AppendError(nil, kv.WrongArity(c.Name)))
	case len(m.queued) >= maxQueued || m.bytes+argsSize(args) > maxQueuedBytes:
		return refuse(resp.AppendError(nil, fmt.Sprintf("ERR transaction too large: at most %d commands and %d MiB may be queued", maxQueued, maxQueuedBytes>>20)))
	case c != nil && c.Name == "msetnx" && f.spans(c, args):
		return refuse(resp.AppendError(nil, txn.ErrCrossMSETNX.Error()))
	}
	m.queued = append(m.queued, args)
	m.bytes += argsSize(args)
	return resp.AppendSimple(nil, "QUEUED")
}

// watch records the current version of each key. A key being written by
// a transaction is read once that transaction is resolved.
func (f *frontend) watch(keys [][]byte, st *connState) []byte {
	m := &st.multi
	if len(m.watches)+len(keys) > maxWatched {
		return resp.AppendError(nil, fmt.Sprintf("ERR at most %d keys may be watched", maxWatched))
	}
	ctx, cancel := context.WithTimeout(f.n.ctx, f.n.cfg.RequestTimeout)
	defer cancel()
	for _, k := range keys {
		if m.watched[string(k)] {
			continue
		}
		reply := f.n.router.read(ctx, f.n.partitionOf(k), txn.VersionArgs(k))
		v, _, err := resp.ParseValue(reply)
		if err != nil || v.Kind != ':' {
			if err == nil && v.Kind == '-' {
				return reply
			}
			return resp.AppendError(nil, "ERR could not read the key's version")
		}
		if m.watched == nil {
			m.watched = map[string]bool{}
		}
		m.watched[string(k)] = true
		m.watches = append(m.watches, txn.Watch{Key: k, Version: uint64(v.Int)})
	}
	return resp.AppendSimple(nil, "OK")
}

// execMulti runs the queued commands as one transaction. Connection
// commands queued with them (PING, ECHO, ...) are answered in their slots.
func (f *frontend) execMulti(st *connState) []byte {
	m := &st.multi
	queued, watches, dirty := m.queued, m.watches, m.dirty
	m.reset()
	m.unwatch()
	if dirty {
		return resp.AppendError(nil, errExecAbort)
	}
	var data [][][]byte
	for _, args := range queued {
		if kv.Lookup(args[0]) != nil {
			data = append(data, args)
		}
	}
	ctx, cancel := context.WithTimeout(f.n.ctx, f.n.cfg.RequestTimeout)
	reply := f.n.txns.Exec(ctx, data, watches)
	cancel()
	f.n.metrics.Requests.WithLabelValues("exec", outcomeLabel(reply)).Inc()
	if len(data) == len(queued) {
		return reply
	}
	elems, ok := txn.SplitArray(reply) // not an array: a null array or an error

	if !ok || len(elems) != len(data) {
		return reply
	}
	out := resp.AppendArrayHeader(nil, len(queued))
	j := 0
	for _, args := range queued {
		if kv.Lookup(args[0]) != nil {
			out = append(out, elems[j]...)
			j++
			continue
		}
		if lower(args[0]) == "unwatch" {
			out = resp.AppendSimple(out, "OK")
			continue
		}
		out = append(out, f.connCommand(args, st)...)
	}
	return out
}

// partitionsOf returns the partition of a command's first key and whether
// its keys span more than one partition.
func (f *frontend) partitionsOf(c *kv.Command, args [][]byte) (group uint64, cross bool) {
	for n, i := range c.KeyIndexes(args) {
		p := f.n.partitionOf(args[i])
		if n == 0 {
			group = p
		} else if p != group {
			return group, true
		}
	}
	return group, false
}

func outcomeLabel(reply []byte) string {
	if len(reply) > 0 && reply[0] == '-' {
		return "error"
	}
	return "ok"
}

func (f *frontend) spans(c *kv.Command, args [][]byte) bool {
	_, cross := f.partitionsOf(c, args)
	return cross
}
