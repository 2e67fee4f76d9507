package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// listWorkload: one writer per partition appends increasing numbers to a
// list in that partition (RPUSH, hash-tagged), and every few appends adds
// the same number to a set and a sorted set beside it. At the end, each
// list must hold every acknowledged number exactly once, the acknowledged
// ones in the order they were pushed (one writer, one at a time), nothing
// answered "not applied", nothing never tried; the set and the sorted set
// must hold every acknowledged member (with its score). A push whose
// outcome is unknown may be there at most once, anywhere after it was
// tried.
type listWorkload struct {
	partitions int
	mu         sync.Mutex
	lists      map[string]*listHistory // guarded by mu: tag -> its writer's pushes
}

// listHistory is one writer's pushes.
type listHistory struct {
	acked, refused, unknown map[int]bool
	members                 map[int]bool // acknowledged SADD/ZADD members
	tried                   int          // numbers 0..tried-1 were pushed or tried
}

// listEvery: one push in listEvery also adds the number to the set and
// the sorted set.
const listEvery = 4

func (w *listWorkload) run(ctx context.Context, cs *clients, rec *recorder, seed int64, wg *sync.WaitGroup) {
	w.lists = map[string]*listHistory{}
	for p := 0; p < w.partitions; p++ {
		tag := tagFor(p, w.partitions)
		h := &listHistory{acked: map[int]bool{}, refused: map[int]bool{}, unknown: map[int]bool{}, members: map[int]bool{}}
		w.lists[tag] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(2000+p)))
			var avoid uint64
			for i := 0; ctx.Err() == nil; i++ {
				octx, cancel := context.WithTimeout(context.Background(), probeTimeout)
				begin := time.Now()
				node, cl := cs.pick(rng, avoid)
				err := cl.RPush(octx, tag+":list", i).Err()
				var extra error
				if err == nil && i%listEvery == 0 {
					extra = cl.SAdd(octx, tag+":set", i).Err()
					if extra == nil {
						extra = cl.ZAdd(octx, tag+":zset", redisZ(i)).Err()
					}
				}
				cancel()
				avoid = 0
				if err != nil {
					avoid = node
				}
				rec.op(begin, err == nil, p)
				w.mu.Lock()
				h.tried = i + 1
				switch {
				case err == nil:
					h.acked[i] = true
					if i%listEvery == 0 && extra == nil {
						h.members[i] = true
					}
				case notApplied(err):
					h.refused[i] = true
				default:
					h.unknown[i] = true
				}
				w.mu.Unlock()
				if err != nil || extra != nil {
					backoffAfterError(ctx)
				}
			}
		}()
	}
}

// check reads every list, set and sorted set back.
func (w *listWorkload) check(ctx context.Context, cs *clients, seed int64) ([]Anomaly, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	var lost, wrong []string
	acked := 0
	for tag, h := range w.lists {
		acked += len(h.acked)
		var got []string
		var members []string
		var scores map[string]float64
		var err error
		for try := 0; try < 5; try++ { // reads are idempotent: retry through faults' aftermath
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			_, cl := cs.pick(rng, 0)
			got, err = cl.LRange(octx, tag+":list", 0, -1).Result()
			if err == nil {
				members, err = cl.SMembers(octx, tag+":set").Result()
			}
			if err == nil {
				var zs []redisZItem
				zs, err = zrangeAll(octx, cl, tag+":zset")
				scores = map[string]float64{}
				for _, z := range zs {
					scores[z.member] = z.score
				}
			}
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading back %s: %w", tag, err)
		}
		// An acknowledged push was applied before every later push was
		// tried, so nothing larger may sit before it; a push whose outcome
		// is unknown may have been applied late (it was in flight when its
		// writer moved on), so it may sit after larger ones.
		seen := map[int]int{}
		largest := -1
		for _, s := range got {
			n, err := strconv.Atoi(s)
			switch {
			case err != nil:
				wrong = append(wrong, fmt.Sprintf("%s:list holds %q, never pushed", tag, s))
				continue
			case h.acked[n] && n < largest:
				wrong = append(wrong, fmt.Sprintf("%s:list holds acknowledged %d after %d, pushed later: out of push order", tag, n, largest))
			case h.refused[n]:
				wrong = append(wrong, fmt.Sprintf("%s:list holds %d, answered \"nothing was applied\"", tag, n))
			case n >= h.tried:
				wrong = append(wrong, fmt.Sprintf("%s:list holds %d, never pushed", tag, n))
			}
			seen[n]++
			largest = max(largest, n)
		}
		for n, c := range seen {
			if c > 1 {
				wrong = append(wrong, fmt.Sprintf("%s:list holds %d %d times", tag, n, c))
			}
		}
		for n := range h.acked {
			if seen[n] == 0 {
				lost = append(lost, fmt.Sprintf("RPUSH %s:list %d acknowledged, missing", tag, n))
			}
		}
		inSet := map[string]bool{}
		for _, m := range members {
			inSet[m] = true
		}
		for n := range h.members {
			m := strconv.Itoa(n)
			if !inSet[m] {
				lost = append(lost, fmt.Sprintf("SADD %s:set %d acknowledged, missing", tag, n))
			}
			if s, ok := scores[m]; !ok || s != float64(n) {
				lost = append(lost, fmt.Sprintf("ZADD %s:zset %d %d acknowledged, now %v (present %v)", tag, n, n, s, ok))
			}
		}
	}
	var out []Anomaly
	if len(lost) > 0 {
		out = append(out, Anomaly{Workload: "list", Kind: "lost-write", Ops: firstSorted(lost, 20),
			Description: fmt.Sprintf("%d of %d acknowledged pushes or adds are missing", len(lost), acked)})
	}
	if len(wrong) > 0 {
		out = append(out, Anomaly{Workload: "list", Kind: "wrong-list", Ops: firstSorted(wrong, 20),
			Description: fmt.Sprintf("%d list elements duplicated, out of order, refused or never pushed", len(wrong))})
	}
	return out, len(lost), nil
}

func redisZ(n int) redis.Z { return redis.Z{Score: float64(n), Member: n} }

type redisZItem struct {
	member string
	score  float64
}

func zrangeAll(ctx context.Context, cl *redis.Client, key string) ([]redisZItem, error) {
	zs, err := cl.ZRangeWithScores(ctx, key, 0, -1).Result()
	out := make([]redisZItem, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		out = append(out, redisZItem{member: m, score: z.Score})
	}
	return out, err
}
