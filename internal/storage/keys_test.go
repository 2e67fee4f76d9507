package storage

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

func inSpan(k, start, end []byte) bool {
	return bytes.Compare(start, k) <= 0 && bytes.Compare(k, end) < 0
}

func spanOK(start, end []byte) bool { return bytes.Compare(start, end) < 0 }

// ordinary groups; the last group is tested separately (see
// TestSpansOfLastGroup).
var testGroups = []uint64{0, 1, 2, 255, 256, 1 << 32, math.MaxUint64 - 1}

func TestLogKeyOrder(t *testing.T) {
	rng, _ := testRand(t)
	idx := []uint64{0, 1, 2, 255, 256, 65535, 65536, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	for range 200 {
		idx = append(idx, rng.Uint64N(1<<rng.IntN(64)+1))
	}
	for _, g := range testGroups {
		for _, a := range idx {
			for _, b := range idx[:20] {
				if got, want := bytes.Compare(LogKey(g, a), LogKey(g, b)), cmpU(a, b); got != want {
					t.Fatalf("group %d: LogKey order of %d vs %d = %d, want %d", g, a, b, got, want)
				}
			}
		}
		// A group's log keys sort below the next group's.
		if bytes.Compare(LogKey(g, math.MaxUint64), LogKey(g+1, 0)) >= 0 && g != math.MaxUint64 {
			t.Errorf("group %d's last log key sorts after group %d's first", g, g+1)
		}
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestLogSpan(t *testing.T) {
	for _, g := range testGroups {
		start, end := LogSpan(g, 10, 20)
		for i := uint64(0); i < 30; i++ {
			if got, want := inSpan(LogKey(g, i), start, end), i >= 10 && i < 20; got != want {
				t.Errorf("group %d: LogKey(%d) in LogSpan(10, 20) = %v", g, i, got)
			}
		}
		for _, other := range []uint64{g - 1, g + 1} {
			if other != g && inSpan(LogKey(other, 15), start, end) {
				t.Errorf("LogSpan of group %d holds group %d's key", g, other)
			}
		}
		// The spans LoadLogStore and ResetTo use cover no other record.
		s, e := LogSpan(g, 0, math.MaxUint64)
		for _, k := range [][]byte{HardStateKey(g), TruncatedKey(g), AppliedKey(g), DescriptorKey(g), DataKey(g, nil), DedupeKey(g, 0, 0)} {
			if inSpan(k, s, e) {
				t.Errorf("group %d: log span holds non-log key %x", g, k)
			}
		}
	}
}

func TestReplicaSpans(t *testing.T) {
	for _, g := range testGroups {
		spans := ReplicaSpans(g)
		covered := func(k []byte) bool {
			for _, sp := range spans {
				if inSpan(k, sp[0], sp[1]) {
					return true
				}
			}
			return false
		}
		for _, sp := range spans {
			if !spanOK(sp[0], sp[1]) {
				t.Errorf("group %d: empty or inverted span [%x, %x)", g, sp[0], sp[1])
			}
		}
		mine := [][]byte{LogKey(g, 0), LogKey(g, math.MaxUint64), HardStateKey(g), TruncatedKey(g), AppliedKey(g),
			DescriptorKey(g), DataKey(g, nil), DataKey(g, []byte("user")), DataKey(g, bytes.Repeat([]byte{0xff}, 40)),
			DedupeKey(g, 1, 2), DedupeKey(g, math.MaxUint64, math.MaxUint64),
			TxnKey(g, TxnLocks, []byte("k")), TxnKey(g, TxnParts, nil), TxnKey(g, TxnRecords, bytes.Repeat([]byte{0xff}, 16))}
		for _, k := range mine {
			if !covered(k) {
				t.Errorf("group %d: key %x not in its replica spans", g, k)
			}
		}
		for _, other := range []uint64{g - 1, g + 1} {
			if other == g || other == math.MaxUint64 {
				continue
			}
			for _, k := range [][]byte{LogKey(other, 5), HardStateKey(other), DataKey(other, []byte("x")), DataKey(other, nil), DedupeKey(other, 0, 0), TxnKey(other, TxnLocks, []byte("k"))} {
				if covered(k) {
					t.Errorf("group %d's spans hold group %d's key %x", g, other, k)
				}
			}
		}
		if covered(IdentKey) {
			t.Errorf("group %d's spans hold the node identity", g)
		}
	}
}

func TestDataKeys(t *testing.T) {
	for _, g := range testGroups {
		start, end := DataSpan(g)
		for _, uk := range [][]byte{nil, {}, []byte("a"), {0}, {0xff, 0xff}, bytes.Repeat([]byte("k"), 300)} {
			dk := DataKey(g, uk)
			if !bytes.Equal(UserKey(dk), uk) {
				t.Errorf("UserKey(DataKey(%d, %q)) = %q", g, uk, UserKey(dk))
			}
			if !inSpan(dk, start, end) {
				t.Errorf("DataKey(%d, %q) outside DataSpan", g, uk)
			}
		}
		// User key order is preserved within a group.
		keys := [][]byte{{}, {0}, []byte("a"), []byte("ab"), []byte("b"), {0xff}}
		for i := 1; i < len(keys); i++ {
			if bytes.Compare(DataKey(g, keys[i-1]), DataKey(g, keys[i])) >= 0 {
				t.Errorf("group %d: data key order broken between %q and %q", g, keys[i-1], keys[i])
			}
		}
		// DataKey must not alias between calls.
		a := DataKey(g, []byte("a"))
		_ = DataKey(g, []byte("b"))
		if string(UserKey(a)) != "a" {
			t.Error("DataKey results alias each other")
		}
	}
}

func TestDedupeKeys(t *testing.T) {
	for _, g := range testGroups {
		start, end := DedupeSpan(g)
		type os struct{ o, s uint64 }
		pairs := []os{{0, 0}, {0, 1}, {0, math.MaxUint64}, {1, 0}, {1, 5}, {1, math.MaxUint64}, {math.MaxUint64, 0}, {math.MaxUint64, math.MaxUint64}}
		for i, p := range pairs {
			k := DedupeKey(g, p.o, p.s)
			if !inSpan(k, start, end) {
				t.Errorf("DedupeKey(%d, %d, %d) outside DedupeSpan", g, p.o, p.s)
			}
			if i > 0 && bytes.Compare(DedupeKey(g, pairs[i-1].o, pairs[i-1].s), k) >= 0 {
				t.Errorf("dedupe key order broken at %v", p)
			}
		}
		// An origin's watermark (seq = max) sorts after all its entries and
		// before the next origin's.
		if bytes.Compare(DedupeKey(g, 3, math.MaxUint64-1), DedupeKey(g, 3, math.MaxUint64)) >= 0 ||
			bytes.Compare(DedupeKey(g, 3, math.MaxUint64), DedupeKey(g, 4, 0)) >= 0 {
			t.Error("watermark key out of place")
		}
	}
}

func TestPrefixesDisjoint(t *testing.T) {
	kinds := map[string][]byte{
		"ident": IdentKey, "log": LogKey(1, 1), "hard": HardStateKey(1), "trunc": TruncatedKey(1),
		"applied": AppliedKey(1), "desc": DescriptorKey(1), "data": DataKey(1, []byte("x")), "dedupe": DedupeKey(1, 1, 1),
	}
	seen := map[string]string{}
	for name, k := range kinds {
		p := string(k[:min(len(k), 10)])
		if other, dup := seen[p]; dup {
			t.Errorf("%s and %s share the prefix %x", name, other, p)
		}
		seen[p] = name
	}
	if !slices.IsSortedFunc([][]byte{IdentKey, LogKey(1, 1), DataKey(1, nil), DedupeKey(1, 0, 0)}, bytes.Compare) {
		t.Error("key spaces are not ordered local < raft < data < dedupe")
	}
}

func TestSpansOfLastGroup(t *testing.T) {
	const g = math.MaxUint64
	ds, de := DataSpan(g)
	qs, qe := DedupeSpan(g)
	if !spanOK(ds, de) || !inSpan(DataKey(g, []byte("x")), ds, de) {
		t.Errorf("DataSpan(MaxUint64) = [%x, %x)", ds, de)
	}
	if !spanOK(qs, qe) || !inSpan(DedupeKey(g, 1, 1), qs, qe) {
		t.Errorf("DedupeSpan(MaxUint64) = [%x, %x)", qs, qe)
	}
	for _, sp := range ReplicaSpans(g) {
		if !spanOK(sp[0], sp[1]) {
			t.Errorf("ReplicaSpans(MaxUint64) has inverted span [%x, %x)", sp[0], sp[1])
		}
	}
}

func TestTxnSpansSeparateTables(t *testing.T) {
	for _, g := range testGroups {
		for _, table := range []byte{TxnLocks, TxnParts, TxnRecords} {
			lo, hi := TxnSpan(g, table)
			if !spanOK(lo, hi) {
				t.Fatalf("group %d table %c: bad span", g, table)
			}
			for _, other := range []byte{TxnLocks, TxnParts, TxnRecords} {
				k := TxnKey(g, other, []byte{0xff, 0xff})
				if inSpan(k, lo, hi) != (other == table) {
					t.Errorf("group %d: key of table %c in span of table %c = %v", g, other, table, inSpan(k, lo, hi))
				}
			}
		}
	}
}
