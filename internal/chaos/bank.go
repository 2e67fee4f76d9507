package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/ring"
)

// bankWorkload: money moves between accounts that live in different
// partitions, so every transfer is a cross-partition transaction, while
// readers read every account at once. Two books of accounts:
//
//   - checked: a transfer WATCHes both accounts, reads them, and moves the
//     money with MULTI/EXEC only if the payer can afford it (Redis's
//     optimistic pattern). No balance may ever be negative.
//   - blind: a transfer is MULTI, DECRBY payer, INCRBY payee, EXEC with no
//     check, so balances may go negative; only the total is checked.
//
// Every successful read of all accounts (MGET, or GETs inside one
// MULTI/EXEC) must show each book at its initial total: a read that saw
// one side of a transfer and not the other shows half a transaction. The
// outcome of a failed transfer does not matter (it applied entirely or not
// at all), so the checks need no history.
type bankWorkload struct {
	checked, blind []string // account keys, each book's in distinct partitions

	mu        sync.Mutex
	reads     int      // guarded by mu: successful reads of all accounts
	transfers int      // guarded by mu: acknowledged transfers
	conflicts int      // guarded by mu: WATCH transfers answered with a null EXEC
	badSum    []string // guarded by mu: reads whose totals were wrong
	negative  []string // guarded by mu: reads with a negative checked balance
}

// bankAccounts per book, and each account's opening balance.
const (
	bankAccounts = 6
	bankOpening  = 100
	bankTotal    = bankAccounts * bankOpening
)

func newBankWorkload(partitions int) *bankWorkload {
	return &bankWorkload{
		checked: ring.SpreadKeys("bank-checked-", bankAccounts, partitions),
		blind:   ring.SpreadKeys("bank-blind-", bankAccounts, partitions),
	}
}

func (w *bankWorkload) all() []string { return append(append([]string{}, w.checked...), w.blind...) }

// open sets every account to its opening balance in one MSET (itself a
// cross-partition transaction), retrying until the cluster takes it.
func (w *bankWorkload) open(ctx context.Context, cs *clients, seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	var pairs []any
	for _, k := range w.all() {
		pairs = append(pairs, k, bankOpening)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		_, cl := cs.pick(rng, 0)
		err := cl.MSet(octx, pairs...).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("opening the bank's accounts: %w", err)
		}
	}
}

// run starts n transfer clients (alternately checked and blind) and two
// readers.
func (w *bankWorkload) run(ctx context.Context, cs *clients, rec *recorder, seed int64, n int, wg *sync.WaitGroup) {
	loop := func(stream uint64, op func(context.Context, *redis.Client, *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), stream))
			var avoid uint64
			for ctx.Err() == nil {
				node, cl := cs.pick(rng, avoid)
				avoid = 0
				octx, cancel := context.WithTimeout(ctx, opTimeout)
				begin := time.Now()
				err := op(octx, cl, rng)
				cancel()
				rec.op(begin, err == nil, -1)
				if err != nil {
					avoid = node
					backoffAfterError(ctx)
				}
			}
		}()
	}
	for i := range n {
		if i%2 == 0 {
			loop(2000+uint64(i), w.checkedTransfer)
		} else {
			loop(2000+uint64(i), w.blindTransfer)
		}
	}
	for i := range 2 {
		loop(3000+uint64(i), func(ctx context.Context, cl *redis.Client, rng *rand.Rand) error {
			return w.read(ctx, cl, rng.IntN(2) == 0)
		})
	}
}

// pair picks two different accounts of a book and an amount.
func pair(rng *rand.Rand, book []string) (from, to string, amount int64) {
	i := rng.IntN(len(book))
	j := (i + 1 + rng.IntN(len(book)-1)) % len(book)
	return book[i], book[j], 1 + rng.Int64N(bankOpening/4)
}

// errCannotAfford ends a checked transfer that would overdraw: not a failure.
var errCannotAfford = errors.New("cannot afford")

func (w *bankWorkload) checkedTransfer(ctx context.Context, cl *redis.Client, rng *rand.Rand) error {
	from, to, amount := pair(rng, w.checked)
	var after int64
	err := cl.Watch(ctx, func(tx *redis.Tx) error {
		bal, err := tx.Get(ctx, from).Int64()
		if err != nil {
			return err
		}
		if bal < amount {
			return errCannotAfford
		}
		var dec *redis.IntCmd
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			dec = p.DecrBy(ctx, from, amount)
			p.IncrBy(ctx, to, amount)
			return nil
		})
		if err == nil {
			after = dec.Val()
		}
		return err
	}, from, to)
	switch {
	case errors.Is(err, errCannotAfford):
		return nil
	case errors.Is(err, redis.TxFailedErr):
		w.mu.Lock()
		w.conflicts++
		w.mu.Unlock()
		return nil
	case err != nil:
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.transfers++
	if after < 0 {
		w.negative = append(w.negative, fmt.Sprintf("WATCH %s %s; GET %s; MULTI; DECRBY %s %d answered %d", from, to, from, from, amount, after))
	}
	return nil
}

func (w *bankWorkload) blindTransfer(ctx context.Context, cl *redis.Client, rng *rand.Rand) error {
	from, to, amount := pair(rng, w.blind)
	_, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.DecrBy(ctx, from, amount)
		p.IncrBy(ctx, to, amount)
		return nil
	})
	if err == nil {
		w.mu.Lock()
		w.transfers++
		w.mu.Unlock()
	}
	return err
}

// read reads every account in one operation — MGET, or GETs queued in one
// MULTI/EXEC — and checks what it saw.
func (w *bankWorkload) read(ctx context.Context, cl *redis.Client, multi bool) error {
	keys := w.all()
	var vals []any
	how := "MGET"
	if multi {
		how = "MULTI/GET.../EXEC"
		cmds, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			v, err := c.(*redis.StringCmd).Result()
			if err != nil {
				vals = append(vals, nil)
				continue
			}
			vals = append(vals, v)
		}
	} else {
		var err error
		if vals, err = cl.MGet(ctx, keys...).Result(); err != nil {
			return err
		}
	}
	w.judge(how, keys, vals)
	return nil
}

// judge checks one read of every account.
func (w *bankWorkload) judge(how string, keys []string, vals []any) {
	bal := make([]int64, len(vals))
	shown := ""
	for i, v := range vals {
		s, _ := v.(string)
		bal[i], _ = strconv.ParseInt(s, 10, 64)
		if v == nil {
			s = "nil"
		}
		shown += fmt.Sprintf(" %s=%s", keys[i], s)
	}
	var checked, blind int64
	neg := false
	for i := range bankAccounts {
		checked += bal[i]
		blind += bal[bankAccounts+i]
		neg = neg || bal[i] < 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
	if checked != bankTotal || blind != bankTotal {
		w.badSum = append(w.badSum, fmt.Sprintf("%s saw checked total %d, blind total %d (want %d each):%s", how, checked, blind, bankTotal, shown))
	}
	if neg {
		w.negative = append(w.negative, fmt.Sprintf("%s saw a negative checked balance:%s", how, shown))
	}
}

// check reads every account once more after the faults were healed
// (unless the cluster did not come back: readBack false) and reports what
// the run saw.
func (w *bankWorkload) check(ctx context.Context, cs *clients, seed int64, readBack bool) ([]Anomaly, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 13))
	var err error
	for try := 0; readBack && try < 5; try++ {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		_, cl := cs.pick(rng, 0)
		err = w.read(octx, cl, false)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the bank's accounts back: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Anomaly
	if len(w.badSum) > 0 {
		out = append(out, Anomaly{Workload: "bank", Kind: "wrong-total", Ops: firstN(w.badSum, 20),
			Description: fmt.Sprintf("%d of %d reads of every account did not add up: they saw part of a transfer (or money appeared or vanished)", len(w.badSum), w.reads)})
	}
	if len(w.negative) > 0 {
		out = append(out, Anomaly{Workload: "bank", Kind: "negative-balance", Ops: firstN(w.negative, 20),
			Description: fmt.Sprintf("%d times an account that is only debited after a WATCHed check went negative", len(w.negative))})
	}
	if w.transfers == 0 || w.reads < 2 {
		out = append(out, Anomaly{Workload: "bank", Kind: "no-progress",
			Description: fmt.Sprintf("%d transfers and %d reads succeeded: the run proves nothing about transactions", w.transfers, w.reads)})
	}
	return out, nil
}

// stats summarises the workload for the progress log.
func (w *bankWorkload) stats() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d transfers, %d WATCH conflicts, %d reads of every account", w.transfers, w.conflicts, w.reads)
}

// firstN keeps the first n observations, in the order they were made.
func firstN(xs []string, n int) []string { return xs[:min(len(xs), n)] }
