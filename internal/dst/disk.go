package dst

import (
	"errors"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kintsu/kintsu/internal/dst/simfs"
	"github.com/kintsu/kintsu/internal/raftstore"
)

var errDiskFault = errors.New("injected disk fault")

// disk is a node's simulated disk (simfs). It outlives the node's
// crashes: a crash replaces fs by what a power loss leaves of it. Faults
// are armed only between engine cycles, and only on WAL syncs, which
// happen in step with the engine (simfs's doc says why).
type disk struct {
	s     *Sim
	id    uint64
	fs    *simfs.FS
	armed bool // a fault was armed since the last crash
	full  bool // the disk guard's view: almost full
}

func newDisk(s *Sim, id uint64) *disk {
	d := &disk{s: s, id: id, fs: simfs.New(0)}
	if s.opt.Plant == PlantLazyFsync {
		d.fs.LazySync(true)
	}
	return d
}

// crash is a power loss: only what was synced survives, and with torn
// set, a seeded prefix of the WAL bytes written since the last sync, now
// and then with a few of them corrupted. Before a torn crash every
// committed byte is pushed into the WAL file (unsynced), so that what the
// tear keeps does not depend on when Pebble's WAL flusher ran.
// A node whose Pebble failed a write crashes without the drain: its DB
// is broken, and the failed (synced) commit had already flushed every
// committed byte. A node fenced by its raft log's failure is drained
// like any other: its Pebble is sound, and its WAL holds unsynced apply
// batches its flusher may not have written yet.
func (d *disk) crash(db *pebble.DB, torn, pebbleBroken bool) {
	o := simfs.CrashOptions{}
	if torn && (pebbleBroken || d.drain(db)) {
		o = simfs.CrashOptions{Rand: d.s.rng, TornProb: 1, CorruptProb: 0.3}
		d.s.fault("torn-tail")
	}
	d.fs = d.fs.Crash(o)
	d.armed = false
}

// drain pushes every committed byte into the WAL file without syncing it.
// On a full disk the write fails, and Pebble panics (its fatal commit
// error): then nothing is drained, and the node's DB is broken — its
// engine fences at its next commit, as it would have anyway.
func (d *disk) drain(db *pebble.DB) (ok bool) {
	if db == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return d.fs.Drain(func() error { return db.LogData(nil, pebble.Sync) }) == nil
}

// Pebble must never rotate its WAL while a fault is in force: the
// rotation closes the old WAL, and a failed close there is a panic taken
// with Pebble's lock released, which no recover survives — it would end
// the whole simulation (seed 1765: a node cut off with a failing sync
// armed took in 6,148 entries at once when its link came back). Pebble
// rotates when a batch does not fit its memtable's room, so a fault in
// force expires (calm) before the node takes in a snapshot or many
// entries at once, or before a flush is due; and no fault is armed on a
// node that took such input within the last second, while its apply may
// still write a large batch. Faults thus meet the engine's ordinary
// commits only, as the fault model wants.
const (
	bigInput      = 64 // entries delivered at once that count as a big input
	bigInputQuiet = time.Second
)

// isRaftLog selects the raft log's segments: the disk fills up for them
// only. Their writes happen in step with the engine (a commit writes its
// record itself), while Pebble's WAL now takes only unsynced apply
// batches, which its flusher goroutine writes at times no simulation
// replays: a write failing there would surface at a commit or a WAL
// rotation that depends on that goroutine's timing (seed 326 of the first
// run after the raft log left Pebble: a rotation at a memtable flush met
// the failure, a panic no recover survives). On a real node such a
// failure stops the node at its next commit; what the simulator checks
// there is the raft log's durability, which these faults reach.
func isRaftLog(path string) bool {
	return strings.Contains(path, raftstore.LogDir+"/")
}

// calm expires a fault in force, if any.
func (d *disk) calm() {
	if d.fs.Faulty() {
		d.fs.FailNextSyncs(0)
		d.fs.SetFull(false)
		d.s.fault("disk-expired")
	}
}

func (n *node) tookBigInput() {
	n.bigInputAt = n.s.now
	n.disk.calm()
}

// faulted: the node's engine stopped on a fault the simulator armed.
func (d *disk) faulted() bool { return d.armed }

// arm draws one disk fault for a node: a failing fsync of the WAL, a disk
// that fills up (writes fail with ENOSPC), or the disk guard reporting
// the disk almost full for a while (the engine refuses writes with
// NOSPACE and sheds its leaderships, then recovers).
func (d *disk) arm(n *node) {
	s := d.s
	if s.now-n.bigInputAt < bigInputQuiet {
		return
	}
	switch s.rng.IntN(3) {
	case 0:
		s.fault("fsync-error")
		d.armed = true
		d.fs.FailNextSyncs(1)
	case 1:
		s.fault("enospc")
		d.armed = true
		d.drain(n.db) // so the writes that fail do not depend on the WAL flusher's timing
		d.fs.SetFullOf(isRaftLog)
		inc := n.inc
		s.at(s.between(100*time.Millisecond, time.Second), "space-back", n.id, 0, func() {
			if n.inc == inc {
				d.fs.SetFull(false)
			}
		})
	default:
		s.fault("nospace")
		n.eng.SetDiskFull(true, 1<<20, 1<<30)
		n.busy = true
		inc := n.inc
		s.at(s.between(500*time.Millisecond, 3*time.Second), "space-back", n.id, 0, func() {
			if n.up && n.inc == inc {
				n.eng.SetDiskFull(false, 0, 0)
				n.busy = true
			}
		})
	}
}

// disarm clears whatever is armed (the heal).
func (d *disk) disarm(n *node) {
	d.fs.FailNextSyncs(0)
	d.fs.SetFull(false)
	if n.up {
		n.eng.SetDiskFull(false, 0, 0)
		n.busy = true
	}
}

// lazySync is the planted bug's other half: the disk syncs by itself
// every second, as an OS writing back its page cache would (Linux waits
// up to 30 s).
func (s *Sim) lazySync() {
	s.at(time.Second, "lazy-sync", 0, 0, func() {
		for _, n := range s.nodes {
			if n.up {
				n.disk.drain(n.db)
			}
			n.disk.fs.SyncAll()
		}
		s.lazySync()
	})
}
