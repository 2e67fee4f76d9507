package control

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/api"
)

// Health. A node judges itself from facts it already holds — no network
// call, no lock held across I/O — so /healthz and /readyz are cheap and
// answer even when peers do not:
//
//   - Live: the engine has no fatal error and its loop completed a cycle
//     within StallAfter. A loop stuck in a storage call (a full disk)
//     returns no error, so progress is watched, not only errors.
//   - Ready: live, not removed from the cluster, and every partition has
//     a leader that heard from a quorum recently, since any client may
//     send any key to any node and the node forwards it.
//
// What "a leader with a quorum" means, per partition:
//
//   - This node hosts a voting replica that knows a leader. Raft's
//     CheckQuorum makes a leader step down after an election timeout
//     without hearing from a quorum, and PreVote makes a follower drop a
//     leader it has not heard from for an election timeout, so a known
//     leader had a quorum within about two election timeouts. A learner
//     never campaigns and so never forgets its leader: its knowledge does
//     not count.
//   - Otherwise, a node named the leader recently: a peer's answer to
//     "who leads?" (which that peer's replica knows by the rule above) or
//     a request forwarded to that leader that succeeded, within
//     QuorumWindow. A cached leader hint without such a recent answer is
//     not evidence: it outlives the leader.
//
// Invariant: Judge is a pure function of its facts, so every verdict is a
// table test, and a verdict names only partition ids and durations.

// HealthFacts are what a node's health is judged from.
type HealthFacts struct {
	Now time.Time
	// EngineErr is the fatal error that stopped the engine, if any.
	EngineErr error
	// LastCycle is when the engine loop last completed a cycle; zero if
	// it has not run yet.
	LastCycle time.Time
	// StallAfter is how long the loop may go without a cycle before the
	// node is neither live nor ready.
	StallAfter time.Duration
	// DiskFull, when not empty, says why the node refuses writes (its
	// data dir is below its disk reserve).
	DiskFull string
	// Removed: the cluster removed this node for good.
	Removed bool
	// Stopping: the node is shutting down (handing its leaderships away,
	// then closing); it still answers, but a balancer should send no one.
	Stopping bool
	Parts    []PartFacts
	// Rebuilding lists the partitions whose replica here was quarantined
	// (its data damaged) and is being rebuilt from its peers. The node
	// still serves them (it forwards to their leaders), so they do not
	// make it unready; the verdict names them.
	Rebuilding []int
	// QuorumWindow is how old a confirmation of a partition's leader may
	// be and still count.
	QuorumWindow time.Duration
}

// PartFacts is what this node knows of one partition's leadership.
type PartFacts struct {
	ID int
	// LocalLeader is the leader this node's voting replica of the
	// partition knows; 0 if it knows none, is a learner, or there is no
	// replica here.
	LocalLeader uint64
	// Confirmed is the node last confirmed to lead the partition, at
	// ConfirmedAt (by a peer's answer or a forwarded request that
	// succeeded there); 0 if none ever was.
	Confirmed   uint64
	ConfirmedAt time.Time
}

// maxNamed bounds the partitions a verdict names; the rest are counted.
const maxNamed = 10

// Judge turns facts into a verdict.
func Judge(f HealthFacts) api.Health {
	var h api.Health
	h.Rebuilding = f.Rebuilding
	if f.EngineErr != nil {
		h.NotLive = append(h.NotLive, "engine stopped on a fatal error (see the node's log)")
	}
	if f.LastCycle.IsZero() {
		h.NotReady = append(h.NotReady, "engine loop not started")
	} else if age := f.Now.Sub(f.LastCycle); f.EngineErr == nil && age > f.StallAfter {
		h.NotLive = append(h.NotLive, "engine loop stalled for "+roundAge(age))
	}
	h.NotReady = slices.Concat(h.NotLive, h.NotReady)
	if f.DiskFull != "" {
		h.NotReady = append(h.NotReady, f.DiskFull)
	}
	if f.Stopping {
		h.NotReady = append(h.NotReady, "node stopping: handing its leaderships away")
	}
	if f.Removed {
		h.Removed = true
		h.NotReady = append(h.NotReady, "node removed from the cluster")
		return h
	}
	var lost []int
	for _, p := range f.Parts {
		if p.LocalLeader != 0 {
			continue
		}
		if p.Confirmed != 0 && f.Now.Sub(p.ConfirmedAt) <= f.QuorumWindow {
			continue
		}
		lost = append(lost, p.ID)
	}
	if len(lost) > 0 {
		h.Lost = lost
		h.NotReady = append(h.NotReady, lostPartitions(lost))
	}
	return h
}

// lostPartitions words the partitions without a leader with a quorum.
func lostPartitions(ids []int) string {
	if len(ids) == 1 {
		return fmt.Sprintf("partition %d has no leader with a quorum", ids[0])
	}
	named := make([]string, 0, maxNamed)
	for _, id := range ids[:min(len(ids), maxNamed)] {
		named = append(named, fmt.Sprint(id))
	}
	s := "partitions " + strings.Join(named, ", ")
	if more := len(ids) - len(named); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s + " have no leader with a quorum"
}

// roundAge words a stall: whole seconds, or tenths below ten seconds.
func roundAge(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
