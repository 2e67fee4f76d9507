package dst

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kintsu/kintsu/internal/check"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftstore"
)

// The workload: clients that each wait for their answer before the next
// operation, as a Redis client without pipelining does.
//   - set: SET of a unique key; acknowledged keys must all survive, and no
//     key may appear that no client wrote.
//   - reads of keys acknowledged before the read began, on whichever node
//     believes it leads, through the real ReadIndex path.
//   - register: GET, SET and compare-and-set (SET ... IFEQ) of a few hot
//     keys, checked for linearizability with porcupine.
type workload struct {
	s       *Sim
	clients []*client
	acked   map[string]string // set workload: key -> value
	unknown map[string]bool
	order   []string // acked keys, in order
	hist    *check.History
	stopped bool
	// counters: INCR without deduplication (origin 0), so that an entry
	// applied twice shows: key -> acknowledged and unknown increments.
	incAcked, incUnknown map[string]int
	incSeq               uint64
}

type client struct {
	w      *workload
	id     int
	origin uint64
	seq    uint64
	guess  map[uint64]uint64 // group -> node believed to lead
	seen   map[string]string // register: last value seen per key
}

const (
	opTimeout  = time.Second
	hotKeys    = 3
	maxRetryMs = 20
)

func newWorkload(s *Sim) *workload {
	w := &workload{s: s, acked: map[string]string{}, unknown: map[string]bool{}, incAcked: map[string]int{}, incUnknown: map[string]int{}}
	w.hist = check.NewHistoryAt(func() int64 { return int64(s.now) })
	for i := 0; i < s.shape.Clients; i++ {
		w.clients = append(w.clients, &client{w: w, id: i, origin: uint64(1000 + i), guess: map[uint64]uint64{}, seen: map[string]string{}})
	}
	return w
}

func (w *workload) start() {
	for _, c := range w.clients {
		c.next(w.s.between(0, 50*time.Millisecond))
	}
}

func (w *workload) stop() { w.stopped = true }

func (c *client) next(after time.Duration) {
	w := c.w
	w.s.at(after, "client", uint64(c.id), c.seq, func() {
		if !w.stopped {
			c.run()
		}
	})
}

func (w *workload) group(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return 1 + h.Sum64()%uint64(w.s.shape.Groups)
}

// target is the node the client sends group's requests to.
func (c *client) target(g uint64) *node {
	s := c.w.s
	id := c.guess[g]
	if id == 0 || !s.nodes[id-1].up {
		id = uint64(1 + s.rng.IntN(len(s.nodes)))
		c.guess[g] = id
	}
	return s.nodes[id-1]
}

func (c *client) run() {
	w, s := c.w, c.w.s
	c.seq++
	r := s.rng.Float64()
	switch {
	case r < s.shape.ReadShare/2 && len(w.order) > 0:
		key := w.order[max(0, len(w.order)-1-s.rng.IntN(min(len(w.order), 50)))]
		c.read(key, func(val string, ok bool) {
			if !ok || val != w.acked[key] {
				s.fail("stale read: client %d read %q = %q (present %v), but %q was acknowledged before the read began", c.id, key, val, ok, w.acked[key])
			}
		})
	case r < s.shape.ReadShare:
		key := fmt.Sprintf("r%d", s.rng.IntN(hotKeys))
		in := check.RegisterInput{Kind: check.Read, Key: key}
		call := w.hist.Now()
		c.read(key, func(val string, ok bool) {
			w.hist.Ok(c.id, in, check.RegisterOutput{Value: val, Exists: ok}, call, w.hist.Now())
			if ok {
				c.seen[key] = val
			}
		})
	case r < (1+s.shape.ReadShare)/2:
		key := fmt.Sprintf("s%d-%d", c.id, c.seq)
		c.write(key, [][]byte{[]byte("SET"), []byte(key), []byte(key)}, func(reply []byte, outcome int) {
			switch outcome {
			case done:
				w.acked[key] = key
				w.order = append(w.order, key)
				s.res.Acked++
			case unknown:
				w.unknown[key] = true
			}
		})
	case r < (1+s.shape.ReadShare)/2+0.1:
		key := fmt.Sprintf("n%d", s.rng.IntN(hotKeys))
		w.incSeq++
		c.writeAs(0, w.incSeq, key, [][]byte{[]byte("INCR"), []byte(key)}, 0, false, w.countIncr(key))
	case r < (1+s.shape.ReadShare)/2+0.2:
		// Deduplicated counters: unknown outcomes are retried with the
		// same (origin, seq), through whichever node leads by then.
		key := fmt.Sprintf("d%d", s.rng.IntN(hotKeys))
		c.writeAs(c.origin, c.seq, key, [][]byte{[]byte("INCR"), []byte(key)}, 8, false, w.countIncr(key))
	default:
		key := fmt.Sprintf("r%d", s.rng.IntN(hotKeys))
		val := fmt.Sprintf("c%d-%d", c.id, c.seq)
		in := check.RegisterInput{Kind: check.Write, Key: key, Value: val}
		args := [][]byte{[]byte("SET"), []byte(key), []byte(val)}
		if s.rng.IntN(2) == 0 {
			in = check.RegisterInput{Kind: check.CAS, Key: key, Value: val, Expect: c.seen[key]}
			args = append(args, []byte("IFEQ"), []byte(in.Expect))
		}
		call := w.hist.Now()
		c.write(key, args, func(reply []byte, outcome int) {
			switch outcome {
			case done:
				out := check.RegisterOutput{Swapped: in.Kind == check.CAS && string(reply) == "+OK\r\n"}
				w.hist.Ok(c.id, in, out, call, w.hist.Now())
				if in.Kind == check.Write || out.Swapped {
					c.seen[key] = val
				}
				s.res.Acked++
			case unknown:
				w.hist.Unknown(c.id, in, call)
			}
		})
	}
}

// Outcomes of a write.
const (
	done = iota
	notApplied
	unknown
)

// write proposes args to the group of key and reports the outcome once:
// the reply, nothing applied, or unknown (timed out, or the node went
// down with it in flight).
func (c *client) write(key string, args [][]byte, report func(reply []byte, outcome int)) {
	c.writeAs(c.origin, c.seq, key, args, 0, false, report)
}

// writeAs is write with a chosen (origin, seq): origin 0 turns the
// engine's deduplication off. An unknown outcome is retried, with the
// same (origin, seq), up to retries times: deduplication must make the
// retries of an applied command answer its reply without applying it
// again. A "not applied" answer to a retry says nothing of the earlier
// attempts, so the outcome stays unknown.
func (c *client) writeAs(origin, seq uint64, key string, args [][]byte, retries int, wasUnknown bool, report func(reply []byte, outcome int)) {
	s := c.w.s
	g := c.w.group(key)
	n := c.target(g)
	finish := func(reply []byte, outcome int) {
		if wasUnknown && outcome == notApplied {
			outcome = unknown
		}
		if outcome == unknown && retries > 0 && !c.w.stopped {
			s.at(s.between(20*time.Millisecond, 200*time.Millisecond), "retry", uint64(c.id), seq, func() {
				c.writeAs(origin, seq, key, args, retries-1, true, report)
			})
			return
		}
		report(reply, outcome)
		c.next(time.Duration(s.rng.IntN(maxRetryMs)) * time.Millisecond)
	}
	if !n.up {
		c.guess[g] = 0
		if wasUnknown {
			finish(nil, unknown)
			return
		}
		c.next(time.Duration(1+s.rng.IntN(maxRetryMs)) * time.Millisecond)
		return
	}
	answered := false
	req := &raftstore.Request{Origin: origin, Seq: seq, Args: args}
	cancel := n.eng.ProposeAsync(g, []*raftstore.Request{req}, func(_ int, reply []byte, err error) {
		if answered {
			s.fail("client %d: a write answered twice", c.id)
			return
		}
		answered = true
		switch {
		case err == nil:
			finish(reply, done)
		case isNotApplied(err):
			c.redirect(g, err)
			finish(nil, notApplied)
		default:
			c.guess[g] = 0
			finish(nil, unknown)
		}
	})
	n.busy = true
	s.at(opTimeout, "timeout", uint64(c.id), seq, func() {
		if !answered {
			cancel(errTimeout)
		}
	})
}

// read passes a read barrier on the node the client believes leads key's
// group, then reads the key there.
func (c *client) read(key string, got func(val string, ok bool)) {
	s := c.w.s
	g := c.w.group(key)
	n := c.target(g)
	if !n.up {
		c.next(time.Duration(1+s.rng.IntN(maxRetryMs)) * time.Millisecond)
		return
	}
	answered, gaveUp := false, false
	inc := n.inc
	n.eng.ReadAsync(g, func(err error) {
		if answered {
			s.fail("client %d: a read answered twice", c.id)
			return
		}
		answered = true
		if gaveUp {
			return // the client moved on at its deadline
		}
		if err == nil && n.up && n.inc == inc {
			stored, ok, rerr := n.eng.Reader(g).Get([]byte(key))
			if rerr != nil {
				s.fail("read %q on node %d: %v", key, n.id, rerr)
				return
			}
			val := ""
			if ok {
				var v []byte
				v, ok = kv.LoadString(stored)
				val = string(v)
			}
			got(val, ok)
		} else if err != nil {
			c.redirect(g, err)
		}
		c.next(time.Duration(s.rng.IntN(maxRetryMs)) * time.Millisecond)
	})
	n.busy = true
	s.at(opTimeout, "read-timeout", uint64(c.id), c.seq, func() {
		if !answered {
			gaveUp = true
			c.next(0)
		}
	})
}

// redirect follows a not-leader hint, or tries another node.
func (c *client) redirect(g uint64, err error) {
	var nl *raftstore.NotLeaderError
	if errors.As(err, &nl) && nl.Leader != 0 {
		c.guess[g] = nl.Leader
		return
	}
	c.guess[g] = 0
}

func isNotApplied(err error) bool {
	return errors.Is(err, raftstore.ErrNotLeader) || errors.Is(err, raftstore.ErrNoGroup) ||
		errors.Is(err, raftstore.ErrBusy) || errors.Is(err, raftstore.ErrNoSpace)
}

var errTimeout = errors.New("client deadline")

// final checks the set workload against every replica, and the
// registers' history with porcupine.
func (w *workload) final() {
	s := w.s
	for g := uint64(1); g <= uint64(s.shape.Groups); g++ {
		for _, id := range s.members(g) {
			n := s.nodes[id-1]
			present := map[string]bool{}
			if !w.checkCounters(n, g) {
				return
			}
			err := n.eng.ScanData(g, nil, func(k, stored []byte) bool {
				key := string(k)
				present[key] = true
				if key[0] == 's' && w.acked[key] == "" && !w.unknown[key] {
					s.fail("node %d holds %q, which no client wrote (or it was refused)", n.id, key)
					return false
				}
				return true
			})
			if err != nil {
				s.fail("scan group %d on node %d: %v", g, n.id, err)
				return
			}
			for _, key := range w.order {
				if w.group(key) == g && !present[key] {
					s.fail("acknowledged write lost: %q is missing on node %d", key, n.id)
					return
				}
			}
		}
	}
	if res := check.CheckRegisters(w.hist, 10*time.Second); res != porcupine.Ok {
		s.fail("the registers' history is not linearizable (porcupine: %s)", res)
	}
}

// countIncr records the outcome of an increment of key.
func (w *workload) countIncr(key string) func([]byte, int) {
	return func(_ []byte, outcome int) {
		switch outcome {
		case done:
			w.incAcked[key]++
			w.s.res.Acked++
		case unknown:
			w.incUnknown[key]++
		}
	}
}

// checkCounters: each counter holds at least its acknowledged increments
// and at most those plus the unknown ones.
func (w *workload) checkCounters(n *node, g uint64) bool {
	for i := 0; i < 2*hotKeys; i++ {
		key := fmt.Sprintf("n%d", i)
		if i >= hotKeys {
			key = fmt.Sprintf("d%d", i-hotKeys)
		}
		if w.group(key) != g {
			continue
		}
		stored, ok, err := n.eng.Reader(g).Get([]byte(key))
		if err != nil {
			w.s.fail("read %q on node %d: %v", key, n.id, err)
			return false
		}
		v := int64(0)
		if ok {
			b, _ := kv.LoadString(stored)
			v, _ = kv.ParseInt(b)
		}
		lo, hi := w.incAcked[key], w.incAcked[key]+w.incUnknown[key]
		if v < int64(lo) || v > int64(hi) {
			w.s.fail("counter %q is %d on node %d: %d increments were acknowledged and %d unknown (an entry applied twice, or one lost)", key, v, n.id, lo, hi-lo)
			return false
		}
	}
	return true
}
