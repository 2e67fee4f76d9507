// Package pubsub is a node's publish/subscribe registry: which of its
// connections listen to which channels, patterns and shard channels, and
// the delivery of a message to them. Messages cross nodes through the
// caller (the edge broadcasts a PUBLISH to every node, each of which
// delivers to its own subscribers); nothing here touches the network.
//
// Invariants:
//   - Delivery is at most once and never blocks the publisher: a
//     subscriber takes a message into its own bounded queue or refuses it
//     (its connection is then closed, as Redis closes a pub/sub client
//     past its output buffer limit).
//   - A subscriber's confirmation of a subscription is queued before any
//     message of that subscription: both happen under the registry's lock.
//   - A subscriber's queue is bounded in bytes (Limits); the registry is
//     bounded by the connections a node admits and the subscriptions each
//     may hold (MaxPerConn).
package pubsub

import (
	"slices"
	"sync"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Kind names the three namespaces Redis keeps apart.
type Kind uint8

const (
	Channel Kind = iota // SUBSCRIBE, PUBLISH
	Pattern             // PSUBSCRIBE
	Shard               // SSUBSCRIBE, SPUBLISH
)

// MaxPerConn bounds the channels and patterns one connection may listen
// to, all kinds together.
const MaxPerConn = 100000

// Subscriber is one connection's end of its subscriptions.
type Subscriber interface {
	// Push queues a frame for the connection, in order, without
	// blocking; false when the connection cannot take it (it is being
	// closed).
	Push(frame []byte) bool
}

// Registry is a node's subscriptions.
type Registry struct {
	mu    sync.RWMutex
	names [3]map[string]map[Subscriber]struct{}  // kind -> channel or pattern -> subscribers
	subs  map[Subscriber]*[3]map[string]struct{} // what each subscriber listens to
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{subs: map[Subscriber]*[3]map[string]struct{}{}}
	for i := range r.names {
		r.names[i] = map[string]map[Subscriber]struct{}{}
	}
	return r
}

// verbs are the confirmations' first elements, per kind.
var (
	subVerb   = [3]string{"subscribe", "psubscribe", "ssubscribe"}
	unsubVerb = [3]string{"unsubscribe", "punsubscribe", "sunsubscribe"}
)

// Count is how many channels and patterns s listens to (the count
// SUBSCRIBE and PSUBSCRIBE confirm; kind Shard: its shard channels, which
// SSUBSCRIBE confirms apart, as Redis does). A connection listening to
// any is in subscribed mode.
func (r *Registry) Count(s Subscriber, kind Kind) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count(s, kind)
}

// CountKind is how many names of kind alone s listens to (CLIENT LIST's
// sub, psub and ssub).
func (r *Registry) CountKind(s Subscriber, kind Kind) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if l := r.subs[s]; l != nil {
		return len(l[kind])
	}
	return 0
}

func (r *Registry) count(s Subscriber, kind Kind) int {
	l := r.subs[s]
	if l == nil {
		return 0
	}
	if kind == Shard {
		return len(l[Shard])
	}
	return len(l[Channel]) + len(l[Pattern])
}

func total(l *[3]map[string]struct{}) int { return len(l[0]) + len(l[1]) + len(l[2]) }

// Subscribe adds names of kind for s, pushing a confirmation for each
// (even one s already had, as Redis does). It answers false, adding
// nothing further, when s would pass MaxPerConn.
func (r *Registry) Subscribe(s Subscriber, kind Kind, names [][]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.subs[s]
	if l == nil {
		l = &[3]map[string]struct{}{{}, {}, {}}
		r.subs[s] = l
	}
	for _, n := range names {
		name := string(n)
		if _, ok := l[kind][name]; !ok {
			if total(l) >= MaxPerConn {
				return false
			}
			l[kind][name] = struct{}{}
			m := r.names[kind][name]
			if m == nil {
				m = map[Subscriber]struct{}{}
				r.names[kind][name] = m
			}
			m[s] = struct{}{}
		}
		s.Push(confirm(subVerb[kind], n, r.count(s, kind)))
	}
	return true
}

// Unsubscribe removes names of kind for s (all of that kind, in byte
// order, when names is empty), pushing a confirmation for each; with none
// to remove, one confirmation with a null name, as Redis answers.
func (r *Registry) Unsubscribe(s Subscriber, kind Kind, names [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.subs[s]
	if len(names) == 0 && l != nil {
		all := make([]string, 0, len(l[kind]))
		for n := range l[kind] {
			all = append(all, n)
		}
		slices.Sort(all)
		for _, n := range all {
			names = append(names, []byte(n))
		}
	}
	if len(names) == 0 {
		s.Push(confirm(unsubVerb[kind], nil, r.count(s, kind)))
		return
	}
	for _, n := range names {
		r.remove(s, kind, string(n))
		s.Push(confirm(unsubVerb[kind], n, r.count(s, kind)))
	}
}

func (r *Registry) remove(s Subscriber, kind Kind, name string) {
	l := r.subs[s]
	if l == nil {
		return
	}
	if _, ok := l[kind][name]; !ok {
		return
	}
	delete(l[kind], name)
	if m := r.names[kind][name]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(r.names[kind], name)
		}
	}
	if total(l) == 0 {
		delete(r.subs, s)
	}
}

// Forget drops every subscription of s (its connection closed).
func (r *Registry) Forget(s Subscriber) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.subs[s]
	if l == nil {
		return
	}
	for kind := range l {
		for n := range l[kind] {
			r.remove(s, Kind(kind), n)
		}
	}
}

// Publish delivers message on channel to this node's subscribers: those
// of the channel, then those of matching patterns (Channel), or those of
// the shard channel (Shard). It answers how many took it.
func (r *Registry) Publish(kind Kind, channel, message []byte) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	if m := r.names[kind][string(channel)]; len(m) > 0 {
		frame := messageFrame(kind, channel, message)
		for s := range m {
			if s.Push(frame) {
				n++
			}
		}
	}
	if kind != Channel {
		return n
	}
	for pattern, m := range r.names[Pattern] {
		if !kv.Match([]byte(pattern), channel) {
			continue
		}
		out := resp.AppendArrayHeader(nil, 4)
		out = resp.AppendBulkString(out, "pmessage")
		out = resp.AppendBulkString(out, pattern)
		out = resp.AppendBulk(out, channel)
		out = resp.AppendBulk(out, message)
		for s := range m {
			if s.Push(out) {
				n++
			}
		}
	}
	return n
}

func messageFrame(kind Kind, channel, message []byte) []byte {
	verb := "message"
	if kind == Shard {
		verb = "smessage"
	}
	out := resp.AppendArrayHeader(nil, 3)
	out = resp.AppendBulkString(out, verb)
	out = resp.AppendBulk(out, channel)
	return resp.AppendBulk(out, message)
}

func confirm(verb string, name []byte, count int) []byte {
	out := resp.AppendArrayHeader(nil, 3)
	out = resp.AppendBulkString(out, verb)
	if name == nil {
		out = resp.AppendNull(out)
	} else {
		out = resp.AppendBulk(out, name)
	}
	return resp.AppendInt(out, int64(count))
}

// Channels lists the channels of kind (Channel or Shard) with at least
// one subscriber here, matching pattern (nil: all), at most max of them,
// in byte order.
func (r *Registry) Channels(kind Kind, pattern []byte, max int) [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out [][]byte
	for name := range r.names[kind] {
		if len(out) >= max {
			break
		}
		if pattern == nil || kv.Match(pattern, []byte(name)) {
			out = append(out, []byte(name))
		}
	}
	slices.SortFunc(out, func(a, b []byte) int { return slices.Compare(a, b) })
	return out
}

// NumSub is the number of subscribers here of each channel of kind.
func (r *Registry) NumSub(kind Kind, channels [][]byte) []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]int, len(channels))
	for i, c := range channels {
		out[i] = len(r.names[kind][string(c)])
	}
	return out
}

// Patterns lists the distinct patterns subscribed to here (PUBSUB NUMPAT
// counts them across nodes).
func (r *Registry) Patterns() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.names[Pattern]))
	for p := range r.names[Pattern] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
