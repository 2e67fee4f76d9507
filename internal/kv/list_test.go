package kv

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestListAgainstModel runs random list commands against a slice model:
// replies of LRANGE, LLEN and the pops agree, and the store holds exactly
// one sub-key per element (no element leaks when the middle is rewritten
// or the list empties).
func TestListAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		s := newMemStore()
		model := map[string][]string{}
		keys := []string{"a", "b"}
		val := func() string { return strconv.Itoa(rng.IntN(5)) }
		for step := range 400 {
			k := keys[rng.IntN(2)]
			l := model[k]
			var args []string
			switch rng.IntN(9) {
			case 0:
				v := val()
				args = []string{"LPUSH", k, v}
				model[k] = append([]string{v}, l...)
			case 1:
				v := val()
				args = []string{"RPUSH", k, v}
				model[k] = append(l, v)
			case 2:
				args = []string{"LPOP", k}
				if len(l) > 0 {
					model[k] = l[1:]
				}
			case 3:
				args = []string{"RPOP", k}
				if len(l) > 0 {
					model[k] = l[:len(l)-1]
				}
			case 4:
				v, c := val(), rng.IntN(5)-2
				args = []string{"LREM", k, strconv.Itoa(c), v}
				model[k] = modelLrem(l, c, v)
			case 5:
				piv, v := val(), val()
				args = []string{"LINSERT", k, "BEFORE", piv, v}
				if i := slices.Index(l, piv); i >= 0 {
					model[k] = slices.Insert(slices.Clone(l), i, v)
				}
			case 6:
				a, b := rng.IntN(6)-2, rng.IntN(6)-2
				args = []string{"LTRIM", k, strconv.Itoa(a), strconv.Itoa(b)}
				from, to, ok := span(int64(a), int64(b), uint64(len(l)))
				if ok {
					model[k] = slices.Clone(l[from : to+1])
				} else {
					model[k] = nil
				}
			case 7:
				other := keys[1-slices.Index(keys, k)]
				args = []string{"LMOVE", k, other, "LEFT", "RIGHT"}
				if len(l) > 0 {
					model[k] = l[1:]
					model[other] = append(model[other], l[0])
				}
			case 8:
				if len(l) > 0 {
					i := rng.IntN(len(l))
					v := val()
					args = []string{"LSET", k, strconv.Itoa(i), v}
					model[k] = slices.Clone(l)
					model[k][i] = v
				} else {
					args = []string{"LLEN", k}
				}
			}
			apply(t, s, args...)
			total := 0
			for _, key := range keys {
				want := model[key]
				total += len(want)
				got := parseArray(t, apply(t, s, "LRANGE", key, "0", "-1"))
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Fatalf("seed %d step %d after %v: %s = %v, want %v", seed, step, args, key, got, want)
				}
				if n := apply(t, s, "LLEN", key); n != rInt(int64(len(want))) {
					t.Fatalf("seed %d step %d: LLEN %s = %q, want %d", seed, step, key, n, len(want))
				}
			}
			if s.Len() != total {
				t.Fatalf("seed %d step %d after %v: %d sub-keys stored for %d elements", seed, step, args, s.Len(), total)
			}
		}
	}
}

func modelLrem(l []string, count int, v string) []string {
	out := slices.Clone(l)
	removed := 0
	limit := count
	if limit < 0 {
		limit = -limit
	}
	if count >= 0 {
		for i := 0; i < len(out); {
			if out[i] == v && (count == 0 || removed < limit) {
				out = slices.Delete(out, i, i+1)
				removed++
				continue
			}
			i++
		}
		return out
	}
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] == v && removed < limit {
			out = slices.Delete(out, i, i+1)
			removed++
		}
	}
	return out
}

func TestListReplies(t *testing.T) {
	runCases(t, []cmdCase{
		{name: "pops and errors", steps: []cmdStep{
			do(rNil, "LPOP", "l"), do("*-1\r\n", "LPOP", "l", "2"), do("-ERR value is out of range, must be positive\r\n", "LPOP", "l", "-1"),
			do(rInt(3), "RPUSH", "l", "a", "b", "c"), do(rArr(), "LPOP", "l", "0"), do(rArr(rBulk("a"), rBulk("b")), "LPOP", "l", "2"),
			do(rArr(rBulk("c")), "RPOP", "l", "5"), do(rInt(0), "EXISTS", "l"), do(rInt(0), "LPUSHX", "l", "x"),
			do("-ERR no such key\r\n", "LSET", "l", "0", "x"), do(rInt(0), "LINSERT", "l", "BEFORE", "a", "b"),
			do(rSyntax, "LINSERT", "l", "MIDDLE", "a", "b"),
		}, final: map[string]string{}},
		{name: "lpos", steps: []cmdStep{
			do(rInt(6), "RPUSH", "l", "a", "b", "c", "1", "2", "c"),
			do(rInt(2), "LPOS", "l", "c"), do(rInt(5), "LPOS", "l", "c", "RANK", "2"), do(rInt(5), "LPOS", "l", "c", "RANK", "-1"),
			do(rArr(rInt(2), rInt(5)), "LPOS", "l", "c", "COUNT", "0"), do(rNil, "LPOS", "l", "c", "MAXLEN", "2"),
			do("-ERR COUNT can't be negative\r\n", "LPOS", "l", "c", "COUNT", "x"), do(rSyntax, "LPOS", "l", "c", "BOGUS", "1"),
		}, final: map[string]string{"l": string(meta{tag: typeList, ver: 1, n: 6, extra: pos(listMid)}.encode())}},
	})
	// LMOVE onto itself rotates.
	s := newMemStore()
	apply(t, s, "RPUSH", "r", "1", "2", "3")
	if got := apply(t, s, "LMOVE", "r", "r", "LEFT", "RIGHT"); got != rBulk("1") {
		t.Fatalf("LMOVE r r = %q", got)
	}
	if got := fmt.Sprint(parseArray(t, apply(t, s, "LRANGE", "r", "0", "-1"))); got != "[2 3 1]" {
		t.Fatalf("after rotation %s", got)
	}
}

// TestBlockingArgs: the edge's check of a blocking command's arguments,
// at each command's smallest arity, in Redis's order.
func TestBlockingArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		ms   int64
		msg  string
	}{
		{[]string{"blpop", "k", "0"}, 0, ""},
		{[]string{"brpop", "a", "b", "1.5"}, 1500, ""},
		{[]string{"bzpopmin", "z", "-1"}, 0, "ERR timeout is negative"},
		{[]string{"brpoplpush", "a", "b", "x"}, 0, "ERR timeout is not a float or out of range"},
		{[]string{"blmove", "a", "b", "up", "left", "-1"}, 0, ErrSyntax},
		{[]string{"blmove", "a", "b", "LEFT", "right", "0.25"}, 250, ""},
	} {
		spec := Lookup([]byte(c.args[0]))
		if spec == nil {
			t.Fatalf("%s is not registered", c.args[0])
		}
		ms, msg := BlockingArgs(&spec.Spec, bargs(c.args...))
		if ms != c.ms || msg != c.msg {
			t.Errorf("BlockingArgs(%v) = %d, %q; want %d, %q", c.args, ms, msg, c.ms, c.msg)
		}
	}
}
