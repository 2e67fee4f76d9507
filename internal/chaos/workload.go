package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/check"
	"github.com/kintsu/kintsu/internal/launcher"
	"github.com/kintsu/kintsu/internal/ring"
)

// opTimeout bounds one client operation (above the server's 5s deadline
// would only hide hangs; below it keeps the workload moving during faults).
// probeTimeout is shorter: the set writers measure recovery, and a writer
// stuck on a paused node would measure its own timeout instead.
const (
	opTimeout    = 3 * time.Second
	probeTimeout = time.Second
)

// clients holds one go-redis client per node; operations pick a running
// node at random, as a Redis client behind a load balancer would.
type clients struct {
	c  *launcher.Cluster
	by map[uint64]*redis.Client
	id []uint64
}

// quietLogger drops go-redis's own logging (pool dial failures are
// expected while nodes are down; the run reports what matters).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func newClients(c *launcher.Cluster) *clients {
	redis.SetLogger(quietLogger{})
	cs := &clients{c: c, by: map[uint64]*redis.Client{}}
	for _, n := range c.Nodes() {
		cs.by[n.ID] = redis.NewClient(&redis.Options{
			Addr: n.RESPAddr, MaxRetries: -1, DialTimeout: time.Second,
			ReadTimeout: opTimeout, WriteTimeout: opTimeout, PoolSize: 64,
			// Honour each operation's context deadline (go-redis ignores it
			// otherwise), so a probe gives up on a paused node in time.
			ContextTimeoutEnabled: true,
		})
		cs.id = append(cs.id, n.ID)
	}
	return cs
}

// pick returns a random running node's client, avoiding the node that
// last failed this caller (avoid; 0 for none), as a client with a list of
// endpoints would move on from one that timed out.
func (cs *clients) pick(rng *rand.Rand, avoid uint64) (uint64, *redis.Client) {
	for range 2 * len(cs.id) {
		id := cs.id[rng.IntN(len(cs.id))]
		if id != avoid && cs.c.Running(id) {
			return id, cs.by[id]
		}
	}
	id := cs.id[rng.IntN(len(cs.id))]
	return id, cs.by[id]
}

func (cs *clients) close() {
	for _, c := range cs.by {
		c.Close()
	}
}

// notApplied tells errors that guarantee a write did not happen (Kintsu
// says so) from those that leave its outcome unknown.
func notApplied(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "CLUSTERDOWN") || strings.HasPrefix(s, "TRYAGAIN")
}

// registerWorkload: clients read, write and compare-and-set (SET ... IFEQ)
// unique values on a few hot keys; the history is checked per key for
// linearizability. Keys are renewed every keyEpoch so each key's history
// stays short enough for the checker (its search grows steeply with
// history length), as Jepsen does with independent keys.
type registerWorkload struct {
	hist  *check.History
	keys  []string
	start time.Time
}

const keyEpoch = 15 * time.Second

// key returns hot key i for the current epoch.
func (w *registerWorkload) key(i int) string {
	return fmt.Sprintf("%s-e%d", w.keys[i], int64(time.Since(w.start)/keyEpoch))
}

func (w *registerWorkload) run(ctx context.Context, cs *clients, rec *recorder, seed int64, n int, wg *sync.WaitGroup) {
	for id := 0; id < n; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(id)+1))
			// last value this client saw or wrote per key: what its
			// compare-and-sets expect, so many of them can succeed.
			seen := map[string]string{}
			var avoid uint64
			for i := 0; ctx.Err() == nil; i++ {
				node, cl := cs.pick(rng, avoid)
				avoid = 0
				key := w.key(rng.IntN(len(w.keys)))
				begin := time.Now()
				err := w.op(cl, rng, id, key, fmt.Sprintf("%d-%d", id, i), seen)
				rec.op(begin, err == nil, -1)
				if err != nil {
					avoid = node
					backoffAfterError(ctx)
				}
			}
		}()
	}
}

// op performs one random operation and records it in the history.
func (w *registerWorkload) op(cl *redis.Client, rng *rand.Rand, id int, key, val string, seen map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	call := w.hist.Now()
	var in check.RegisterInput
	var out check.RegisterOutput
	var err error
	switch r := rng.IntN(10); {
	case r < 4:
		in = check.RegisterInput{Kind: check.Read, Key: key}
		out.Value, err = cl.Get(ctx, key).Result()
		out.Exists = err == nil
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		if err == nil && out.Exists {
			seen[key] = out.Value
		}
	case r < 7:
		in = check.RegisterInput{Kind: check.Write, Key: key, Value: val}
		if err = cl.Set(ctx, key, val, 0).Err(); err == nil {
			seen[key] = val
		}
	default:
		in = check.RegisterInput{Kind: check.CAS, Key: key, Value: val, Expect: seen[key]}
		err = cl.Do(ctx, "SET", key, val, "IFEQ", in.Expect).Err()
		out.Swapped = err == nil
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		if out.Swapped {
			seen[key] = val
		}
	}
	switch {
	case err == nil:
		w.hist.Ok(id, in, out, call, w.hist.Now())
	case in.Kind != check.Read && !notApplied(err):
		w.hist.Unknown(id, in, call) // a failed read changed nothing
	}
	return err
}

// backoffAfterError keeps a client from spinning on instant failures
// (connection refused while every node is down) and drowning the run's
// real activity in its counts.
func backoffAfterError(ctx context.Context) {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (w *registerWorkload) check() []Anomaly {
	switch check.CheckRegisters(w.hist, 2*time.Minute) {
	case "Illegal":
		return []Anomaly{{Workload: "register", Kind: "not-linearizable",
			Description: fmt.Sprintf("the history of %d operations on %v is not linearizable", w.hist.Len(), w.keys)}}
	case "Unknown":
		return []Anomaly{{Workload: "register", Kind: "check-timeout",
			Description: "the linearizability check did not finish in time; the run proves nothing"}}
	}
	return nil
}

// setWorkload: one writer per partition adds unique elements (one key per
// element, hash-tagged into that partition). At the end every acknowledged
// element must be present with its value, so nothing acknowledged was
// lost. The writers double as the recovery probes of every partition.
type setWorkload struct {
	partitions int
	mu         sync.Mutex
	acked      map[string]string // guarded by mu
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
	w.acked = map[string]string{}
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
				if err == nil {
					w.acked[key] = val
				} else if !notApplied(err) {
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

// check reads every acknowledged element back and reports the lost ones.
// Keys of one writer share a hash tag, so they are read with MGET in
// batches.
func (w *setWorkload) check(ctx context.Context, cs *clients, seed int64) ([]Anomaly, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	byTag := map[string][]string{}
	for key := range w.acked {
		tag := key[:strings.IndexByte(key, '}')+1]
		byTag[tag] = append(byTag[tag], key)
	}
	const batch = 500
	var lost []string
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
				return nil, 0, fmt.Errorf("reading back %d keys: %w", len(chunk), err)
			}
			for i, key := range chunk {
				want := w.acked[key]
				switch got := vals[i].(type) {
				case nil:
					lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now missing", key, want))
				case string:
					if got != want {
						lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now %q", key, want, got))
					}
				default:
					lost = append(lost, fmt.Sprintf("SET %s %s acknowledged, now %v", key, want, got))
				}
			}
		}
	}
	if len(lost) == 0 {
		return nil, 0, nil
	}
	slices.Sort(lost)
	shown := lost[:min(len(lost), 20)]
	return []Anomaly{{Workload: "set", Kind: "lost-write",
		Description: fmt.Sprintf("%d of %d acknowledged writes are missing or changed", len(lost), len(w.acked)), Ops: shown}}, len(lost), nil
}
