package edge

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// Keyspace commands without keys, answered by asking every partition:
// KEYS (each partition's matching keys, from its leader), RANDOMKEY (a
// key of a partition picked at random) and FLUSHALL/FLUSHDB (every
// partition emptied, each at once; the cluster is not emptied in one
// instant, as a Redis Cluster is not either).
func init() {
	command.Register(
		connSpec("keys", 2, command.Keyspace, cmdKeys),
		connSpec("randomkey", 1, command.Keyspace, cmdRandomKey),
		connSpec("flushall", -1, command.Keyspace, cmdFlush),
		connSpec("flushdb", -1, command.Keyspace, cmdFlush),
	)
}

// eachPartition runs fn for every partition at once and returns the first
// error reply (nil if none).
func (f *Server) eachPartition(fn func(g uint64) []byte) []byte {
	var (
		mu   sync.Mutex
		fail []byte
		wg   sync.WaitGroup
	)
	for _, p := range f.cfg.View.Partitions() {
		wg.Add(1)
		go func(g uint64) {
			defer wg.Done()
			if bad := fn(g); bad != nil {
				mu.Lock()
				if fail == nil {
					fail = bad
				}
				mu.Unlock()
			}
		}(uint64(p.ID))
	}
	wg.Wait()
	return fail
}

func cmdKeys(f *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 2 {
		return errArity(args)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		keys  [][]byte
		bytes int
	)
	fail := f.eachPartition(func(g uint64) []byte {
		reply, err := f.readOne(ctx, g, [][]byte{[]byte(kv.OpKeys), args[1]})
		if err != nil {
			return ErrorReply(err)
		}
		v, _, err := resp.ParseValue(reply)
		if err != nil || v.Kind != '*' {
			return reply
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range v.Array {
			keys = append(keys, k.Str)
			bytes += len(k.Str)
		}
		if bytes > kv.MaxKeysReply {
			return resp.AppendError(nil, "ERR KEYS would answer more than 64 MiB of keys; match fewer")
		}
		return nil
	})
	if fail != nil {
		return fail
	}
	out := resp.AppendArrayHeader(nil, len(keys))
	for _, k := range keys {
		out = resp.AppendBulk(out, k)
	}
	return out
}

func cmdRandomKey(f *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 1 {
		return errArity(args)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	parts := f.cfg.View.Partitions()
	for _, i := range rand.Perm(len(parts)) {
		reply, err := f.readOne(ctx, uint64(parts[i].ID), [][]byte{[]byte(kv.OpRandomKey)})
		if err != nil {
			return ErrorReply(err)
		}
		if v, _, err := resp.ParseValue(reply); err != nil || v.Kind == '-' || !v.Null {
			return reply
		}
	}
	return resp.AppendNull(nil)
}

// cmdFlush empties every partition. A partition whose transaction tables
// are not empty refuses (statemachine.OpFlush); it is asked again until
// the request's deadline.
func cmdFlush(f *Server, args [][]byte, _ *connState) []byte {
	switch {
	case len(args) > 2:
		return resp.AppendError(nil, kv.ErrSyntax)
	case len(args) == 2 && !strings.EqualFold(string(args[1]), "async") && !strings.EqualFold(string(args[1]), "sync"):
		return resp.AppendError(nil, kv.ErrSyntax)
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	fail := f.eachPartition(func(g uint64) []byte {
		for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
			replies, errs := f.cfg.Router.WriteMany(ctx, g, [][][]byte{{[]byte(statemachine.OpFlush)}})
			if len(replies) != 1 || len(errs) != 1 {
				return resp.AppendError(nil, "ERR internal error: no answer from partition")
			}
			reply := replies[0]
			if errs[0] != nil {
				reply = ErrorReply(errs[0])
			} else if sig, _, ok := failure.SignalOf(reply); ok {
				reply = ErrorReply(sig.Err())
			}
			if !strings.HasPrefix(string(reply), "-"+statemachine.ErrFlushLocked) {
				if len(reply) > 0 && reply[0] == '-' {
					return reply
				}
				return nil
			}
			select {
			case <-ctx.Done():
				return reply
			case <-time.After(backoff):
			}
		}
	})
	if fail != nil {
		return fail
	}
	return resp.AppendSimple(nil, "OK")
}
