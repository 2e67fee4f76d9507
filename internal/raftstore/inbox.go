package raftstore

import (
	"slices"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/storage"
)

type proposal struct {
	req *Request
	key waitKey
}

// readReq is one read waiting for its barrier; done is called exactly
// once, on the loop (or by whoever fails the engine), and must not block.
type readReq struct {
	done func(error)
}

type incomingSnap struct {
	env    Envelope
	data   *stagedSnap // the snapshot's key-value pairs, staged on disk
	keys   int64       // user keys in data
	tables txnTables   // the transaction tables in data
	// dedupe is the group's deduplication state as carried by the data.
	dedupe  map[uint64]*dedupeState
	desc    *storage.Descriptor // the group's descriptor at the snapshot's index
	descRaw []byte              // desc, encoded
	bytes   int64               // the pairs' size
	took    time.Duration       // from the first byte to the last
}

type snapStatus struct {
	group, to uint64
	failed    bool
}

// inbox collects work for the loop from other goroutines. The loop swaps
// it out whole each cycle, so producers hold the lock only to append.
type inbox struct {
	mu          sync.Mutex
	closed      bool
	tick        bool
	props       map[uint64][]*proposal
	reads       map[uint64][]*readReq
	msgs        []Envelope
	snaps       []incomingSnap
	snapStatus  []snapStatus
	unreachable []uint64
	fns         []func()
}

type inboxBatch struct {
	tick        bool
	props       map[uint64][]*proposal
	reads       map[uint64][]*readReq
	msgs        []Envelope
	snaps       []incomingSnap
	snapStatus  []snapStatus
	unreachable []uint64
	fns         []func()
}

func (in *inbox) reset() {
	in.props = map[uint64][]*proposal{}
	in.reads = map[uint64][]*readReq{}
	in.msgs, in.snaps, in.snapStatus, in.unreachable, in.fns = nil, nil, nil, nil, nil
	in.tick = false
}

func (in *inbox) take() inboxBatch {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := inboxBatch{in.tick, in.props, in.reads, in.msgs, in.snaps, in.snapStatus, in.unreachable, in.fns}
	in.reset()
	return b
}

func (in *inbox) addProposals(group uint64, ps []*proposal) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.props[group] = append(in.props[group], ps...)
	return true
}

func (in *inbox) addRead(group uint64, r *readReq) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.reads[group] = append(in.reads[group], r)
	return true
}

func (in *inbox) addMsgs(msgs []Envelope) {
	in.mu.Lock()
	if !in.closed {
		in.msgs = append(in.msgs, msgs...)
	}
	in.mu.Unlock()
}

func (in *inbox) addSnap(s incomingSnap) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.snaps = append(in.snaps, s)
	return true
}

func (in *inbox) addSnapStatus(s snapStatus) {
	in.mu.Lock()
	in.snapStatus = append(in.snapStatus, s)
	in.mu.Unlock()
}

func (in *inbox) addUnreachable(node uint64) {
	in.mu.Lock()
	in.unreachable = append(in.unreachable, node)
	in.mu.Unlock()
}

func (in *inbox) addFunc(fn func()) {
	in.mu.Lock()
	in.fns = append(in.fns, fn)
	in.mu.Unlock()
}

func (in *inbox) setTick() {
	in.mu.Lock()
	in.tick = true
	in.mu.Unlock()
}

// failAll closes the inbox and answers everything still queued.
func (in *inbox) failAll(err error) {
	in.mu.Lock()
	in.closed = true
	b := inboxBatch{props: in.props, reads: in.reads, snaps: in.snaps}
	in.reset()
	in.mu.Unlock()
	for _, g := range sortedKeys(b.reads) {
		for _, r := range b.reads[g] {
			r.done(err)
		}
	}
	for _, s := range b.snaps {
		s.data.Close()
	}
	// Queued proposals' waiters were answered by failAllWaiters.
}

// sortedKeys returns m's keys in increasing order: what the loop does for
// many groups at once it does in group order, never in the map's random
// order, so that the same inputs give the same sends, proposals and
// answers (a simulator replays a run from its seed; lint_test.go).
func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
