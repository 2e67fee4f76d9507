package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
)

// setWorkload: one writer per partition adds unique elements (one key per
// element, hash-tagged into that partition). At the end every acknowledged
// element must be present with its value (nothing acknowledged was lost or
// changed), and every element whose write Kintsu answered "nothing was
// applied" (CLUSTERDOWN, TRYAGAIN) must be absent (that answer was true),
// as must the next elements no writer ever tried (nothing is invented).
// The writers double as the recovery probes of every partition.
type setWorkload struct {
	partitions int
	mu         sync.Mutex
	acked      map[string]string // guarded by mu
	refused    map[string]string // guarded by mu: answered "not applied"
	next       map[string]int    // guarded by mu: tag -> first index its writer never tried
	unknown    int               // guarded by mu
}

func tagFor(p, partitions int) string {
	for i := 0; ; i++ {
		tag := fmt.Sprint("set", p, "-", i)
		if ring.PartitionOf(ring.Slot([]byte(tag)), partitions) == p {
			return "{" + tag + "}"
		}
	}
}

func (w *setWorkload) run(ctx context.Context, cs *clients, rec *recorder, seed int64, wg *sync.WaitGroup) {
	w.acked, w.refused, w.next = map[string]string{}, map[string]string{}, map[string]int{}
	for p := 0; p < w.partitions; p++ {
		tag := tagFor(p, w.partitions)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(1000+p)))
			var avoid uint64
			for i := 0; ctx.Err() == nil; i++ {
				key, val := fmt.Sprintf("%s:%d", tag, i), fmt.Sprint(i)
				octx, cancel := context.WithTimeout(context.Background(), probeTimeout)
				begin := time.Now()
				node, cl := cs.pick(rng, avoid)
				err := cl.Set(octx, key, val, 0).Err()
				cancel()
				avoid = 0
				if err != nil {
					avoid = node
				}
				rec.op(begin, err == nil, p)
				w.mu.Lock()
				w.next[tag] = i + 1
				switch {
				case err == nil:
					w.acked[key] = val
				case notApplied(err):
					w.refused[key] = val
				default:
					w.unknown++
				}
				w.mu.Unlock()
				if err != nil {
					backoffAfterError(ctx)
				}
			}
		}()
	}
}

// check reads every acknowledged and every refused element back.
func (w *setWorkload) check(ctx context.Context, cs *clients, seed int64) ([]Anomaly, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	var lost, phantom []string
	err := readBack(ctx, cs, rng, w.acked, func(key string, got any) {
		want := w.acked[key]
		switch got := got.(type) {
		case nil:
			lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now missing", key, want))
		case string:
			if got != want {
				lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now %q", key, want, got))
			}
		default:
			lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now %v", key, want, got))
		}
	})
	if err == nil {
		err = readBack(ctx, cs, rng, w.refused, func(key string, got any) {
			if got != nil {
				phantom = append(phantom, fmt.Sprintf("SET %s %s answered as not applied, now %v", key, w.refused[key], got))
			}
		})
	}
	if err == nil {
		untried := map[string]string{}
		for tag, i := range w.next {
			for j := i; j < i+5; j++ {
				untried[fmt.Sprintf("%s:%d", tag, j)] = ""
			}
		}
		err = readBack(ctx, cs, rng, untried, func(key string, got any) {
			if got != nil {
				phantom = append(phantom, fmt.Sprintf("%s was never written, now %v", key, got))
			}
		})
	}
	if err != nil {
		return nil, 0, err
	}
	var out []Anomaly
	if len(lost) > 0 {
		out = append(out, Anomaly{Workload: "set", Kind: "lost-write", Ops: firstSorted(lost, 20),
			Description: fmt.Sprintf("%d of %d acknowledged writes are missing or changed", len(lost), len(w.acked))})
	}
	if len(phantom) > 0 {
		out = append(out, Anomaly{Workload: "set", Kind: "phantom-write", Ops: firstSorted(phantom, 20),
			Description: fmt.Sprintf("%d elements exist that were never written or were answered \"nothing was applied\" (%d such answers)", len(phantom), len(w.refused))})
	}
	return out, len(lost), nil
}

// readBack reads keys with MGET, in batches of keys that share a hash tag
// (one partition), and hands each value (nil when absent) to seen.
func readBack(ctx context.Context, cs *clients, rng *rand.Rand, keys map[string]string, seen func(key string, got any)) error {
	byTag := map[string][]string{}
	for key := range keys {
		tag := key[:strings.IndexByte(key, '}')+1]
		byTag[tag] = append(byTag[tag], key)
	}
	const batch = 500
	for _, keys := range byTag {
		for start := 0; start < len(keys); start += batch {
			chunk := keys[start:min(start+batch, len(keys))]
			var vals []any
			var err error
			for try := 0; try < 5; try++ { // reads are idempotent: retry through faults' aftermath
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				_, cl := cs.pick(rng, 0)
				vals, err = cl.MGet(octx, chunk...).Result()
				cancel()
				if err == nil {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("reading back %d keys: %w", len(chunk), err)
			}
			for i, key := range chunk {
				seen(key, vals[i])
			}
		}
	}
	return nil
}

func firstSorted(xs []string, n int) []string {
	slices.Sort(xs)
	return xs[:min(len(xs), n)]
}
