package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kintsu/kintsu/internal/command"
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
	queued  []command.Cmd
	bytes   int
	dirty   bool        // a command was refused while queuing
	watches []txn.Watch // in WATCH order
	watched map[string]bool
	// atRun answers queued commands Redis would refuse only when running
	// them (see command.ArityError.AtRun), by their place in queued; the
	// slot's Cmd has no Spec.
	atRun map[int][]byte
	// watchLost: a WATCH failed (a key's version could not be read, or
	// too many keys), so a watch the client asked for may be missing. The
	// next EXEC then fails as if a watched key had changed, rather than run
	// unguarded (a pipelined WATCH, MULTI, EXEC does not wait to see
	// WATCH's error), even if a later WATCH succeeded; UNWATCH, DISCARD
	// and EXEC clear it.
	watchLost bool
}

func (m *multiState) reset() {
	m.on, m.queued, m.bytes, m.dirty, m.atRun = false, nil, 0, false, nil
}

func (m *multiState) unwatch() { m.watches, m.watched, m.watchLost = nil, nil, false }

// noMulti are the commands Redis refuses inside MULTI (its no-multi
// flag) that Kintsu serves.
var noMulti = map[string]bool{"save": true, "bgsave": true, "shutdown": true}

// isData reports whether spec is a data command, run by a partition.
func isData(spec *command.Spec) bool {
	return spec.Flags&(command.Conn|command.TxnControl|command.Internal) == 0
}

// txnCommand handles a command of a connection in MULTI, or a command that
// drives transactions. err is the command's decoding error: inside MULTI
// it makes EXEC refuse the transaction, as in Redis.
func (f *Server) txnCommand(c *command.Cmd, err error, st *connState) []byte {
	m := &st.multi
	var ae *command.ArityError
	if m.on && errors.As(err, &ae) && ae.AtRun {
		return f.queue(&command.Cmd{Args: c.Args}, st, ErrorReply(err))
	}
	if err != nil {
		m.dirty = m.dirty || m.on
		return ErrorReply(err)
	}
	switch c.Spec {
	case specMulti:
		if m.on {
			return resp.AppendError(nil, errNestedMulti)
		}
		m.on = true
		return resp.AppendSimple(nil, "OK")
	case specExec:
		if !m.on {
			return resp.AppendError(nil, errExecNoMulti)
		}
		return f.execMulti(st)
	case specDiscard:
		if !m.on {
			return resp.AppendError(nil, errDiscardNo)
		}
		m.reset()
		m.unwatch()
		return resp.AppendSimple(nil, "OK")
	case specWatch:
		if m.on {
			return resp.AppendError(nil, errWatchInMult)
		}
		return f.watch(c.Args[1:], st)
	case specUnwatch:
		if !m.on {
			m.unwatch()
			return resp.AppendSimple(nil, "OK")
		}
	case specQuit:
		return f.connCommand(c, st)
	}
	if m.on && noMulti[c.Spec.Name] {
		// Redis's no-multi commands: refused when queued, and the
		// transaction with them.
		m.dirty = true
		return resp.AppendError(nil, "ERR Command not allowed inside a transaction")
	}
	if m.on && isSubControl(c.Spec) {
		return f.queue(c, st, resp.AppendError(nil, "ERR "+strings.ToUpper(c.Spec.Name)+" is not allowed inside MULTI"))
	}
	if m.on && (c.Spec.Name == "flushall" || c.Spec.Name == "flushdb") {
		// Connection commands run after the transaction's data commands,
		// so a queued flush would not take its place in their order: it
		// is answered as a runtime error in its slot instead.
		return f.queue(c, st, resp.AppendError(nil, "ERR "+strings.ToUpper(c.Spec.Name)+" cannot run inside MULTI: it empties every partition, outside the transaction's order"))
	}
	return f.queue(c, st, nil)
}

// queue adds a command to the connection's transaction, or refuses it (and
// then EXEC will refuse the whole transaction), as Redis does. A non-nil
// atRun is the command's answer at EXEC, instead of running it.
func (f *Server) queue(c *command.Cmd, st *connState, atRun []byte) []byte {
	m := &st.multi
	refuse := func(reply []byte) []byte {
		m.dirty = true
		return reply
	}
	size := argsSize(c.Args)
	switch {
	case len(m.queued) >= maxQueued || m.bytes+size > maxQueuedBytes:
		return refuse(resp.AppendError(nil, fmt.Sprintf("ERR transaction too large: at most %d commands and %d MiB may be queued", maxQueued, maxQueuedBytes>>20)))
	case c.Spec != nil && c.Spec.Merge == command.MergeAllOrNothing && c.Cross:
		return refuse(ErrorReply(txn.ErrCrossMSETNX))
	case c.Spec != nil && c.Spec.Merge == command.MergeNone && c.Cross:
		return refuse(resp.AppendError(nil, kv.ErrCrossSlot))
	}
	if atRun != nil {
		if m.atRun == nil {
			m.atRun = map[int][]byte{}
		}
		m.atRun[len(m.queued)] = atRun
	}
	m.queued = append(m.queued, *c)
	m.bytes += size
	return resp.AppendSimple(nil, "QUEUED")
}

// watch records the current version of each key. A key being written by
// a transaction is read once that transaction is resolved.
func (f *Server) watch(keys [][]byte, st *connState) []byte {
	m := &st.multi
	if len(m.watches)+len(keys) > maxWatched {
		m.watchLost = true
		return resp.AppendError(nil, fmt.Sprintf("ERR at most %d keys may be watched", maxWatched))
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	for _, k := range keys {
		if m.watched[string(k)] {
			continue
		}
		reply, err := f.readOne(ctx, f.partitionOf(k), txn.VersionArgs(k))
		if err != nil {
			m.watchLost = true
			return ErrorReply(err)
		}
		v, _, err := resp.ParseValue(reply)
		if err != nil || v.Kind != ':' {
			m.watchLost = true
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
func (f *Server) execMulti(st *connState) []byte {
	m := &st.multi
	queued, atRun, watches, dirty, lost := m.queued, m.atRun, m.watches, m.dirty, m.watchLost
	m.reset()
	m.unwatch()
	if dirty {
		return resp.AppendError(nil, errExecAbort)
	}
	if lost {
		return resp.AppendNullArray(nil)
	}
	for i := range queued {
		// Memory is checked again at EXEC, as Redis does: the node may
		// have gone over maxmemory since the writes were queued.
		if queued[i].Spec != nil && atRun[i] == nil {
			if err := f.denyOOM(&queued[i]); err != nil {
				return resp.AppendError(nil, "EXECABORT Transaction discarded because of: "+err.Error())
			}
		}
	}
	// ACLs are checked again now, as Redis does: they may have changed
	// since the commands were queued. A command no longer allowed is
	// answered in its slot and left out of the transaction.
	denied := f.recheck(queued, st)
	for i, c := range queued {
		if isScriptCall(c.Spec) && denied[i] == nil {
			return f.execScripted(queued, atRun, denied, watches, st)
		}
	}
	var data []command.Cmd
	for i, c := range queued {
		if c.Spec != nil && isData(c.Spec) && denied[i] == nil {
			data = append(data, c)
			if c.Writes() {
				st.wrote = appendKeys(st.wrote, &c)
			}
		}
	}
	ctx, cancel := context.WithTimeout(commandCap(f.ctx), f.cfg.RequestTimeout)
	reply, err := f.cfg.Txns.Exec(ctx, data, watches)
	cancel()
	if err != nil {
		reply = ErrorReply(err)
	}
	f.cfg.Metrics.Requests.WithLabelValues("exec", outcomeLabel(reply)).Inc()
	if len(data) == len(queued) && len(denied) == 0 && st.proto == 2 {
		return reply
	}
	elems, ok := txn.SplitArray(reply) // not an array: a null array or an error

	if !ok || len(elems) != len(data) {
		return reply
	}
	out := resp.AppendArrayHeader(nil, len(queued))
	j := 0
	for i := range queued {
		switch c := &queued[i]; {
		case atRun[i] != nil: // refused at its turn, or undecodable
			out = append(out, atRun[i]...)
		case denied[i] != nil:
			out = append(out, denied[i]...)
		case isData(c.Spec):
			out = append(out, f.slot3(st, c, elems[j])...)
			j++
		case c.Spec == specUnwatch:
			out = resp.AppendSimple(out, "OK")
		default:
			out = append(out, f.slot3(st, c, f.connCommand(c, st))...)
		}
	}
	return out
}

func outcomeLabel(reply []byte) string {
	if len(reply) > 0 && reply[0] == '-' {
		return "error"
	}
	return "ok"
}
