package edge

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/pubsub"
	"github.com/kintsu/kintsu/internal/resp"
)

// Pub/Sub. Each node keeps its own connections' subscriptions
// (pubsub.Registry); a PUBLISH is delivered here and sent to every other
// node (Config.Peers), each delivering to its own subscribers, so a
// message published anywhere reaches subscribers everywhere, at most
// once, as in Redis. Its reply counts the subscribers that took it on
// the nodes that answered within the publish deadline.
//
// A connection that subscribes gets a writer of its own (subscriber):
// from then on every frame it is sent, replies and messages alike, goes
// through one bounded queue in order, so a slow reader never blocks a
// publisher, and one that falls too far behind is closed, as Redis closes
// a pub/sub client past its output buffer limit.

func init() {
	command.Register(
		connSpec("subscribe", -2, command.PubSub, cmdSubscribe(pubsub.Channel)),
		connSpec("psubscribe", -2, command.PubSub, cmdSubscribe(pubsub.Pattern)),
		connSpec("ssubscribe", -2, command.PubSub, cmdSubscribe(pubsub.Shard)),
		connSpec("unsubscribe", -1, command.PubSub, cmdUnsubscribe(pubsub.Channel)),
		connSpec("punsubscribe", -1, command.PubSub, cmdUnsubscribe(pubsub.Pattern)),
		connSpec("sunsubscribe", -1, command.PubSub, cmdUnsubscribe(pubsub.Shard)),
		connSpec("publish", 3, command.PubSub, cmdPublish(pubsub.Channel)),
		connSpec("spublish", 3, command.PubSub, cmdPublish(pubsub.Shard)),
		connSpec("pubsub", -2, command.PubSub, cmdPubSub),
	)
}

// Pub/sub bounds, Redis's defaults: client-output-buffer-limit pubsub
// 32mb 8mb 60.
const (
	subHardBytes = 32 << 20
	subSoftBytes = 8 << 20
	subSoftTime  = time.Minute
	// publishWait bounds how long a PUBLISH waits for other nodes.
	publishWait = time.Second
	// maxPubSubReply bounds PUBSUB CHANNELS' answer per node.
	maxPubSubChannels = 100000
)

// Peers reaches the cluster's other nodes, for pub/sub and the scripts'
// cache.
type Peers interface {
	// Ask sends body (peerRequest) to every other member and answers the
	// replies of those that answered before ctx ended.
	Ask(ctx context.Context, body []byte) [][]byte
	// AskNode sends body to one member and answers its reply.
	AskNode(ctx context.Context, node uint64, body []byte) ([]byte, error)
}

// isSubControl reports whether spec changes a connection's
// subscriptions: it runs alone, first in its round, so the replies before
// it are written before its confirmations are queued.
func isSubControl(spec *command.Spec) bool {
	return spec != nil && spec.Category == command.PubSub && strings.HasSuffix(spec.Name, "subscribe")
}

// subscribed reports whether the connection is in subscribed mode
// (RESP2): it listens to at least one channel or pattern.
func (f *Server) subscribed(st *connState) bool {
	return st.sub != nil && (f.pubsub.Count(st.sub, pubsub.Channel) > 0 || f.pubsub.Count(st.sub, pubsub.Shard) > 0)
}

// allowedSubscribed reports whether a connection in subscribed mode may
// run spec.
func allowedSubscribed(spec *command.Spec) bool {
	return isSubControl(spec) || spec.Name == "ping" || spec.Name == "quit" || spec.Name == "reset"
}

func errSubscribedMode(name string) string {
	return fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", name)
}

func cmdSubscribe(kind pubsub.Kind) connHandler {
	return func(f *Server, args [][]byte, st *connState) []byte {
		if kind == pubsub.Shard {
			if g := f.partitionOf(args[1]); slicesAny(args[2:], func(c []byte) bool { return f.partitionOf(c) != g }) {
				return resp.AppendError(nil, kv.ErrCrossSlot)
			}
		}
		if st.sub == nil {
			st.sub = f.newSubscriber(st)
		}
		if !f.pubsub.Subscribe(st.sub, kind, args[1:]) {
			st.sub.enqueue(resp.AppendError(nil, fmt.Sprintf("ERR at most %d channels and patterns per connection", pubsub.MaxPerConn)))
		}
		return []byte{} // the confirmations are queued
	}
}

func slicesAny(xs [][]byte, fn func([]byte) bool) bool {
	for _, x := range xs {
		if fn(x) {
			return true
		}
	}
	return false
}

func cmdUnsubscribe(kind pubsub.Kind) connHandler {
	return func(f *Server, args [][]byte, st *connState) []byte {
		if st.sub == nil {
			st.sub = f.newSubscriber(st)
		}
		f.pubsub.Unsubscribe(st.sub, kind, args[1:])
		return []byte{}
	}
}

// peerRequest is what a node asks the others: "publish KIND CHANNEL
// MESSAGE", "channels KIND [PATTERN]", "numsub KIND CHANNEL...",
// "patterns", "script SHA1", "scriptflush".
func peerRequest(args ...[]byte) []byte { return codec.Encoder(nil).Args(args) }

func cmdPublish(kind pubsub.Kind) connHandler {
	return func(f *Server, args [][]byte, _ *connState) []byte {
		n := f.pubsub.Publish(kind, args[1], args[2])
		for _, r := range f.askPeers(peerRequest([]byte("publish"), []byte{byte(kind)}, args[1], args[2])) {
			if v, _, err := resp.ParseValue(r); err == nil && v.Kind == ':' && v.Int >= 0 {
				n += int(v.Int)
			}
		}
		return resp.AppendInt(nil, int64(n))
	}
}

// askPeers sends a pub/sub request to the other nodes.
func (f *Server) askPeers(body []byte) [][]byte {
	if f.cfg.Peers == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, min(publishWait, f.cfg.RequestTimeout))
	defer cancel()
	return f.cfg.Peers.Ask(ctx, body)
}

// ServePeer answers another node's question (peerRequest) from this
// node's pub/sub registry and script cache.
func (f *Server) ServePeer(body []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	args := d.Args()
	if d.Done() != nil || len(args) == 0 {
		return nil, errMalformedPeer
	}
	kind := func(b []byte) (pubsub.Kind, bool) {
		if len(b) != 1 || b[0] > byte(pubsub.Shard) {
			return 0, false
		}
		return pubsub.Kind(b[0]), true
	}
	switch {
	case string(args[0]) == "publish" && len(args) == 4:
		k, ok := kind(args[1])
		if !ok {
			return nil, errMalformedPeer
		}
		return resp.AppendInt(nil, int64(f.pubsub.Publish(k, args[2], args[3]))), nil
	case string(args[0]) == "channels" && (len(args) == 2 || len(args) == 3):
		k, ok := kind(args[1])
		if !ok {
			return nil, errMalformedPeer
		}
		var pattern []byte
		if len(args) == 3 {
			pattern = args[2]
		}
		return appendBulks(nil, f.pubsub.Channels(k, pattern, maxPubSubChannels)), nil
	case string(args[0]) == "numsub" && len(args) >= 2:
		k, ok := kind(args[1])
		if !ok {
			return nil, errMalformedPeer
		}
		counts := f.pubsub.NumSub(k, args[2:])
		out := resp.AppendArrayHeader(nil, len(counts))
		for _, c := range counts {
			out = resp.AppendInt(out, int64(c))
		}
		return out, nil
	case string(args[0]) == "script" && len(args) == 2:
		// Not pub/sub, but the same kind of question to every node: the
		// body of a script it keeps (scripts.go).
		if b, ok := f.scripts.get(args[1]); ok {
			return resp.AppendBulk(nil, b), nil
		}
		return resp.AppendNull(nil), nil
	case string(args[0]) == "scan" && len(args) >= 3:
		// A SCAN step whose cursor names a walk this node keeps.
		return cmdScan(f, args[1:], &connState{}), nil
	case string(args[0]) == "scriptflush" && len(args) == 1:
		f.scripts.flush()
		return resp.AppendSimple(nil, "OK"), nil
	case string(args[0]) == "patterns" && len(args) == 1:
		var ps [][]byte
		for _, p := range f.pubsub.Patterns() {
			ps = append(ps, []byte(p))
		}
		return appendBulks(nil, ps), nil
	}
	return nil, errMalformedPeer
}

var errMalformedPeer = fmt.Errorf("malformed pub/sub request")

func appendBulks(out []byte, xs [][]byte) []byte {
	out = resp.AppendArrayHeader(out, len(xs))
	for _, x := range xs {
		out = resp.AppendBulk(out, x)
	}
	return out
}

// cmdPubSub answers PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS and
// SHARDNUMSUB over the whole cluster: this node's registry and the
// others' that answer in time.
func cmdPubSub(f *Server, args [][]byte, _ *connState) []byte {
	sub := lower(args[1])
	kind := []byte{byte(pubsub.Channel)}
	if strings.HasPrefix(sub, "shard") {
		kind = []byte{byte(pubsub.Shard)}
		sub = strings.TrimPrefix(sub, "shard")
	}
	switch {
	case sub == "channels" && len(args) <= 3:
		req := [][]byte{[]byte("channels"), kind}
		if len(args) == 3 {
			req = append(req, args[2])
		}
		local, _ := f.ServePeer(peerRequest(req...))
		set := map[string]bool{}
		var all [][]byte
		for _, r := range append(f.askPeers(peerRequest(req...)), local) {
			v, _, err := resp.ParseValue(r)
			if err != nil || v.Kind != '*' {
				continue
			}
			for _, e := range v.Array {
				if !set[string(e.Str)] && len(all) < maxPubSubChannels {
					set[string(e.Str)] = true
					all = append(all, e.Str)
				}
			}
		}
		return appendBulks(nil, all)
	case sub == "numsub":
		req := append([][]byte{[]byte("numsub"), kind}, args[2:]...)
		local, _ := f.ServePeer(peerRequest(req...))
		sums := make([]int64, len(args)-2)
		for _, r := range append(f.askPeers(peerRequest(req...)), local) {
			v, _, err := resp.ParseValue(r)
			if err != nil || v.Kind != '*' || len(v.Array) != len(sums) {
				continue
			}
			for i, e := range v.Array {
				sums[i] += e.Int
			}
		}
		out := resp.AppendArrayHeader(nil, 2*len(sums))
		for i, c := range args[2:] {
			out = resp.AppendInt(resp.AppendBulk(out, c), sums[i])
		}
		return out
	case sub == "numpat" && len(args) == 2 && kind[0] == byte(pubsub.Channel):
		local, _ := f.ServePeer(peerRequest([]byte("patterns")))
		set := map[string]bool{}
		for _, r := range append(f.askPeers(peerRequest([]byte("patterns"))), local) {
			if v, _, err := resp.ParseValue(r); err == nil && v.Kind == '*' {
				for _, e := range v.Array {
					set[string(e.Str)] = true
				}
			}
		}
		return resp.AppendInt(nil, int64(len(set)))
	case sub == "help" && len(args) == 2:
		lines := []string{
			"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"CHANNELS [<pattern>]",
			"    Return the currently active channels matching a <pattern> (default: '*').",
			"NUMPAT",
			"    Return number of subscriptions to patterns.",
			"NUMSUB [<channel> ...]",
			"    Return the number of subscribers for the specified channels, excluding",
			"    pattern subscriptions(default: no channels).",
			"SHARDCHANNELS [<pattern>]",
			"    Return the currently active shard level channels matching a <pattern> (default: '*').",
			"SHARDNUMSUB [<shardchannel> ...]",
			"    Return the number of subscribers for the specified shard level channel(s)",
			"HELP",
			"    Prints this help.",
		}
		return appendHelp(lines)
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try PUBSUB HELP.", args[1]))
}

// subscriber is a subscribed connection's writer: every frame for the
// connection goes through its queue, in order. Queued bytes count in the
// connection's and the node's reply memory (holdReplies), as replies do.
type subscriber struct {
	f    *Server
	conn net.Conn
	cl   *tracked

	mu        sync.Mutex
	queue     [][]byte
	bytes     int
	softSince time.Time // when the queue went over subSoftBytes (zero: under)
	closing   bool      // write what is queued, then stop
	closed    bool      // take nothing more
	wake      chan struct{}
	done      chan struct{}
	// resp3: the connection speaks RESP3, so the registry's frames
	// (messages, confirmations) go out as pushes.
	resp3 atomic.Bool
}

func (f *Server) newSubscriber(st *connState) *subscriber {
	s := &subscriber{f: f, conn: st.conn, cl: st.track, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.resp3.Store(st.proto == 3)
	if st.track != nil {
		st.track.sub.Store(s)
	}
	go s.write()
	return s
}

// Push implements pubsub.Subscriber: the registry's frames, in the
// connection's protocol.
func (s *subscriber) Push(frame []byte) bool {
	if s.resp3.Load() {
		frame = resp.ToRESP3(frame, resp.ShapePush)
	}
	return s.enqueue(frame)
}

// enqueue queues a frame as it is.
func (s *subscriber) enqueue(frame []byte) bool {
	if len(frame) == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.closing {
		return false
	}
	switch n := s.bytes + len(frame); {
	case n > subHardBytes:
		s.cutOff("pubsub-hard")
		return false
	case n > subSoftBytes && s.softSince.IsZero():
		s.softSince = time.Now()
	case n > subSoftBytes && time.Since(s.softSince) > subSoftTime:
		s.cutOff("pubsub-soft")
		return false
	}
	if s.cl != nil && !s.f.holdReplies(s.cl, int64(len(frame))) {
		s.f.releaseReplies(s.cl, int64(len(frame)))
		s.cutOff("reply-memory")
		return false
	}
	s.queue = append(s.queue, frame)
	s.bytes += len(frame)
	s.signal()
	return true
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cutOff closes the connection (held: mu); its handler ends on the
// closed socket and forgets the subscriptions.
func (s *subscriber) cutOff(reason string) {
	s.closed = true
	s.f.cfg.Logger.Info("client closed by a limit", "reason", reason, "addr", s.conn.RemoteAddr())
	_ = s.conn.Close()
	s.signal()
}

// finish writes what is queued (within writeTimeout) and stops the
// writer: the connection is ending.
func (s *subscriber) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
	select {
	case <-s.done:
	case <-time.After(writeTimeout):
		// A write that does not end: closing the connection ends it,
		// and the writer releases what it holds before done, so the
		// handler's accounting afterwards never counts it twice.
		_ = s.conn.Close()
		<-s.done
	}
}

func (s *subscriber) write() {
	defer close(s.done)
	defer func() {
		// Whatever is still queued is never written: release it, and
		// take nothing more.
		s.mu.Lock()
		left := s.bytes
		s.queue, s.bytes, s.closed = nil, 0, true
		s.mu.Unlock()
		s.release(left)
	}()
	for range s.wake {
		s.mu.Lock()
		frames, closed, closing := s.queue, s.closed, s.closing
		held := s.bytes
		s.queue, s.bytes = nil, 0
		if held <= subSoftBytes {
			s.softSince = time.Time{}
		}
		s.mu.Unlock()
		if closed {
			s.release(held)
			return
		}
		var buf []byte
		for _, fr := range frames {
			buf = append(buf, fr...)
		}
		var err error
		if len(buf) > 0 {
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err = s.conn.Write(buf)
		}
		s.release(held)
		if err != nil {
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			_ = s.conn.Close()
			return
		}
		if closing {
			return
		}
	}
}

func (s *subscriber) release(n int) {
	if s.cl != nil {
		s.f.releaseReplies(s.cl, int64(n))
	}
}
