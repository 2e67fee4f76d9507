package txn

import (
	"context"
	"errors"
	"time"
)

// Sweeper finds what coordinators left behind in a partition: parts whose
// transaction was never resolved here, records never finished. It acts
// only on what it has seen for at least its age, so live coordinators
// finish their own transactions first; acting early would still be safe
// (the resolver only aborts expired or decided transactions).
type Sweeper struct {
	r   *Resolver
	age time.Duration
	// first sighting of each part and record, by partition
	seen map[uint64]map[string]time.Time
}

// maxSweep bounds the work of one sweep of one partition.
const maxSweep = 1000

// NewSweeper returns a sweeper acting through r.
func NewSweeper(r *Resolver, age time.Duration) *Sweeper {
	return &Sweeper{r: r, age: age, seen: map[uint64]map[string]time.Time{}}
}

// Scan iterates one of a partition's transaction tables (Table*),
// stopping when fn returns false.
type Scan func(table byte, fn func(k, v []byte) bool) error

// Sweep looks through group's records and parts once. It returns the
// error of a table it could not read (what it found before still counts).
func (s *Sweeper) Sweep(ctx context.Context, group uint64, scan Scan) error {
	now := s.r.cfg.Now()
	seen := s.seen[group]
	if seen == nil {
		seen = map[string]time.Time{}
		s.seen[group] = seen
	}
	still := map[string]time.Time{}
	old := func(kind byte, k []byte) bool {
		key := string(kind) + string(k)
		first, ok := seen[key]
		if !ok {
			first = now
		}
		still[key] = first
		return now.Sub(first) >= s.age
	}
	type recordFound struct {
		id  ID
		rec Record
	}
	var records []recordFound
	var parts []Ref
	errRecords := scan(TableRecords, func(k, v []byte) bool {
		rec, err := decodeRecord(v)
		if err != nil || len(k) != len(ID{}) {
			return true
		}
		if old('r', k) {
			var id ID
			copy(id[:], k)
			records = append(records, recordFound{id, rec})
		}
		return len(records) < maxSweep
	})
	errParts := scan(TableParts, func(k, v []byte) bool {
		pt, err := decodePart(v)
		if err != nil {
			return true
		}
		if old('p', k) {
			parts = append(parts, pt.ref)
		}
		return len(parts) < maxSweep
	})
	s.seen[group] = still
	for _, f := range records {
		if ctx.Err() != nil {
			break
		}
		s.r.SweepRecord(ctx, f.id, group, f.rec)
	}
	for _, ref := range parts {
		if ctx.Err() != nil {
			break
		}
		s.r.Push(ctx, group, ref, false)
	}
	return errors.Join(errRecords, errParts)
}

// Forget drops what the sweeper remembers of partitions it no longer
// sweeps (this node stopped leading them).
func (s *Sweeper) Forget(keep []uint64) {
	k := map[uint64]bool{}
	for _, g := range keep {
		k[g] = true
	}
	for g := range s.seen {
		if !k[g] {
			delete(s.seen, g)
		}
	}
}
