package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/check"
	"github.com/kintsu/kintsu/internal/launcher"
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
// node at random, as a Redis client behind a load balancer would. Nodes
// added during the run (the replace nemesis) get a client when first
// picked.
type clients struct {
	c  *launcher.Cluster
	mu sync.Mutex
	by map[uint64]*redis.Client // guarded by mu
}

// quietLogger drops go-redis's own logging (pool dial failures are
// expected while nodes are down; the run reports what matters).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func newClients(c *launcher.Cluster) *clients {
	redis.SetLogger(quietLogger{})
	return &clients{c: c, by: map[uint64]*redis.Client{}}
}

// client returns node n's client, creating it on first use.
func (cs *clients) client(n launcher.NodeInfo) *redis.Client {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cl := cs.by[n.ID]
	if cl == nil {
		cl = redis.NewClient(&redis.Options{
			Addr: n.RESPAddr, MaxRetries: -1, DialTimeout: time.Second,
			ReadTimeout: opTimeout, WriteTimeout: opTimeout, PoolSize: 64,
			// Honour each operation's context deadline (go-redis ignores it
			// otherwise), so a probe gives up on a paused node in time.
			ContextTimeoutEnabled: true,
			TLSConfig:             clientTLS(), // nil: plaintext
		})
		cs.by[n.ID] = cl
	}
	return cl
}

// pick returns a random running node's client, avoiding the node that
// last failed this caller (avoid; 0 for none), as a client with a list of
// endpoints would move on from one that timed out.
func (cs *clients) pick(rng *rand.Rand, avoid uint64) (uint64, *redis.Client) {
	nodes := cs.c.Nodes()
	for range 2 * len(nodes) {
		n := nodes[rng.IntN(len(nodes))]
		if n.ID != avoid && cs.c.Running(n.ID) {
			return n.ID, cs.client(n)
		}
	}
	n := nodes[rng.IntN(len(nodes))]
	return n.ID, cs.client(n)
}

func (cs *clients) close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.by {
		c.Close()
	}
}

// notApplied tells errors that guarantee a write did not happen (Kintsu
// says so) from those that leave its outcome unknown.
func notApplied(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "CLUSTERDOWN") || strings.HasPrefix(s, "TRYAGAIN") || strings.HasPrefix(s, "NOSPACE")
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
	// gen[i] is hot key i's generation: a key that collected
	// maxUnknownPerKey unknown outcomes is replaced by a fresh one (see
	// key), so no key's history piles up more of them.
	gen     [len(registerKeysArr)]atomic.Int64
	mu      sync.Mutex
	unknown map[string]int // guarded by mu: unknown outcomes per key
}

const keyEpoch = 10 * time.Second

// maxUnknownPerKey bounds the unknown outcomes on one key: each is a write
// that may take effect anywhere after its call, and the checker's search
// grows steeply with them (a run with every nemesis once ran out of
// checking time with 25 on one key).
const maxUnknownPerKey = 8

// registerKeys are the hot keys. Eight rather than four: the checker's
// search grows steeply with the operations left pending on one key (each
// timed-out write may land anywhere after its call), and faults that stall
// connections leave many; spreading them over more keys keeps every key's
// history decidable, while 8+ clients still contend on each key.
var registerKeysArr = [...]string{"reg-a", "reg-b", "reg-c", "reg-d", "reg-e", "reg-f", "reg-g", "reg-h"}

var registerKeys = registerKeysArr[:]

// key returns hot key i for the current epoch and generation.
func (w *registerWorkload) key(i int) string {
	return fmt.Sprintf("%s-e%d-g%d", w.keys[i], int64(time.Since(w.start)/keyEpoch), w.gen[i].Load())
}

// noteUnknown counts an unknown outcome on key (hot key i) and moves hot
// key i to a new generation once key has maxUnknownPerKey of them.
func (w *registerWorkload) noteUnknown(i int, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unknown == nil {
		w.unknown = map[string]int{}
	}
	w.unknown[key]++
	if w.unknown[key] == maxUnknownPerKey && w.key(i) == key {
		w.gen[i].Add(1)
	}
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
				k := rng.IntN(len(w.keys))
				key := w.key(k)
				begin := time.Now()
				err := w.op(cl, rng, id, key, fmt.Sprintf("%d-%d", id, i), seen)
				if errors.Is(err, errUnknownOutcome) {
					w.noteUnknown(k, key)
				}
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
		return fmt.Errorf("%w: %v", errUnknownOutcome, err)
	}
	return err
}

// errUnknownOutcome marks a write whose outcome the client cannot know.
var errUnknownOutcome = errors.New("unknown outcome")

// backoffAfterError keeps a client from spinning on instant failures
// (connection refused while every node is down) and drowning the run's
// real activity in its counts.
func backoffAfterError(ctx context.Context) { sleep(ctx, 20*time.Millisecond) }

// check judges the history; when it is not linearizable, each key that
// shows it becomes an anomaly, and porcupine's interactive view of the
// whole history is written to outDir/register-history.html.
func (w *registerWorkload) check(outDir string) []Anomaly {
	v := check.CheckRegistersExplained(w.hist, 4*time.Minute)
	switch v.Result {
	case porcupine.Unknown:
		return []Anomaly{{Workload: "register", Kind: "check-timeout",
			Description: "the linearizability check did not finish in time; the run proves nothing"}}
	case porcupine.Ok:
		return nil
	}
	where := "register-history.html"
	if err := writeFile(filepath.Join(outDir, where), v.Visualize); err != nil {
		where = "(not written: " + err.Error() + ")"
	}
	var out []Anomaly
	for _, vi := range v.Violations {
		out = append(out, Anomaly{Workload: "register", Kind: "not-linearizable", Key: vi.Key, Ops: vi.Ops,
			Description: fmt.Sprintf("no order of the operations on %s explains what the clients saw; every operation is in %s", vi.Key, where)})
	}
	if len(out) == 0 { // the checker said Illegal without naming a key
		out = append(out, Anomaly{Workload: "register", Kind: "not-linearizable",
			Description: fmt.Sprintf("the history of %d operations is not linearizable; see %s", w.hist.Len(), where)})
	}
	return out
}

func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
