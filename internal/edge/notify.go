package edge

import (
	"strings"
	"sync"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/pubsub"
	"github.com/kintsu/kintsu/internal/resp"
)

// Keyspace notifications (notify-keyspace-events): a write through this
// node that changed something publishes Redis's events on
// __keyspace@0__:KEY and __keyevent@0__:EVENT, to this node's
// subscribers at once (before the write's reply) and to the other nodes'
// in the background; at most once, as every message. The events are told
// from the command and its reply at the edge, which sees no expiry nor
// whether a key was new: the expired and new events are not sent, and
// Kintsu never evicts.

// Event classes, as Redis's notify.c has them.
const (
	notifyKeyspace = 1 << iota
	notifyKeyevent
	notifyGeneric
	notifyString
	notifyList
	notifySet
	notifyHash
	notifyZset
	notifyExpired
	notifyEvicted
	notifyStream
	notifyKeyMiss
	notifyModule
	notifyNew
	notifyAll = notifyGeneric | notifyString | notifyList | notifySet | notifyHash | notifyZset | notifyExpired | notifyEvicted | notifyStream | notifyModule
)

var notifyChars = []struct {
	c    byte
	flag int
}{
	{'g', notifyGeneric}, {'$', notifyString}, {'l', notifyList}, {'s', notifySet}, {'h', notifyHash},
	{'z', notifyZset}, {'x', notifyExpired}, {'e', notifyEvicted}, {'t', notifyStream}, {'d', notifyModule},
	{'n', notifyNew}, {'K', notifyKeyspace}, {'E', notifyKeyevent}, {'m', notifyKeyMiss}, {'A', notifyAll},
}

// parseNotify reads notify-keyspace-events' classes; ok is false for a
// character that names none.
func parseNotify(s string) (flags int, ok bool) {
	for i := 0; i < len(s); i++ {
		found := false
		for _, nc := range notifyChars {
			if nc.c == s[i] {
				flags |= nc.flag
				found = true
			}
		}
		if !found {
			return 0, false
		}
	}
	return flags, true
}

// formatNotify is Redis's canonical text for flags.
func formatNotify(flags int) string {
	var b strings.Builder
	if flags&notifyAll == notifyAll {
		b.WriteByte('A')
	} else {
		for _, nc := range notifyChars[:11] {
			if flags&nc.flag != 0 {
				b.WriteByte(nc.c)
			}
		}
	}
	for _, nc := range notifyChars[11:14] {
		if flags&nc.flag != 0 {
			b.WriteByte(nc.c)
		}
	}
	return b.String()
}

type event struct {
	class int
	name  string
	key   []byte
}

// eventsOf are the events of a write that answered reply.
func eventsOf(c *command.Cmd, reply []byte) []event {
	if len(reply) == 0 || reply[0] == '-' || c.Spec == nil || !c.Writes() || len(c.Keys) == 0 {
		return nil
	}
	v, _, err := resp.ParseValue(reply)
	if err != nil {
		return nil
	}
	changed := !v.Null && (v.Kind != ':' || v.Int > 0)
	key := c.Args[c.Keys[0]]
	one := func(class int, name string) []event {
		if !changed {
			return nil
		}
		return []event{{class, name, key}}
	}
	switch name := c.Spec.Name; name {
	case "set", "setex", "psetex", "getset", "mset", "setnx", "msetnx", "append", "setrange":
		if name == "mset" || name == "msetnx" {
			if !changed {
				return nil
			}
			var out []event
			for _, k := range c.Keys {
				out = append(out, event{notifyString, "set", c.Args[k]})
			}
			return out
		}
		if name == "append" || name == "setrange" {
			return []event{{notifyString, name, key}}
		}
		return one(notifyString, "set")
	case "incr", "incrby":
		return []event{{notifyString, "incrby", key}}
	case "decr", "decrby":
		return []event{{notifyString, "decrby", key}}
	case "incrbyfloat":
		return []event{{notifyString, "incrbyfloat", key}}
	case "del", "unlink", "getdel":
		if len(c.Keys) != 1 {
			return nil
		}
		return one(notifyGeneric, "del")
	case "expire", "pexpire", "expireat", "pexpireat":
		return one(notifyGeneric, "expire")
	case "persist":
		return one(notifyGeneric, "persist")
	case "rename", "renamenx":
		if !changed || len(c.Keys) != 2 {
			return nil
		}
		return []event{{notifyGeneric, "rename_from", key}, {notifyGeneric, "rename_to", c.Args[c.Keys[1]]}}
	case "lpush", "rpush", "lpushx", "rpushx":
		return one(notifyList, strings.TrimSuffix(name, "x"))
	case "lpop", "rpop", "linsert", "lset", "ltrim", "lrem":
		return one(notifyList, name)
	case "sadd", "srem", "spop":
		return one(notifySet, name)
	case "zadd", "zrem", "zpopmin", "zpopmax", "zremrangebyscore", "zremrangebyrank", "zremrangebylex":
		return one(notifyZset, name)
	case "zincrby":
		return one(notifyZset, "zincr")
	case "hset", "hmset", "hsetnx":
		return one(notifyHash, "hset")
	case "hdel", "hincrby", "hincrbyfloat":
		return one(notifyHash, name)
	}
	return nil
}

// notifyBatch publishes the events of a batch's writes.
func (f *Server) notifyBatch(cmds []command.Cmd, replies [][]byte) {
	if int(f.notifyFlags.Load())&(notifyKeyspace|notifyKeyevent) == 0 {
		return
	}
	var events []event
	for i := range cmds {
		if i < len(replies) && replies[i] != nil {
			events = append(events, eventsOf(&cmds[i], replies[i])...)
		}
	}
	f.publishEvents(events)
}

// NotifyExpired publishes the "expired" events of keys the expiry sweep
// deleted on this node (the leader of their partition). Redis sends them
// when it deletes an expired key, on access or in its background cycle;
// Kintsu's sweep deletes within about a second of the expiry.
func (f *Server) NotifyExpired(keys [][]byte) {
	events := make([]event, len(keys))
	for i, k := range keys {
		events[i] = event{class: notifyExpired, name: "expired", key: k}
	}
	f.publishEvents(events)
}

// publishEvents publishes the events whose class is enabled, on the
// keyspace and keyevent channels as enabled: to this node's subscribers
// at once, to the other nodes' through notifyOut.
func (f *Server) publishEvents(events []event) {
	flags := int(f.notifyFlags.Load())
	var remote [][]byte
	for _, e := range events {
		if flags&e.class == 0 {
			continue
		}
		if flags&notifyKeyspace != 0 {
			remote = append(remote, f.publishEvent(append([]byte("__keyspace@0__:"), e.key...), []byte(e.name)))
		}
		if flags&notifyKeyevent != 0 {
			remote = append(remote, f.publishEvent([]byte("__keyevent@0__:"+e.name), e.key))
		}
	}
	if len(remote) > 0 && f.cfg.Peers != nil {
		f.notifyOut.send(f, remote)
	}
}

// notifyQueue carries events to the other nodes: one sender, a bounded
// queue; past it events are dropped (at most once, as every message), so
// a slow peer never holds up a write nor grows memory.
type notifyQueue struct {
	once sync.Once
	ch   chan []byte
}

const notifyQueued = 4096

func (q *notifyQueue) send(f *Server, reqs [][]byte) {
	q.once.Do(func() {
		q.ch = make(chan []byte, notifyQueued)
		go func() {
			for {
				select {
				case <-f.ctx.Done():
					return
				case r := <-q.ch:
					f.askPeers(r)
				}
			}
		}()
	})
	for _, r := range reqs {
		select {
		case q.ch <- r:
		default:
			return // full: the rest is dropped
		}
	}
}

// publishEvent delivers one event here and answers the request that
// delivers it on the other nodes.
func (f *Server) publishEvent(channel, message []byte) []byte {
	f.pubsub.Publish(pubsub.Channel, channel, message)
	return peerRequest([]byte("publish"), []byte{byte(pubsub.Channel)}, channel, message)
}
