package edge

import (
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// RESP3. A connection that said HELLO 3 gets every reply in RESP3: the
// data layer answers in RESP2 as always, and the edge rewrites each reply
// by the shape its command has in Redis (resp.ToRESP3). HELLO and
// FUNCTION build theirs in the connection's protocol themselves; EXEC
// rewrites each queued command's reply in its slot. Pub/Sub's messages
// and confirmations become pushes, and a RESP3 connection may run any
// command while subscribed, as in Redis.

// shape3 is the RESP3 shape of a command's reply.
func shape3(c *command.Cmd) resp.Shape {
	if c.Spec == nil {
		return resp.ShapePlain
	}
	has := func(opt string) bool {
		for _, a := range c.Args[1:] {
			if len(a) == len(opt) && lower(a) == opt {
				return true
			}
		}
		return false
	}
	switch c.Spec.Name {
	case "hgetall":
		return resp.ShapeMap
	case "config":
		if len(c.Args) > 1 && lower(c.Args[1]) == "get" {
			return resp.ShapeMap
		}
	case "pubsub":
		if len(c.Args) > 1 && (lower(c.Args[1]) == "numsub" || lower(c.Args[1]) == "shardnumsub") {
			return resp.ShapeMap
		}
	case "lcs":
		if has("idx") {
			return resp.ShapeMap
		}
	case "smembers", "sinter", "sunion", "sdiff":
		return resp.ShapeSet
	case "spop":
		if len(c.Args) == 3 {
			return resp.ShapeSet
		}
	case "zscore", "zincrby":
		return resp.ShapeDouble
	case "zadd":
		if has("incr") {
			return resp.ShapeDouble
		}
	case "zmscore":
		return resp.ShapeDoubles
	case "zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore", "zunion", "zinter", "zdiff":
		if has("withscores") {
			return resp.ShapeScorePairs
		}
	case "zrandmember":
		if has("withscores") {
			return resp.ShapeScorePairs
		}
	case "hrandfield":
		if has("withvalues") {
			return resp.ShapePairs
		}
	case "zpopmin", "zpopmax":
		if len(c.Args) == 3 {
			return resp.ShapeScorePairs
		}
		return resp.ShapeLastDouble
	case "bzpopmin", "bzpopmax":
		return resp.ShapeLastDouble
	case "zmpop", "bzmpop":
		return resp.ShapeKeyScores
	case "info":
		return resp.ShapeVerbatim
	case "client":
		if len(c.Args) == 2 && (lower(c.Args[1]) == "info" || lower(c.Args[1]) == "list") ||
			len(c.Args) > 2 && lower(c.Args[1]) == "list" {
			return resp.ShapeVerbatim
		}
	}
	return resp.ShapePlain
}

// native3 reports whether a command builds its reply in the connection's
// protocol itself.
func native3(spec *command.Spec) bool {
	return spec != nil && (spec.Name == "hello" || spec.Name == "function" || spec == specExec)
}

// to3 rewrites one command's reply for a RESP3 connection.
func to3(c *command.Cmd, reply []byte) []byte {
	if native3(c.Spec) {
		return reply
	}
	return resp.ToRESP3(reply, shape3(c))
}

// replies3 rewrites a batch's replies for the protocol each was answered
// in: a HELLO in the batch changes it for the commands after it.
func replies3(cmds []command.Cmd, replies [][]byte, proto int) {
	for i, r := range replies {
		if r == nil {
			continue
		}
		c := &cmds[i]
		if c.Spec != nil && c.Spec.Name == "hello" {
			if len(r) > 0 && r[0] != '-' && len(c.Args) > 1 {
				if v, ok := kv.ParseInt(c.Args[1]); ok {
					proto = int(v)
				}
			}
			continue
		}
		if proto != 3 {
			continue
		}
		if c.Spec == specExec {
			if string(r) == "*-1\r\n" {
				replies[i] = []byte(resp.Null)
			}
			continue
		}
		replies[i] = to3(c, r)
	}
}

// slot3 is a queued command's reply in EXEC's array, in the connection's
// protocol.
func (f *Server) slot3(st *connState, c *command.Cmd, reply []byte) []byte {
	if st.proto != 3 {
		return reply
	}
	return to3(c, reply)
}

// setProto switches the connection's protocol (HELLO).
func (f *Server) setProto(st *connState, proto int) {
	st.proto = proto
	if st.sub != nil {
		st.sub.resp3.Store(proto == 3)
	}
	if st.track != nil {
		st.track.proto.Store(int32(proto))
	}
}
