package txn

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/resp"
)

// Resolver gets rid of locks whose transaction is decided, or whose
// coordinator is gone. Readers and writers that meet a lock, coordinators
// that meet a conflict, and the sweeper all go through it.
type Resolver struct {
	cfg *Config
	cl  Cluster

	mu   sync.Mutex
	seen map[ID]sighting // guarded by mu
}

// sighting is the first time this resolver saw a pending record with a
// given heartbeat. Expiry is measured on this node's clock from there, so
// clock offsets between nodes do not matter.
type sighting struct {
	hb uint64
	at time.Time
}

// maxSightings bounds the resolver's memory; beyond it the oldest are
// forgotten (which only delays an abort).
const maxSightings = 100000

// NewResolver returns a resolver over cl.
func NewResolver(cfg Config, cl Cluster) *Resolver {
	cfg.ensureDefaults()
	return &Resolver{cfg: &cfg, cl: cl, seen: map[ID]sighting{}}
}

// ReadRecord reads a transaction's record.
func (r *Resolver) ReadRecord(ctx context.Context, h Ref) (Record, error) {
	reply, err := r.cl.Read(ctx, h.Group, recordArgs(h.ID))
	if err != nil {
		return Record{}, err
	}
	v, _, perr := resp.ParseValue(reply)
	switch {
	case perr != nil || v.Kind != '$':
		return Record{}, ErrUnknown
	case v.Null:
		return Record{Status: Missing}, nil
	}
	return decodeRecord(v.Str)
}

// expired notes hb as seen now and reports whether this resolver has seen
// the same heartbeat for at least the expiry.
func (r *Resolver) expired(id ID, hb uint64) bool {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.seen[id]
	if !ok || s.hb != hb {
		if len(r.seen) >= maxSightings {
			for k := range r.seen { // any one: only delays an abort
				delete(r.seen, k)
				break
			}
		}
		r.seen[id] = sighting{hb: hb, at: now}
		return false
	}
	return now.Sub(s.at) >= r.cfg.Expiry
}

func (r *Resolver) forget(id ID) {
	r.mu.Lock()
	delete(r.seen, id)
	r.mu.Unlock()
}

// Decide returns h's final status if it has one, or makes one: a pending
// record is aborted when wound is set (an older transaction wins) or when
// its heartbeat has stood still for the expiry. Pending means the
// transaction is alive: the caller backs off and asks again.
func (r *Resolver) Decide(ctx context.Context, h Ref, wound bool) (Status, error) {
	rec, err := r.ReadRecord(ctx, h)
	if err != nil {
		return 0, err
	}
	if rec.Status != Pending {
		r.forget(h.ID)
		return rec.Status, nil
	}
	if !wound && !r.expired(h.ID, rec.Heartbeat) {
		return Pending, nil
	}
	reply, err := r.cl.Write(ctx, h.Group, abortArgs(h.ID, rec.Heartbeat, wound))
	if err != nil {
		return 0, err
	}
	st, ok := parseStatus(reply)
	if !ok {
		return 0, ErrUnknown
	}
	if st != Pending {
		r.forget(h.ID)
	}
	return st, nil
}

// Push tries once to release h's locks in group: it decides h (see Decide)
// and resolves its part there. It reports whether the part is resolved;
// false means h is alive (or unreachable) and the caller should back off.
func (r *Resolver) Push(ctx context.Context, group uint64, h Ref, wound bool) bool {
	st, err := r.Decide(ctx, h, wound)
	if err != nil || st == Pending {
		return false
	}
	_, err = r.cl.Write(ctx, group, resolveArgs(h.ID, st))
	return err == nil
}

// Finish completes a decided transaction: resolves its part in every
// participant, then deletes its record. Only when every part is resolved
// is the record deleted, so a lock can never outlive its record unseen.
func (r *Resolver) Finish(ctx context.Context, id ID, recGroup uint64, rec Record) bool {
	if rec.Status != Committed && rec.Status != Aborted {
		return false
	}
	// In parallel: each part's locks are held until its resolution lands,
	// and others may be waiting for them.
	failed := make([]bool, len(rec.Participants))
	inParallel(r.cfg.Sequential, len(rec.Participants), func(i int) {
		_, err := r.cl.Write(ctx, rec.Participants[i], resolveArgs(id, rec.Status))
		failed[i] = err != nil
	})
	if slices.Contains(failed, true) {
		return false
	}
	reply, err := r.cl.Write(ctx, recGroup, gcArgs(id))
	return err == nil && string(reply) == "+OK\r\n"
}

// SweepRecord handles a record found by a sweep of its partition: a
// decided one is finished, a pending one whose heartbeat expired is
// aborted and finished. It reports whether the record is gone.
//
// The sweep read the record from local state, which may show a decision
// that is not acknowledged yet (a backup's cut holds its answer back), so
// the record is read again, linearizably, before anything is done with it:
// resolving another partition on an unacknowledged decision could put the
// transaction's effects on one side of the cut and its decision on the
// other.
func (r *Resolver) SweepRecord(ctx context.Context, id ID, group uint64, rec Record) bool {
	cur, err := r.ReadRecord(ctx, Ref{ID: id, Group: group, Priority: rec.Priority})
	if err != nil {
		return false
	}
	if cur.Status == Missing {
		return true
	}
	rec = cur
	if rec.Status == Pending {
		st, err := r.Decide(ctx, Ref{ID: id, Group: group, Priority: rec.Priority}, false)
		if err != nil || st == Pending {
			return false
		}
		rec.Status = st
		if st == Missing {
			return true
		}
	}
	return r.Finish(ctx, id, group, rec)
}
