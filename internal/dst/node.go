package dst

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/raftlog"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/storage"
)

// epoch is the simulated wall time at the start of every run.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const tickInterval = 50 * time.Millisecond

// replicasPerGroup: with more nodes than this, replicas can move.
const replicasPerGroup = 3

// node is one simulated machine: its disk outlives its crashes.
type node struct {
	s    *Sim
	id   uint64
	disk *disk
	clk  *clock.Clock
	db   *pebble.DB
	rlog *raftlog.Log
	eng  *raftstore.Engine
	up   bool
	inc  uint64 // incarnation: events for an earlier one are dropped
	busy bool   // has input the engine has not stepped over yet
	// the clock's drift: ppm, and a step applied at the next tick
	drift int64
	terms uint64 // sum of the replicas' terms after the last step
	// tookSnap: a snapshot was handed to the engine since its last step
	tookSnap bool
	// flushedAt: the DB's WAL bytes at its last flush (maybeFlush)
	flushedAt uint64
	// bigInputAt: when the node last took in a snapshot or many entries
	// at once (disk.go's calm says why it matters)
	bigInputAt time.Duration
	// last published per group, for the checker
}

func (s *Sim) startCluster() {
	var descs []*storage.Descriptor
	for g := 0; g < s.shape.Groups; g++ {
		d := &storage.Descriptor{Group: uint64(g + 1), NextID: uint64(s.shape.Nodes) + 1}
		for i := 0; i < min(replicasPerGroup, s.shape.Nodes); i++ {
			d.Replicas = append(d.Replicas, storage.Replica{ID: uint64(i) + 1, Node: uint64((g+i)%s.shape.Nodes) + 1})
		}
		descs = append(descs, d)
	}
	for i := 1; i <= s.shape.Nodes; i++ {
		n := &node{s: s, id: uint64(i), disk: newDisk(s, uint64(i)), clk: clock.NewManual(epoch)}
		s.nodes = append(s.nodes, n)
		if err := n.open(descs); err != nil {
			s.fail("start node %d: %v", i, err)
			return
		}
	}
}

// open starts the node on its disk; descs bootstraps a fresh cluster.
func (n *node) open(descs []*storage.Descriptor) error {
	s := n.s
	log := s.opt.Logger.With("node", n.id)
	db, err := storage.Open(storage.Options{Dir: "data", FS: n.disk.fs, Logger: log, MemTableSize: 256 << 20})
	if err != nil {
		return err
	}
	// Small segments: rotation, checkpoints and segment deletion happen
	// in every run.
	rlog, err := raftstore.OpenLog(n.disk.fs, "data", logSegmentSize, log)
	if err != nil {
		db.Close()
		return err
	}
	n.db, n.rlog = db, rlog
	cfg := raftstore.Config{
		NodeID:       n.id,
		TickInterval: tickInterval,
		Apply:        n.apply,
		Logger:       log,
		Clock:        n.clk,
		// Short logs: followers that fall behind get snapshots.
		TruncateAfter: 256, TruncateKeep: 32,
		// Snapshots are staged on the simulated disk, and ingested from it.
		FS: n.disk.fs, SnapshotDir: "data/snapshots",
	}
	cfg.ReadLeases = s.opt.ReadLeases
	cfg.Metrics = s.metrics
	plantConfig(s.opt.Plant, &cfg)
	eng, err := raftstore.New(cfg, db, rlog, s.net.transport(n.id))
	if err != nil {
		n.closeDB()
		return err
	}
	for _, d := range descs {
		if d.ReplicaOn(n.id) == 0 {
			continue
		}
		if err := eng.AddReplica(d.Group, &raftstore.Bootstrap{Desc: d}); err != nil {
			n.closeDB()
			return err
		}
	}
	if err := eng.LoadAll(); err != nil {
		n.closeDB()
		return err
	}
	eng.StartDriven()
	n.eng, n.up, n.busy = eng, true, true
	n.flushedAt = ^uint64(0) // flush at the first tick
	n.inc++
	s.check.restarted(n)
	n.terms = 0
	n.scheduleTick(true)
	return nil
}

// apply evaluates a committed command with the real command evaluation,
// and shows it to the checker first.
func (n *node) apply(group uint64, w *raftstore.Writer, spec *command.Spec, args [][]byte, out []byte) ([]byte, error) {
	n.s.check.applied(n, group, w.Index(), args)
	if spec != nil {
		return kv.Exec(w, spec, args, out)
	}
	return kv.Apply(w, args, out)
}

func (n *node) scheduleTick(first bool) {
	inc := n.inc
	period := tickInterval
	if n.drift != 0 {
		period = time.Duration(float64(period) * (1 + float64(n.drift)/1e6))
	}
	if first { // a random phase: nodes do not tick in lockstep
		period = n.s.between(time.Millisecond, period)
	}
	n.s.at(period, "tick", n.id, 0, func() {
		if !n.up || n.inc != inc {
			return
		}
		n.clk.Set(epoch.Add(n.s.now))
		n.maybeFlush()
		n.eng.Tick()
		n.busy = true
		n.scheduleTick(false)
	})
}

// flushEvery: the WAL bytes after which a tick flushes the memtable.
const flushEvery = 24 << 10

// maybeFlush flushes the node's memtable, at a tick, once flushEvery WAL
// bytes were written since the last flush. Pebble must never rotate its
// memtable by itself: it decides that the memtable is full from its
// arena's use, which depends on the skiplist's random tower heights (an
// unseedable source), and a rotation syncs the old WAL — the unsynced
// writes before it would survive a crash in one run and not in the next.
// A memtable starts at 256 KiB; flushed this often, Pebble's worst-case
// reservation for the writes since the last flush stays well below that.
// A flush also exercises Pebble's flush and compaction paths.
//
// While a disk fault is in force a flush would meet it (a flush on a full
// disk is retried forever), so the fault expires first: the memtable must
// never fill while a fault waits (disk.go's calm).
func (n *node) maybeFlush() {
	in := n.db.Metrics().WAL.BytesIn
	if n.flushedAt != ^uint64(0) && in-n.flushedAt < flushEvery {
		return
	}
	n.disk.calm()
	if err := n.db.Flush(); err != nil {
		n.s.fail("flush on node %d: %v", n.id, err)
		return
	}
	n.s.fault("flush")
	n.flushedAt = in
}

// step runs the engine until it has no more work; false if it had none.
func (n *node) step() bool {
	if !n.up || !n.busy {
		return false
	}
	n.busy = false
	n.clk.Set(epoch.Add(n.s.now))
	for i := 0; ; i++ {
		more, err := n.eng.Step()
		if err != nil {
			n.fenced(err)
			return true
		}
		n.s.check.stepped(n)
		n.s.net.flush(n)
		n.crashAtVote()
		if !more || i > 1000 {
			break
		}
	}
	n.s.mixStatus(n)
	return true
}

// crashAtVote: right after a node moved to a new term (it voted, or
// campaigned) or took in a snapshot is when a lost write hurts most — it
// has just told others about it — so crashes are drawn there too, before
// any later write could sync it by the way.
func (n *node) crashAtVote() {
	s := n.s
	term := uint64(0)
	for _, st := range n.eng.Status() {
		term += st.Term
	}
	moved := term > n.terms
	n.terms = term
	snap := n.tookSnap
	n.tookSnap = false
	if !moved && !snap || s.healed || s.shape.CrashEvery == 0 || s.rng.Float64() >= 0.2 || !s.mayCrash() {
		return
	}
	kind := "crash-at-vote"
	if snap {
		kind = "crash-at-snapshot"
	}
	s.fault(kind)
	inc := n.inc
	s.at(0, kind, n.id, 0, func() {
		if n.up && n.inc == inc {
			n.crash(true, false)
			// Back fast: its vote is still wanted in this election.
			s.at(s.between(time.Millisecond, 100*time.Millisecond), "restart", n.id, 0, func() { n.restart() })
		}
	})
}

// fenced: the engine stopped itself (a disk fault the simulator armed,
// or a bug). An injected fault makes it a crash; anything else fails the
// run.
func (n *node) fenced(err error) {
	if n.disk.faulted() {
		n.s.fault("fence")
		n.crash(true, true)
		n.s.at(n.s.between(200*time.Millisecond, 2*time.Second), "restart", n.id, 0, func() { n.restart() })
		return
	}
	n.s.fail("node %d stopped: %v", n.id, err)
}

// crash is a power loss: the engine is abandoned mid-flight and the disk
// keeps only what was synced.
func (n *node) crash(torn, fenced bool) {
	if !n.up {
		return
	}
	n.up = false
	// Fenced by its raft log (a failed write or fsync there): Pebble is
	// sound. Otherwise a fence was Pebble's own failure.
	pebbleBroken := fenced && (n.rlog == nil || n.rlog.Err() == nil)
	n.disk.crash(n.db, torn && n.s.rng.Float64() < n.s.shape.TornTail, pebbleBroken)
	n.eng.Stop() // answers every waiter: their outcome is unknown
	n.closeDB()
	n.s.net.nodeDown(n.id)
}

func (n *node) restart() {
	if n.up {
		return
	}
	if err := n.open(nil); err != nil {
		n.s.fail("restart node %d: %v", n.id, err)
	}
}

func (n *node) closeDB() {
	if n.db != nil {
		_ = n.db.Close() // on a crashed disk: errors are expected
		n.db = nil
	}
	if n.rlog != nil {
		_ = n.rlog.Close()
		n.rlog = nil
	}
}

// logSegmentSize is the raft log's segment size in the simulator.
const logSegmentSize = 64 << 10

func (n *node) close() {
	if n.up {
		n.up = false
		n.eng.Stop()
		n.closeDB()
	}
}

func (n *node) String() string { return fmt.Sprintf("node %d", n.id) }

// mixStatus puts every replica's raft position into the trace.
func (s *Sim) mixStatus(n *node) {
	for _, st := range n.eng.Status() {
		s.mix(n.id, st.Group, st.Term, st.CommitIndex, st.LeaderNode, st.AppliedIndex)
	}
}
