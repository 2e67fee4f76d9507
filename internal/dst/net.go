package dst

import (
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsu/kintsu/internal/raftstore"
)

// network carries raft traffic between simulated nodes. What a node sends
// during a step is queued on its outbox and scheduled when the step ends,
// each message with its own delay, so messages reorder; loss, duplication,
// clogged links and cut links apply per message. A message is copied as
// the wire would copy it: the receiver never shares the sender's memory.
type network struct {
	s      *Sim
	outbox map[uint64][]outMsg // by sender
	cut    map[[2]uint64]bool  // from, to: nothing gets through
	clog   map[[2]uint64]time.Duration
	quiet  bool // healed: no loss, duplication or extra delay
}

type outMsg struct {
	to   uint64
	envs []raftstore.Envelope
	snap *snapSend
}

type snapSend struct {
	env  raftstore.Envelope
	kvs  [][2][]byte
	err  error
	done func(error)
}

func newNetwork(s *Sim) *network {
	return &network{s: s, outbox: map[uint64][]outMsg{}, cut: map[[2]uint64]bool{}, clog: map[[2]uint64]time.Duration{}}
}

// transport is node from's end of the network.
func (nw *network) transport(from uint64) raftstore.Transport { return &endpoint{nw: nw, from: from} }

type endpoint struct {
	nw   *network
	from uint64
}

func (e *endpoint) Send(node uint64, msgs []raftstore.Envelope) {
	cp := make([]raftstore.Envelope, len(msgs))
	for i, m := range msgs {
		cp[i] = raftstore.Envelope{Group: m.Group, Msg: cloneMsg(m.Msg), Removed: m.Removed, Lease: m.Lease}
	}
	e.nw.outbox[e.from] = append(e.nw.outbox[e.from], outMsg{to: node, envs: cp})
}

// SendSnapshot reads the snapshot now (a consistent view) and delivers it
// as one event; done is called when it arrives or is lost.
func (e *endpoint) SendSnapshot(node uint64, env raftstore.Envelope, src raftstore.SnapshotSource, done func(error)) {
	ss := &snapSend{env: raftstore.Envelope{Group: env.Group, Msg: cloneMsg(env.Msg), Lease: env.Lease}, done: done}
	ss.err = src.Iterate(func(k, v []byte) error {
		ss.kvs = append(ss.kvs, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	})
	e.nw.outbox[e.from] = append(e.nw.outbox[e.from], outMsg{to: node, snap: ss})
}

func cloneMsg(m *pb.Message) *pb.Message { return proto.Clone(m).(*pb.Message) }

// flush schedules what n sent during its step.
func (nw *network) flush(n *node) {
	out := nw.outbox[n.id]
	delete(nw.outbox, n.id)
	s := nw.s
	for _, m := range out {
		link := [2]uint64{n.id, m.to}
		if m.snap != nil {
			ss := m.snap
			d := nw.delay(link) + time.Duration(len(ss.kvs))*time.Microsecond
			s.at(d, "snap", n.id, m.to, func() { nw.deliverSnap(link, ss) })
			continue
		}
		if !nw.quiet && s.rng.Float64() < s.shape.Loss {
			s.fault("loss")
			continue
		}
		copies := 1
		if !nw.quiet && s.rng.Float64() < s.shape.Dup {
			s.fault("dup")
			copies = 2
		}
		for c := 0; c < copies; c++ {
			envs := m.envs
			s.at(nw.delay(link), "msg", n.id, m.to, func() { nw.deliver(link, envs) })
		}
	}
}

func (nw *network) delay(link [2]uint64) time.Duration {
	d := nw.s.between(100*time.Microsecond, nw.s.shape.MaxDelay)
	if !nw.quiet {
		d += nw.clog[link]
	}
	return d
}

func (nw *network) deliver(link [2]uint64, envs []raftstore.Envelope) {
	to := nw.s.nodes[link[1]-1]
	if nw.cut[link] || !to.up {
		return
	}
	entries := 0
	for i := range envs {
		envs[i].From = link[0]
		if envs[i].Msg != nil {
			entries += len(envs[i].Msg.Entries)
		}
	}
	if entries >= bigInput {
		to.tookBigInput()
	}
	to.eng.HandleRaft(envs)
	to.busy = true
}

func (nw *network) deliverSnap(link [2]uint64, ss *snapSend) {
	to := nw.s.nodes[link[1]-1]
	err := ss.err
	if err == nil && (nw.cut[link] || !to.up) {
		err = errLinkDown
	}
	if err == nil {
		err = nw.install(to, link[0], ss)
	}
	if err == nil {
		nw.s.fault("snapshot")
	}
	// The sender learns the outcome (it may be down by now: the engine
	// ignores news for an engine that is gone).
	from := nw.s.nodes[link[0]-1]
	ss.done(err)
	from.busy = from.up
}

func (nw *network) install(to *node, from uint64, ss *snapSend) error {
	env := ss.env
	env.From = from
	to.tookBigInput()
	b, err := to.eng.NewSnapshotBuilder(env)
	if err != nil {
		return err
	}
	for _, kv := range ss.kvs {
		if err := b.Add(kv[0], kv[1]); err != nil {
			b.Abort()
			return err
		}
	}
	to.busy, to.tookSnap = true, true
	return to.eng.ReceiveSnapshot(env, b)
}

// nodeDown: a crashed node's links break. Its peers' kernels notice at
// once when its process dies (half the time), or only much later when a
// whole machine loses power (keepalive): PeerDown either way, late or
// soon; safety never depends on it.
func (nw *network) nodeDown(id uint64) {
	s := nw.s
	d := s.between(time.Millisecond, 5*time.Millisecond)
	if s.rng.IntN(2) == 0 {
		d = s.between(2*time.Second, 5*time.Second)
	}
	for _, peer := range s.nodes {
		if peer.id == id {
			continue
		}
		p := peer
		inc := p.inc
		s.at(d, "peer-down", p.id, id, func() {
			if p.up && p.inc == inc {
				p.eng.PeerDown(id)
				p.busy = true
			}
		})
	}
}

type netError string

func (e netError) Error() string { return string(e) }

const errLinkDown = netError("link down")
