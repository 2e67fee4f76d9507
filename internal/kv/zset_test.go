package kv

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSortableOrdersScores(t *testing.T) {
	scores := []float64{math.Inf(-1), -1e300, -2.5, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 1e-7, 1, 2.5, 1e300, math.Inf(1)}
	for i := 1; i < len(scores); i++ {
		a, b := sortable(scores[i-1]), sortable(scores[i])
		if string(a) >= string(b) {
			t.Fatalf("sortable(%g) >= sortable(%g)", scores[i-1], scores[i])
		}
		if unsortable(b) != scores[i] {
			t.Fatalf("unsortable(sortable(%g)) = %g", scores[i], unsortable(b))
		}
	}
	if string(sortable(math.Copysign(0, -1))) != string(sortable(0)) {
		t.Fatal("-0 and 0 sort apart")
	}
	for f, want := range map[float64]string{1.5: "1.5", 0.1: "0.10000000000000001", 3: "3", 1e20: "1e+20", 1e-7: "9.9999999999999995e-08", -2: "-2", 100000: "100000"} {
		if got := string(formatG17(f)); got != want {
			t.Errorf("formatG17(%g) = %q, want %q", f, got, want)
		}
	}
}

// TestZsetAgainstModel: random ZADD/ZINCRBY/ZREM/ZPOPMIN against a map;
// ZRANGE 0 -1 WITHSCORES lists the model in (score, member) order, and
// the store holds exactly two sub-keys per member (its score and its
// place in the order).
func TestZsetAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newMemStore()
		model := map[string]float64{}
		for step := range 300 {
			m := strconv.Itoa(rng.IntN(8))
			if rng.IntN(4) == 0 { // past a bound's member limit
				m += strings.Repeat("x", zboundMember)
			}
			f := float64(rng.IntN(7) - 3)
			switch rng.IntN(5) {
			case 0:
				apply(t, s, "ZADD", "z", strconv.FormatFloat(f, 'g', -1, 64), m)
				model[m] = f
			case 1:
				apply(t, s, "ZINCRBY", "z", strconv.FormatFloat(f, 'g', -1, 64), m)
				model[m] += f
			case 2:
				apply(t, s, "ZREM", "z", m)
				delete(model, m)
			case 4:
				got := parseArray(t, apply(t, s, "ZPOPMAX", "z"))
				if len(model) > 0 {
					order := zorder(model)
					max := order[len(order)-1]
					if len(got) != 2 || got[0] != max {
						t.Fatalf("seed %d step %d: ZPOPMAX = %v, want %s", seed, step, got, max)
					}
					delete(model, max)
				}
			case 3:
				got := parseArray(t, apply(t, s, "ZPOPMIN", "z"))
				if len(model) > 0 {
					min := zorder(model)[0]
					if len(got) != 2 || got[0] != min {
						t.Fatalf("seed %d step %d: ZPOPMIN = %v, want %s", seed, step, got, min)
					}
					delete(model, min)
				}
			}
			var want []string
			for _, mm := range zorder(model) {
				want = append(want, mm, string(formatG17(model[mm])))
			}
			got := parseArray(t, apply(t, s, "ZRANGE", "z", "0", "-1", "WITHSCORES"))
			if !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Fatalf("seed %d step %d: ZRANGE = %v, want %v", seed, step, got, want)
			}
			if s.Len() != 2*len(model) {
				t.Fatalf("seed %d step %d: %d sub-keys for %d members", seed, step, s.Len(), len(model))
			}
		}
	}
}

func zorder(m map[string]float64) []string {
	var ms []string
	for k := range m {
		ms = append(ms, k)
	}
	slices.SortFunc(ms, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] < m[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	return ms
}
