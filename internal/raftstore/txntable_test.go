package raftstore

import (
	"fmt"
	"testing"
)

// The in-memory lock table is bounded: past maxMirroredLocks records it
// forgets them (reads go to disk) while still counting exactly, and it
// holds them again once the table is empty, whether the records came from
// writes or from a load.
func TestLockTableIsBounded(t *testing.T) {
	for _, how := range []string{"put", "load"} {
		t.Run(how, func(t *testing.T) {
			lt := newTxnTable()
			for i := range maxMirroredLocks + 10 {
				k := fmt.Appendf(nil, "k%d", i)
				if how == "put" {
					lt.put(k, k, false)
				} else {
					lt.load(k, k)
				}
			}
			if lt.recs != nil {
				t.Fatalf("%d records held in memory, bound %d", len(lt.recs), maxMirroredLocks)
			}
			if _, _, known := lt.get([]byte("k1")); known {
				t.Fatal("an incomplete table answered a read")
			}
			if lt.n != maxMirroredLocks+10 {
				t.Fatalf("count %d, want %d", lt.n, maxMirroredLocks+10)
			}
			for i := range maxMirroredLocks + 10 {
				lt.del(fmt.Appendf(nil, "k%d", i), true)
				if lt.recs != nil && lt.n != 0 {
					t.Fatalf("complete again with %d records left", lt.n)
				}
			}
			if lt.recs == nil || lt.n != 0 {
				t.Fatalf("empty table: count %d, complete %v", lt.n, lt.recs != nil)
			}
			lt.put([]byte("a"), []byte("1"), false)
			if v, ok, known := lt.get([]byte("a")); !known || !ok || string(v) != "1" {
				t.Fatalf("read a: %q %v %v", v, ok, known)
			}
			v, _, _ := lt.get([]byte("a"))
			v[0] = 'x' // a caller changing what it read changes nothing held
			if v, _, _ := lt.get([]byte("a")); string(v) != "1" {
				t.Fatalf("read a after a caller's change: %q", v)
			}
		})
	}
}
